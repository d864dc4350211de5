"""The launch plan of a job: which types in which zones, in what order, with which script.

Built from the ranked candidates of the domain's selection: the best type in each of its zones
first (a capacity error moves to the next zone), then the next best type, and so on. Every
option carries its own startup script, because the exported settings (type, vCPUs, price, zone)
differ per option.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import attrs

from cloud_tasks.domain.options import JobConfig
from cloud_tasks.domain.selection import Candidate
from cloud_tasks.domain.startup import (
    AWS_USER_DATA_LIMIT_BYTES,
    GCP_STARTUP_SCRIPT_LIMIT_BYTES,
    WorkerSettings,
    build_startup_script,
    check_startup_script_size,
    worker_environment,
)
from cloud_tasks.service_layer.pool import LaunchOption

#: Instance types kept as fallbacks after the best one (each in every zone).
MAX_FALLBACK_TYPES = 4

_SCRIPT_LIMITS: Mapping[str, tuple[int, str]] = {
    "aws": (AWS_USER_DATA_LIMIT_BYTES, "AWS user data"),
    "gcp": (GCP_STARTUP_SCRIPT_LIMIT_BYTES, "GCP startup-script metadata"),
}


def worker_settings(
    config: JobConfig,
    candidate: Candidate,
    zone: str,
    extra: Mapping[str, str] | None = None,
    *,
    queue_region: str | None = None,
) -> WorkerSettings:
    """What the worker on an instance of ``candidate`` in ``zone`` must know.

    ``queue_region``: the region of the job's queue, for an instance in another region (the
    worker finds its queue by region)."""
    p = config.provider_options
    run = config.run
    job_id = p.job_id or ""
    region = queue_region or candidate.offer.region or p.region
    return WorkerSettings(
        provider=config.provider,
        job_id=job_id,
        queue_name=p.effective_queue_name or job_id,
        instance_type=candidate.name,
        num_cpus=candidate.vcpus,
        memory_gib=candidate.offer.memory_gib,
        num_tasks_per_instance=candidate.tasks_per_instance,
        project_id=p.project_id,
        region=region,
        zone=zone or None,
        local_ssd_gb=candidate.offer.local_ssd_gib,
        boot_disk_gb=candidate.boot_disk_gb,
        is_spot=candidate.use_spot,
        price_per_hour_usd=candidate.price_per_hour_usd,
        max_runtime_s=run.max_runtime,
        retry_on_exit=run.retry.retry_on_exit,
        retry_on_exception=run.retry.retry_on_exception,
        retry_on_timeout=run.retry.retry_on_timeout,
        max_attempts=run.retry.max_attempts,
        max_preemptions=run.retry.max_preemptions,
        max_memory_allowed_per_task_gb=run.max_memory_allowed_per_task,
        keepalive_interval_s=run.keepalive_interval,
        exactly_once_queue=p.exactly_once_queue,
        extra=tuple(sorted((extra or {}).items())),
        gpus=candidate.offer.gpus,
        gpus_per_task=run.constraints.gpus_per_task,
        report_task_starts=run.speculative_after is not None,
        checkpoint_location=run.checkpoint_location,
    )


def startup_script_for(
    config: JobConfig,
    user_script: str,
    candidate: Candidate,
    zone: str,
    extra: Mapping[str, str] | None = None,
    *,
    queue_region: str | None = None,
) -> str:
    """The generated script for one launch option, checked against the provider's size limit.

    Raises:
        ConfigError: the script is not a bash script or is too large for the provider.
    """
    script = build_startup_script(
        user_script,
        worker_environment(
            worker_settings(config, candidate, zone, extra, queue_region=queue_region)
        ),
    )
    limit = _SCRIPT_LIMITS.get(config.provider)
    if limit is not None:
        check_startup_script_size(script, limit[0], where=limit[1])
    return script


@attrs.frozen
class ZoneChoice:
    """Zones to try for a type without a zone of its own (region-wide offers)."""

    preferred: str | None
    region_zones: tuple[str, ...]

    def zones(self, candidate: Candidate) -> tuple[str, ...]:
        if candidate.offer.zone:
            return (candidate.offer.zone,)
        if self.preferred:
            return (self.preferred,)
        return self.region_zones or ("",)


def launch_options(
    ranked: Sequence[Candidate],
    zones: ZoneChoice,
    script_for: Callable[[Candidate, str], str],
    *,
    max_types: int = 1 + MAX_FALLBACK_TYPES,
) -> list[LaunchOption]:
    """Options in launch order: each type (best first) in each of its zones (cheapest first)."""
    by_type: dict[str, list[Candidate]] = {}
    for candidate in ranked:
        if candidate.name not in by_type:
            if len(by_type) >= max_types:
                continue
            by_type[candidate.name] = []
        by_type[candidate.name].append(candidate)
    options: list[LaunchOption] = []
    seen: set[tuple[str, str]] = set()
    for candidates in by_type.values():
        for candidate in candidates:
            for zone in zones.zones(candidate):
                if zones.preferred and candidate.offer.zone and zone != zones.preferred:
                    continue
                key = (candidate.name, zone)
                if key in seen:
                    continue
                seen.add(key)
                options.append(LaunchOption(candidate, zone, script_for(candidate, zone)))
    return options


def on_demand_candidate(candidate: Candidate) -> Candidate | None:
    """``candidate`` priced on-demand (same type, zone and disk), or ``None`` when it is not
    spot or has no on-demand price."""
    od_price = candidate.offer.price_per_hour_usd
    if not candidate.use_spot or od_price is None:
        return None
    total = od_price + candidate.boot_disk_price_per_hour_usd
    return attrs.evolve(
        candidate,
        use_spot=False,
        vm_price_per_hour_usd=od_price,
        price_per_hour_usd=total,
        price_per_task_slot_hour_usd=total / candidate.tasks_per_instance,
    )


def on_demand_options(
    options: Sequence[LaunchOption], script_for: Callable[[Candidate, str], str]
) -> list[LaunchOption]:
    """The on-demand twin of every spot option (for ``on_demand_after_preemptions``)."""
    twins = []
    for option in options:
        candidate = on_demand_candidate(option.candidate)
        if candidate is not None:
            twins.append(LaunchOption(candidate, option.zone, script_for(candidate, option.zone)))
    return twins


__all__ = [
    "MAX_FALLBACK_TYPES",
    "ZoneChoice",
    "launch_options",
    "on_demand_candidate",
    "on_demand_options",
    "startup_script_for",
    "worker_settings",
]

"""Everything a job command needs beyond its adapters, from a resolved configuration.

The adapters come from the composition root (``bootstrap.build_job_adapters``); this module
plans the launch over them (types, zones, pool size, startup scripts), loads tasks and names
the job's files. ``run``, ``manage_pool``, ``status``, ``stop`` and ``monitor_event_queue`` are
thin click commands over it; tests use it directly.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from cloud_tasks.domain.options import JobConfig
from cloud_tasks.domain.selection import Candidate, rank_offers_in_zone
from cloud_tasks.domain.sizing import target_pool_size
from cloud_tasks.domain.startup import ENV_PREFIX
from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.exceptions import ConfigError
from cloud_tasks.ports import Pricing, TaskQueue
from cloud_tasks.service_layer.plan import (
    ZoneChoice,
    launch_options,
    on_demand_options,
    startup_script_for,
)
from cloud_tasks.service_layer.pool import LaunchOption, PoolSettings

if TYPE_CHECKING:
    from cloud_tasks.bootstrap import Adapters

LOAD_BATCH = 500
#: Providers whose instances really run workers; ``memory`` plans and simulates only.
RUNNABLE_PROVIDERS = ("aws", "gcp", "local")


def job_id_of(config: JobConfig) -> str:
    """The job id, required by every job command."""
    job_id = config.provider_options.job_id
    if not job_id:
        where = f" ({config.source})" if config.source else ""
        raise ConfigError(
            f"job_id is not set{where}: add 'job_id: my-job' to the "
            f"{config.section or config.provider} section or pass --job-id"
        )
    return job_id


def queue_name_of(config: JobConfig) -> str:
    return config.provider_options.effective_queue_name or job_id_of(config)


def db_path_of(config: JobConfig) -> Path:
    """``db_file`` from the configuration, else ``<job_id>.db`` in the current directory."""
    return Path(config.run.db_file or f"{job_id_of(config)}.db")


@attrs.frozen
class JobPlan:
    """What ``run`` will launch: the options in order and the first sizing decision."""

    options: tuple[LaunchOption, ...]
    image: str
    initial_count: int
    limited_by: str
    region: str
    #: On-demand twins of the spot options (``on_demand_after_preemptions``).
    on_demand_options: tuple[LaunchOption, ...] = ()

    @property
    def best(self) -> Candidate:
        return self.options[0].candidate


def region_of(config: JobConfig, pricing: Pricing) -> str:
    """The region whose offers apply: configured, else the provider's default."""
    from cloud_tasks import bootstrap

    region = bootstrap.pricing_region(config, pricing)
    if not region:
        raise ConfigError(
            f"no region set for provider {config.provider!r}: add 'region:' to the "
            "configuration or pass --region"
        )
    return region


def make_plan(
    config: JobConfig, adapters: Adapters, remaining_tasks: int, *, refresh: bool = False
) -> JobPlan:
    """Choose types, zones and the first pool size; build each option's startup script.

    Read-only against the provider (prices, zones, images).

    Raises:
        ConfigError: no startup script, a bad script, or sizing limits that conflict.
        SelectionError: no instance type meets the constraints.
    """
    user_script = config.run.startup_script
    if not user_script or not user_script.strip():
        raise ConfigError(
            "no startup script: set startup_script or startup_script_file in the configuration "
            "(the script each instance runs to start your worker)"
        )
    region = region_of(config, adapters.pricing)
    zone = config.provider_options.zone
    ranked = rank_offers_in_zone(
        adapters.pricing.offers(region, refresh=refresh), config.run.constraints, zone
    )
    region_zones: tuple[str, ...] = ()
    if not zone and any(c.offer.zone is None for c in ranked[:1]):
        for listed in adapters.compute.list_regions():
            if listed.name == region:
                region_zones = tuple(listed.zones)
    extra = {
        name.removeprefix(ENV_PREFIX): value
        for name, value in adapters.instance_environment.items()
    }

    def script_for(candidate: Candidate, z: str) -> str:
        return startup_script_for(config, user_script, candidate, z, extra)

    options = launch_options(ranked, ZoneChoice(zone, region_zones), script_for)
    best = options[0].candidate
    target = target_pool_size(best, config.run.limits, remaining_tasks)
    image = config.run.image or adapters.compute.default_image(best.offer.architecture)
    twins = on_demand_options(options, script_for) if config.run.on_demand_after_preemptions else []
    options += _other_region_options(config, adapters, region, best, user_script, extra, refresh)
    return JobPlan(tuple(options), image, target.count, target.limited_by, region, tuple(twins))


def _other_region_options(
    config: JobConfig,
    adapters: Adapters,
    region: str,
    best: Candidate,
    user_script: str,
    extra: Mapping[str, str],
    refresh: bool,
) -> list[LaunchOption]:
    """Launch options in the allowed ``regions`` other than the job's, cheapest region first,
    for types that run as many tasks per instance as ``best`` (so the pool size holds). Their
    workers are told the queue's region."""
    others = [r for r in config.provider_options.regions if r != region]
    if not others:
        return []
    zones = {listed.name: tuple(listed.zones) for listed in adapters.compute.list_regions()}
    per_region = []
    for other in others:
        ranked = [
            c
            for c in rank_offers_in_zone(
                adapters.pricing.offers(other, refresh=refresh), config.run.constraints, None
            )
            if c.tasks_per_instance == best.tasks_per_instance
            and c.offer.architecture == best.offer.architecture
        ]
        if not ranked:
            continue

        def script_for(candidate: Candidate, z: str) -> str:
            return startup_script_for(config, user_script, candidate, z, extra, queue_region=region)

        options = launch_options(ranked, ZoneChoice(None, zones.get(other, ())), script_for)
        options = [o for o in options if o.zone]
        if options:
            per_region.append((ranked[0].price_per_task_slot_hour_usd, other, options))
    per_region.sort(key=lambda item: (item[0], item[1]))
    return [option for _price, _name, options in per_region for option in options]


def pool_settings(config: JobConfig, plan: JobPlan, *, tasks_known: bool = True) -> PoolSettings:
    run = config.run
    return PoolSettings(
        job_id=job_id_of(config),
        image=plan.image,
        limits=run.limits,
        scaling_check_interval_s=run.scaling_check_interval,
        instance_termination_delay_s=run.instance_termination_delay,
        keepalive_interval_s=run.keepalive_interval,
        keepalive_startup_timeout_s=run.keepalive_startup_timeout,
        keepalive_timeout_s=run.keepalive_timeout,
        # Reading the local SQLite event queue is cheap: poll it often so the end of a job is
        # noticed at once; cloud queues are polled once a second.
        event_poll_interval_s=min(
            0.25 if config.provider == "local" else 1.0, max(run.scaling_check_interval, 0.05)
        ),
        service_account=config.provider_options.service_account,
        offload=config.provider != "memory",
        tasks_known=tasks_known,
        on_demand_after_preemptions=run.on_demand_after_preemptions,
        speculation=run.speculation,
        spot_spread_tolerance=run.spot_spread_tolerance,
    )


def worker_credentials_notice(config: JobConfig) -> str | None:
    """What to tell the user when the instances' workers get no credentials from us."""
    if config.provider == "aws" and not config.provider_options.service_account:
        return (
            "aws.service_account is not set: instances start without an IAM instance profile, "
            "so the startup script must give the worker AWS credentials for SQS; set "
            "service_account to an instance profile name (see docs/providers.md)"
        )
    return None


def load_tasks(
    task_queue: TaskQueue,
    tasks: Iterable[Task],
    *,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Send every task to the queue in batches; returns the number sent.

    Uses the queue's ``send_once`` when it ``remembers_loads`` (the SQLite queue), so a load
    interrupted and restarted does not enqueue a task twice.
    """
    sent = 0
    iterator = iter(tasks)
    while batch := list(itertools.islice(iterator, LOAD_BATCH)):
        envelopes = [Envelope(task) for task in batch]
        if task_queue.remembers_loads:
            task_queue.send_once(envelopes)
        else:
            task_queue.send(envelopes)
        sent += len(batch)
        if on_progress is not None:
            on_progress(sent)
    return sent


def plan_spread(plan: JobPlan, tolerance: float, instances: int) -> list[dict[str, Any]]:
    """How the first ``instances`` of a spot pool are spread over launch options (the pool
    manager's rule); one entry when the pool is not spread."""
    from cloud_tasks.domain.spread import SpreadPool, eligible_pools, shares, spread_launches

    def pool(option: LaunchOption) -> SpreadPool:
        c = option.candidate
        return SpreadPool(option.key, c.price_per_task_slot_hour_usd, c.tasks_per_instance)

    best = plan.options[0]
    if not best.candidate.use_spot:
        tolerance = 0.0
    region = best.candidate.offer.region
    same_region = [o for o in plan.options if o.candidate.offer.region == region]
    chosen = eligible_pools(pool(best), [pool(o) for o in same_region], tolerance)
    counts = spread_launches(instances, chosen)
    return [
        {
            "instance_type": p.key[0],
            "zone": p.key[1] or None,
            "price_per_task_slot_hour_usd": p.price_per_task_slot_hour_usd,
            "share": round(share, 4),
            "instances": n,
        }
        for p, share, n in zip(chosen, shares(chosen), counts, strict=True)
    ]


def describe_plan(plan: JobPlan, config: JobConfig, n_tasks: int) -> dict[str, Any]:
    """The plan as plain data for ``--dry-run``."""
    best = plan.best
    return {
        "job_id": job_id_of(config),
        "provider": config.provider,
        "region": plan.region,
        "instance_type": best.name,
        "zone": plan.options[0].zone or None,
        "vcpus": best.vcpus,
        "memory_gib": best.offer.memory_gib,
        "use_spot": best.use_spot,
        "price_per_hour_usd": best.price_per_hour_usd,
        "tasks_per_instance": best.tasks_per_instance,
        "boot_disk_gb": best.boot_disk_gb,
        "boot_disk_type": best.boot_disk_type,
        "image": plan.image,
        "instances": plan.initial_count,
        "limited_by": plan.limited_by,
        "total_price_per_hour_usd": plan.initial_count * best.price_per_hour_usd,
        "tasks": n_tasks,
        "fallbacks": [
            {"instance_type": o.candidate.name, "zone": o.zone or None} for o in plan.options[1:]
        ],
        "spread": plan_spread(plan, config.run.spot_spread_tolerance, plan.initial_count),
        "startup_script": plan.options[0].startup_script,
    }


__all__ = [
    "RUNNABLE_PROVIDERS",
    "JobPlan",
    "db_path_of",
    "describe_plan",
    "job_id_of",
    "load_tasks",
    "make_plan",
    "plan_spread",
    "pool_settings",
    "queue_name_of",
    "region_of",
    "worker_credentials_notice",
]

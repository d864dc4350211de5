"""Run and provider options (SPEC §4, §6, §7) as frozen value objects.

The configuration loader builds these from the YAML file, the command line and the defaults;
everything downstream receives them already validated. Every default is the option's one
default in ``domain.option_schema``.
"""

from __future__ import annotations

import attrs

from cloud_tasks.domain.constraints import InstanceConstraints
from cloud_tasks.domain.option_schema import DEFAULT_FAILURE_RATE, default
from cloud_tasks.domain.speculation import SpeculationPolicy, parse_speculative_after

PROVIDERS: tuple[str, ...] = ("aws", "gcp", "local", "memory")


@attrs.frozen
class PoolLimits:
    """Limits on the pool of instances (SPEC §6). Prices in USD per hour, cost in USD."""

    min_instances: int = default("min_instances")
    max_instances: int = default("max_instances")
    min_total_cpus: int | None = default("min_total_cpus")
    max_total_cpus: int | None = default("max_total_cpus")
    min_simultaneous_tasks: int | None = default("min_simultaneous_tasks")
    max_simultaneous_tasks: int | None = default("max_simultaneous_tasks")
    min_total_price_per_hour: float | None = default("min_total_price_per_hour")
    max_total_price_per_hour: float | None = default("max_total_price_per_hour")
    max_total_cost: float | None = default("max_total_cost")


@attrs.frozen
class RetryPolicy:
    """Which failures are retried and how often (SPEC §7).

    ``max_attempts`` caps application-failure attempts (0 = unlimited). ``max_preemptions`` is
    the separate, generous cap on deliveries lost to preemption, lost leases or shutdowns.
    """

    retry_on_exit: bool = default("retry_on_exit")
    retry_on_exception: bool = default("retry_on_exception")
    retry_on_timeout: bool = default("retry_on_timeout")
    max_attempts: int = default("max_attempts")
    max_preemptions: int = default("max_preemptions")


@attrs.frozen
class Notify:
    """Where a job's notifications go (run option ``notify``): a webhook, a command, or both.

    ``webhook`` gets each notification as a JSON POST (a Slack-compatible ``text`` field and
    the details); ``command`` runs with the same JSON on its standard input. A failure rate
    above ``failure_rate`` (failed / finished tasks) is notified once. The webhook URL often
    holds a token: it is never printed.
    """

    webhook: str | None = attrs.field(default=None, repr=False)
    command: str | None = None
    failure_rate: float = DEFAULT_FAILURE_RATE

    def describe(self) -> str:
        """What is configured, without the URL (which may hold a token)."""
        parts = (["a webhook"] if self.webhook else []) + (["a command"] if self.command else [])
        return " and ".join(parts) or "nothing"


@attrs.frozen
class RunOptions:
    """Everything that shapes one run of a job, grouped by the part of the domain that uses it.

    Times are in seconds, ``max_memory_allowed_per_task`` in GB. ``on_demand_after_preemptions``
    (0 = never): once a task has lost that many runs to spot preemption, the pool's new
    instances are on-demand until no such task is left. ``spot_spread_tolerance``: spot pools
    spread over every type and zone whose price per task slot is within this fraction of the best.
    """

    constraints: InstanceConstraints = attrs.Factory(InstanceConstraints)
    limits: PoolLimits = attrs.Factory(PoolLimits)
    retry: RetryPolicy = attrs.Factory(RetryPolicy)
    startup_script: str | None = default("startup_script")
    startup_script_file: str | None = default("startup_script_file")
    image: str | None = default("image")
    scaling_check_interval: float = default("scaling_check_interval")
    instance_termination_delay: float = default("instance_termination_delay")
    on_demand_after_preemptions: int = default("on_demand_after_preemptions")
    spot_spread_tolerance: float = default("spot_spread_tolerance")
    max_runtime: float = default("max_runtime")
    max_memory_allowed_per_task: float | None = default("max_memory_allowed_per_task")
    keepalive_interval: float = default("keepalive_interval")
    keepalive_startup_timeout: float = default("keepalive_startup_timeout")
    keepalive_timeout: float = default("keepalive_timeout")
    db_file: str | None = default("db_file")
    notify: Notify | None = default("notify")  # noqa: RUF009 (None, from the option table)
    speculative_after: str | None = default("speculative_after")
    speculative_max_extra_cost: float = default("speculative_max_extra_cost")
    checkpoint_location: str | None = default("checkpoint_location")

    @property
    def speculation(self) -> SpeculationPolicy | None:
        """The speculative re-run policy, or None when ``speculative_after`` is unset."""
        if self.speculative_after is None:
            return None
        return parse_speculative_after(self.speculative_after, self.speculative_max_extra_cost)


@attrs.frozen
class ProviderOptions:
    """Provider options (SPEC §4). Credentials fields are never logged or printed.

    ``catalog`` (memory provider only): ``aws``, ``gcp``, ``all`` or the path of a catalog file.
    ``regions``: other regions new instances may go to when the job's region has no capacity
    for any eligible type (the queue stays in the job's region).
    """

    job_id: str | None = default("job_id")
    queue_name: str | None = default("queue_name")
    region: str | None = default("region")
    zone: str | None = default("zone")
    exactly_once_queue: bool = default("exactly_once_queue")
    access_key: str | None = attrs.field(default=default("access_key"), repr=False)
    secret_key: str | None = attrs.field(default=default("secret_key"), repr=False)
    project_id: str | None = default("project_id")
    credentials_file: str | None = default("credentials_file")
    service_account: str | None = default("service_account")
    regions: tuple[str, ...] = default("regions")
    catalog: str | None = default("catalog")

    @property
    def effective_queue_name(self) -> str | None:
        return self.queue_name or self.job_id


@attrs.frozen
class JobConfig:
    """A fully resolved configuration: provider, its options and the run options.

    ``notices`` holds one line per override (``gcp.min_cpu=8 overrides run.min_cpu=2``).
    ``section`` is the configuration section the options came from: the provider's own, or
    ``aws``/``gcp`` when the ``memory`` provider stands in for that cloud (SPEC §9).
    """

    provider: str
    provider_options: ProviderOptions = attrs.Factory(ProviderOptions)
    run: RunOptions = attrs.Factory(RunOptions)
    source: str | None = None
    notices: tuple[str, ...] = ()
    section: str | None = None

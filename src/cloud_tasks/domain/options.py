"""Run and provider options (SPEC §4, §6, §7) as frozen value objects.

The configuration loader builds these from the YAML file, the command line and the defaults;
everything downstream receives them already validated.
"""

from __future__ import annotations

import attrs

from cloud_tasks.domain.constraints import InstanceConstraints
from cloud_tasks.domain.speculation import SpeculationPolicy, parse_speculative_after

PROVIDERS: tuple[str, ...] = ("aws", "gcp", "local", "memory")


@attrs.frozen
class PoolLimits:
    """Limits on the pool of instances (SPEC §6). Prices in USD per hour, cost in USD."""

    min_instances: int = 0
    max_instances: int = 10
    min_total_cpus: int | None = None
    max_total_cpus: int | None = None
    min_simultaneous_tasks: int | None = None
    max_simultaneous_tasks: int | None = None
    min_total_price_per_hour: float | None = None
    max_total_price_per_hour: float | None = 10.0
    max_total_cost: float | None = None


@attrs.frozen
class RetryPolicy:
    """Which failures are retried and how often (SPEC §7).

    ``max_attempts`` caps application-failure attempts (0 = unlimited). ``max_preemptions`` is
    the separate, generous cap on deliveries lost to preemption, lost leases or shutdowns.
    """

    retry_on_exit: bool = False
    retry_on_exception: bool = False
    retry_on_timeout: bool = False
    max_attempts: int = 5
    max_preemptions: int = 20


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
    failure_rate: float = 0.1

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
    startup_script: str | None = None
    startup_script_file: str | None = None
    image: str | None = None
    scaling_check_interval: float = 60.0
    instance_termination_delay: float = 60.0
    on_demand_after_preemptions: int = 3
    spot_spread_tolerance: float = 0.1
    max_runtime: float = 3600.0
    max_memory_allowed_per_task: float | None = None
    keepalive_interval: float = 60.0
    keepalive_startup_timeout: float = 600.0
    keepalive_timeout: float = 300.0
    db_file: str | None = None
    notify: Notify | None = None
    speculative_after: str | None = None
    speculative_max_extra_cost: float = 0.05

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

    job_id: str | None = None
    queue_name: str | None = None
    region: str | None = None
    zone: str | None = None
    exactly_once_queue: bool = False
    access_key: str | None = attrs.field(default=None, repr=False)
    secret_key: str | None = attrs.field(default=None, repr=False)
    project_id: str | None = None
    credentials_file: str | None = None
    service_account: str | None = None
    regions: tuple[str, ...] = ()
    catalog: str | None = None

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

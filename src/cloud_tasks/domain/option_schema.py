"""Every option, declared once (SPEC §4, §10, §12): key, flags, variables, type, default, help.

One ``Option`` per name. Everything else is made from this table and never restates it:

- the configuration keys and the value objects' defaults (``config.schema``, ``domain.options``,
  ``domain.constraints``); an option with a ``group`` is a configuration key of that group;
- the flags of ``run``, ``manage_pool`` and the other commands (``entrypoints.cli.options``):
  ``--`` plus the dashed name, for configuration options with ``cli``;
- the ``RMS_CLOUD_TASKS_*`` variables the startup script exports (``domain.startup``): options
  with an ``export`` name;
- the worker's flags and variables (``entrypoints.worker.options``): options with
  ``worker_flags``; the worker reads ``RMS_CLOUD_TASKS_<NAME>`` and the ``env_aliases``.

The range of a numeric option is ``domain.ranges.RANGES[name]``. Help texts may hold
``{default}``, replaced by the default as a user would write it. This module is light (the stdlib
only, not even attrs): the worker imports it.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from cloud_tasks.domain.ranges import RANGES, Range

#: The prefix of every environment variable Cloud Tasks reads or the startup script exports.
ENV_PREFIX = "RMS_CLOUD_TASKS_"

#: ``notify.failure_rate`` when a ``notify`` mapping leaves it out.
DEFAULT_FAILURE_RATE = 0.1

Kind = Literal["int", "float", "bool", "str", "str_list", "notify", "count"]
Group = Literal["constraints", "limits", "retry", "run", "provider"]


def format_default(value: Any) -> str:
    """A default as a user would type it: ``3600`` rather than ``3600.0``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class Option(NamedTuple):
    """One option. ``optional``: ``None`` is a valid value ("no limit", "unset").

    ``group``: the value object a configuration key belongs to (``None``: the worker's only).
    ``cli``: the commands offer the configuration key as a flag. ``provider_only``: the one
    provider section that may hold it. ``worker_flags``: the worker's flags (empty: not a worker
    option), ``worker_help`` the worker's wording when it differs from ``help``. ``export``: the
    variable the startup script sets (without the prefix), one of the worker's.
    """

    name: str
    kind: Kind
    default: Any
    help: str
    group: Group | None = None
    optional: bool = False
    cli: bool = True
    provider_only: str | None = None
    worker_flags: tuple[str, ...] = ()
    worker_help: str | None = None
    env_aliases: tuple[str, ...] = ()
    export: str | None = None

    @property
    def flag(self) -> str | None:
        """The commands' flag for this configuration key (``--max-instances``), or ``None``."""
        if self.group is None or not self.cli:
            return None
        return "--" + self.name.replace("_", "-")

    @property
    def env_names(self) -> tuple[str, ...]:
        """The variables the worker reads, in order of precedence (empty: not a worker option)."""
        if not self.worker_flags:
            return ()
        return (ENV_PREFIX + self.name.upper(), *(ENV_PREFIX + n for n in self.env_aliases))

    @property
    def range(self) -> Range | None:
        """The sane range of a numeric option (``domain.ranges``)."""
        return RANGES.get(self.name) if self.kind in ("int", "float") else None

    @property
    def worker_text(self) -> str:
        """The worker's help text for this option, its default filled in."""
        text = self.worker_help if self.worker_help is not None else self.help
        return text.format(default=format_default(self.default))


def _c(group: Group, name: str, kind: Kind, default: Any, help: str, **more: Any) -> Option:
    """A configuration option; ``None`` is allowed when it is the default."""
    more.setdefault("optional", default is None)
    return Option(name, kind, default, help, group=group, **more)


#: Every option. The worker's options come first, in the order of its ``--help``; the other
#: configuration keys follow in the order of their value objects' fields.
OPTIONS: tuple[Option, ...] = (
    # --- the worker's options (SPEC §10), shared keys with the configuration among them
    Option(
        "task_file",
        "str",
        None,
        "JSON or YAML task file to run locally (file mode); without it tasks come from the queue",
        optional=True,
        worker_flags=("--tasks", "--task-file"),
        env_aliases=("TASKS",),
    ),
    Option(
        "provider",
        "str",
        None,
        "aws, gcp, local or memory (queue mode)",
        optional=True,
        worker_flags=("--provider",),
        export="PROVIDER",
    ),
    _c(
        "provider",
        "project_id",
        "str",
        None,
        "GCP project id.",
        provider_only="gcp",
        worker_flags=("--project-id",),
        worker_help="GCP project id",
        export="PROJECT_ID",
    ),
    _c(
        "provider",
        "region",
        "str",
        None,
        "Region to run in (derived from zone when only zone is given).",
        worker_flags=("--region",),
        worker_help="region of the queue and of this instance",
        export="REGION",
    ),
    _c(
        "provider",
        "zone",
        "str",
        None,
        "Zone to run in.",
        worker_flags=("--zone",),
        worker_help="zone of this instance",
        export="ZONE",
    ),
    _c(
        "provider",
        "job_id",
        "str",
        None,
        "Job name: lowercase letters, digits and '-', starting with a letter, at most "
        "24 characters. Names the queues and tags the instances.",
        worker_flags=("--job-id",),
        worker_help="job id; the queue is named after it by default",
        export="JOB_ID",
    ),
    _c(
        "provider",
        "queue_name",
        "str",
        None,
        "Task queue name (default: the job id).",
        worker_flags=("--queue-name",),
        worker_help="task queue name (default: the job id)",
        export="QUEUE_NAME",
    ),
    _c(
        "provider",
        "exactly_once_queue",
        "bool",
        False,
        "Use an exactly-once delivery queue where the provider offers one.",
        worker_flags=("--exactly-once-queue",),
        worker_help="the queue was created with exactly-once delivery (Pub/Sub)",
        export="EXACTLY_ONCE_QUEUE",
    ),
    Option(
        "event_log_file",
        "str",
        "events.log",
        "file for JSON-lines events (default: {default})",
        worker_flags=("--event-log-file",),
    ),
    Option(
        "event_log_to_file",
        "bool",
        None,
        "write events to the event log file (default: on in file mode)",
        optional=True,
        worker_flags=("--event-log-to-file",),
    ),
    Option(
        "event_log_to_queue",
        "bool",
        None,
        "send events to the <queue>-events queue (default: on in queue mode)",
        optional=True,
        worker_flags=("--event-log-to-queue",),
        export="EVENT_LOG_TO_QUEUE",
    ),
    _c(
        "run",
        "keepalive_interval",
        "float",
        60.0,
        "Seconds between worker keep-alive messages; 0 = off.",
        worker_flags=("--keepalive-interval",),
        worker_help="seconds between keep_alive events in queue mode (default {default}; 0 = off)",
        export="KEEPALIVE_INTERVAL",
    ),
    Option(
        "instance_type",
        "str",
        None,
        "instance type of this VM",
        optional=True,
        worker_flags=("--instance-type",),
        export="INSTANCE_TYPE",
    ),
    Option(
        "num_cpus",
        "int",
        None,
        "vCPUs of this VM",
        optional=True,
        worker_flags=("--num-cpus",),
        export="NUM_CPUS",
    ),
    Option(
        "memory",
        "float",
        None,
        "memory of this VM in GB",
        optional=True,
        worker_flags=("--memory",),
        export="MEMORY",
    ),
    Option(
        "local_ssd",
        "float",
        None,
        "local SSD of this VM in GB",
        optional=True,
        worker_flags=("--local-ssd",),
        export="LOCAL_SSD",
    ),
    Option(
        "boot_disk",
        "float",
        None,
        "boot disk of this VM in GB",
        optional=True,
        worker_flags=("--boot-disk",),
        export="BOOT_DISK",
    ),
    Option(
        "is_spot",
        "bool",
        False,
        "this VM is a spot VM (watch for notices)",
        worker_flags=("--is-spot",),
        export="IS_SPOT",
    ),
    Option(
        "price",
        "float",
        None,
        "price of this VM in USD per hour",
        optional=True,
        worker_flags=("--price",),
        export="PRICE",
    ),
    Option(
        "num_simultaneous_tasks",
        "int",
        None,
        "tasks run at once (default: --num-cpus if known, else 1)",
        optional=True,
        worker_flags=("--num-simultaneous-tasks",),
        env_aliases=("NUM_TASKS_PER_INSTANCE",),
        export="NUM_TASKS_PER_INSTANCE",
    ),
    _c(
        "run",
        "max_runtime",
        "float",
        3600.0,
        "Seconds one task may run before it is killed.",
        worker_flags=("--max-runtime",),
        worker_help="seconds a task may run before it is killed (default {default})",
        export="MAX_RUNTIME",
    ),
    _c(
        "run",
        "max_memory_allowed_per_task",
        "float",
        None,
        "Memory limit of one task process, GB (unset = no limit).",
        worker_flags=("--max-memory-allowed-per-task",),
        worker_help="address-space limit per task in GB (RLIMIT_AS); exceeding it is a memory "
        "outcome",
        export="MAX_MEMORY_ALLOWED_PER_TASK",
    ),
    _c(
        "retry",
        "max_attempts",
        "int",
        5,
        "Application-failure attempts before a task is dead-lettered; 0 = no limit.",
        worker_flags=("--max-attempts",),
        worker_help="application-failure attempts before a task is dead-lettered "
        "(default {default}; 0 = no cap)",
        export="MAX_ATTEMPTS",
    ),
    _c(
        "retry",
        "max_preemptions",
        "int",
        20,
        "Deliveries lost to preemption or shutdown before a task is dead-lettered (these never "
        "count against max_attempts).",
        worker_flags=("--max-preemptions",),
        worker_help="deliveries lost to preemption or shutdown before a task is dead-lettered "
        "(default {default}; 0 = no cap)",
        export="MAX_PREEMPTIONS",
    ),
    Option(
        "shutdown_grace_period",
        "float",
        30.0,
        "seconds running tasks get to finish after SIGINT/SIGTERM (default {default})",
        worker_flags=("--shutdown-grace-period",),
    ),
    Option(
        "tasks_to_skip",
        "int",
        0,
        "skip this many tasks at the start of the task file",
        worker_flags=("--tasks-to-skip",),
        env_aliases=("TO_SKIP",),
    ),
    Option(
        "max_num_tasks",
        "int",
        None,
        "stop after starting this many tasks",
        optional=True,
        worker_flags=("--max-num-tasks",),
    ),
    _c(
        "retry",
        "retry_on_exit",
        "bool",
        False,
        "Retry a task whose process died (exit, signal, out of memory).",
        worker_flags=("--retry-on-exit",),
        worker_help="retry a task whose process exited or was killed",
        export="RETRY_ON_EXIT",
    ),
    _c(
        "retry",
        "retry_on_exception",
        "bool",
        False,
        "Retry a task that raised an exception.",
        worker_flags=("--retry-on-exception",),
        worker_help="retry a task that raised an exception",
        export="RETRY_ON_EXCEPTION",
    ),
    _c(
        "retry",
        "retry_on_timeout",
        "bool",
        False,
        "Retry a task that exceeded max_runtime.",
        worker_flags=("--retry-on-timeout",),
        worker_help="retry a task that exceeded --max-runtime",
        export="RETRY_ON_TIMEOUT",
    ),
    Option(
        "simulate_spot_termination_after",
        "float",
        None,
        "simulate a spot termination notice this many seconds after start",
        optional=True,
        worker_flags=("--simulate-spot-termination-after",),
    ),
    Option(
        "simulate_spot_termination_delay",
        "float",
        None,
        "seconds from a (simulated) notice until running tasks are killed and released",
        optional=True,
        worker_flags=("--simulate-spot-termination-delay",),
    ),
    Option(
        "exit_when_idle",
        "float",
        None,
        "queue mode: exit after the queue stayed empty this many seconds (default: never)",
        optional=True,
        worker_flags=("--exit-when-idle",),
    ),
    Option(
        "visibility_timeout",
        "float",
        120.0,
        "queue mode: lease length in seconds, renewed every third of it (default {default})",
        worker_flags=("--visibility-timeout",),
    ),
    _c(
        "run",
        "checkpoint_location",
        "str",
        None,
        "Where workers keep worker_data.checkpoint: a folder on the instance, "
        "s3://BUCKET/PREFIX or gs://BUCKET/PREFIX (unset = no checkpoints).",
        worker_flags=("--checkpoint-location",),
        worker_help="folder, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX for worker_data.checkpoint",
        export="CHECKPOINT_LOCATION",
    ),
    Option(
        "gpus",
        "int",
        None,
        "GPUs of this VM; each task slot gets its own (CUDA_VISIBLE_DEVICES)",
        optional=True,
        worker_flags=("--gpus",),
        export="GPUS",
    ),
    _c(
        "constraints",
        "gpus_per_task",
        "float",
        None,
        "GPUs each task needs; tasks per instance are also limited to GPUs / gpus_per_task, and "
        "each task sees its own GPUs (CUDA_VISIBLE_DEVICES).",
        worker_flags=("--gpus-per-task",),
        worker_help="GPUs each task slot sees (default: an equal share of --gpus)",
        export="GPUS_PER_TASK",
    ),
    Option(
        "report_task_starts",
        "bool",
        False,
        "queue mode: send a task_started event as each task starts (for speculative re-runs)",
        worker_flags=("--report-task-starts",),
        export="REPORT_TASK_STARTS",
    ),
    Option(
        "verbose",
        "count",
        0,
        "more log output on stderr (repeatable)",
        worker_flags=("-v", "--verbose"),
    ),
    # --- instance constraints (SPEC §5)
    _c(
        "constraints",
        "architecture",
        "str",
        "x86_64",
        "CPU architecture: x86_64 or arm64; null for either.",
        optional=True,
    ),
    _c(
        "constraints",
        "cpu_family",
        "str",
        None,
        "Only instance types of this CPU family (e.g. 'Intel Ice Lake').",
    ),
    _c("constraints", "min_cpu_rank", "int", None, "Lowest acceptable CPU performance rank."),
    _c("constraints", "max_cpu_rank", "int", None, "Highest acceptable CPU performance rank."),
    _c(
        "constraints",
        "instance_types",
        "str_list",
        (),
        "Regular expressions; a type is eligible "
        "when any matches its name (anywhere, unless anchored with ^ or $). A single string or a "
        "list.",
    ),
    _c("constraints", "min_cpu", "int", None, "Fewest vCPUs per instance."),
    _c("constraints", "max_cpu", "int", None, "Most vCPUs per instance."),
    _c(
        "constraints",
        "cpus_per_task",
        "float",
        1.0,
        "vCPUs each task needs; tasks per instance = vCPUs / cpus_per_task.",
    ),
    _c(
        "constraints",
        "min_tasks_per_instance",
        "int",
        None,
        "Fewest tasks one instance must run at once.",
    ),
    _c(
        "constraints",
        "max_tasks_per_instance",
        "int",
        None,
        "Most tasks one instance may run at once.",
    ),
    _c("constraints", "min_total_memory", "float", None, "Least memory per instance, GiB."),
    _c("constraints", "max_total_memory", "float", None, "Most memory per instance, GiB."),
    _c("constraints", "min_memory_per_cpu", "float", None, "Least memory per vCPU, GiB."),
    _c("constraints", "max_memory_per_cpu", "float", None, "Most memory per vCPU, GiB."),
    _c("constraints", "min_memory_per_task", "float", None, "Least memory per task, GiB."),
    _c("constraints", "max_memory_per_task", "float", None, "Most memory per task, GiB."),
    _c("constraints", "min_local_ssd", "float", None, "Least local SSD per instance, GB."),
    _c("constraints", "max_local_ssd", "float", None, "Most local SSD per instance, GB."),
    _c(
        "constraints",
        "local_ssd_base_size",
        "float",
        0.0,
        "Local SSD reserved for the system before per-CPU/per-task shares are computed, GB.",
    ),
    _c("constraints", "min_local_ssd_per_cpu", "float", None, "Least local SSD per vCPU, GB."),
    _c("constraints", "max_local_ssd_per_cpu", "float", None, "Most local SSD per vCPU, GB."),
    _c("constraints", "min_local_ssd_per_task", "float", None, "Least local SSD per task, GB."),
    _c("constraints", "max_local_ssd_per_task", "float", None, "Most local SSD per task, GB."),
    _c(
        "constraints",
        "boot_disk_types",
        "str_list",
        (),
        "Acceptable boot disk types (e.g. "
        "pd-balanced, gp3), best first. A single string or a list.",
    ),
    _c(
        "constraints",
        "boot_disk_iops",
        "int",
        None,
        "Provisioned boot disk IOPS, where the disk type supports it.",
    ),
    _c(
        "constraints",
        "boot_disk_throughput",
        "int",
        None,
        "Provisioned boot disk throughput, MB/s, where supported.",
    ),
    _c("constraints", "total_boot_disk_size", "float", 10.0, "Smallest boot disk, GB."),
    _c(
        "constraints",
        "boot_disk_base_size",
        "float",
        0.0,
        "Boot disk for the system before per-CPU/per-task space, GB.",
    ),
    _c("constraints", "boot_disk_per_cpu", "float", None, "Extra boot disk per vCPU, GB."),
    _c("constraints", "boot_disk_per_task", "float", None, "Extra boot disk per task, GB."),
    _c("constraints", "use_spot", "bool", False, "Use spot (preemptible) instances."),
    _c(
        "constraints",
        "gpu_type",
        "str_list",
        (),
        "Regular expressions for the GPU type, "
        "case-insensitive (e.g. 't4', 'a100|h100'); only instance types with such GPUs. A single "
        "string or a list.",
    ),
    _c("constraints", "min_gpus", "int", None, "Fewest GPUs per instance."),
    _c("constraints", "max_gpus", "int", None, "Most GPUs per instance."),
    _c("constraints", "min_gpu_memory", "float", None, "Least memory of each GPU, GiB."),
    # --- pool limits (SPEC §6)
    _c("limits", "min_instances", "int", 0, "Fewest instances while work remains."),
    _c("limits", "max_instances", "int", 10, "Most instances at once."),
    _c("limits", "min_total_cpus", "int", None, "Fewest vCPUs across the pool."),
    _c("limits", "max_total_cpus", "int", None, "Most vCPUs across the pool."),
    _c("limits", "min_simultaneous_tasks", "int", None, "Fewest task slots across the pool."),
    _c("limits", "max_simultaneous_tasks", "int", None, "Most task slots across the pool."),
    _c(
        "limits",
        "min_total_price_per_hour",
        "float",
        None,
        "Least the pool should cost, USD per hour.",
    ),
    _c(
        "limits",
        "max_total_price_per_hour",
        "float",
        10.0,
        "Most the pool may cost, USD per hour.",
        optional=True,
    ),
    _c(
        "limits",
        "max_total_cost",
        "float",
        None,
        "Most the whole job may cost, USD; at the cap the pool drains and stops.",
    ),
    # --- other run options (SPEC §4)
    _c(
        "run",
        "startup_script",
        "str",
        None,
        "The startup script text each instance runs (exclusive with startup_script_file).",
        cli=False,
    ),
    _c(
        "run",
        "startup_script_file",
        "str",
        None,
        "File holding the startup script; a relative path is relative to the configuration file.",
    ),
    _c(
        "run",
        "image",
        "str",
        None,
        "Boot image for the instances (provider's default Linux image when unset).",
    ),
    _c("run", "scaling_check_interval", "float", 60.0, "Seconds between pool-size checks."),
    _c(
        "run",
        "instance_termination_delay",
        "float",
        60.0,
        "Seconds an instance may sit idle before it is terminated.",
    ),
    _c(
        "run",
        "on_demand_after_preemptions",
        "int",
        3,
        "With use_spot: once a task has lost this "
        "many runs to preemption, new instances are started on-demand until no such task is "
        "left; 0 = never.",
    ),
    _c(
        "run",
        "spot_spread_tolerance",
        "float",
        0.1,
        "With use_spot: spread the pool over every "
        "instance type and zone whose price per task slot is within this fraction of the best "
        "(0.1 = 10 %), so that one spot reclaim wave cannot take the whole pool; 0 = every "
        "instance in the best pool.",
    ),
    _c(
        "run",
        "keepalive_startup_timeout",
        "float",
        600.0,
        "Seconds a new instance has to send its first keep-alive before it is replaced; 0 = off.",
    ),
    _c(
        "run",
        "keepalive_timeout",
        "float",
        300.0,
        "Seconds an instance may stay silent before it is replaced; 0 = off.",
    ),
    _c("run", "db_file", "str", None, "SQLite task database (default: <job_id>.db)."),
    _c(
        "run",
        "notify",
        "notify",
        None,
        "Notifications on job done, job failed or stopped, "
        "failure rate above a threshold and spend at 50/80/100 % of max_total_cost, each at most "
        "once per job: a webhook URL, or a mapping with webhook (URL, gets a JSON POST with a "
        "Slack-compatible text), command (run with the JSON on its standard input) and "
        f"failure_rate (default {DEFAULT_FAILURE_RATE}). The flag takes a webhook URL.",
    ),
    _c(
        "run",
        "speculative_after",
        "str",
        None,
        "Speculative re-runs: once the queue is empty "
        "and slots are idle, a task running longer than this is started again on another "
        "instance; seconds (600) or a multiple of the running median task time (3x). Unset = "
        "off.",
    ),
    _c(
        "run",
        "speculative_max_extra_cost",
        "float",
        0.05,
        "Cap on speculative re-runs: their "
        "expected cost as a fraction of the job's spend so far (0.05 = 5 %).",
    ),
    # --- provider options (SPEC §4)
    _c(
        "provider",
        "credentials_file",
        "str",
        None,
        "GCP service-account key file (default: Application Default Credentials).",
        provider_only="gcp",
    ),
    _c(
        "provider",
        "access_key",
        "str",
        None,
        "AWS access key id (default: the boto3 credential chain).",
        provider_only="aws",
        cli=False,
    ),
    _c(
        "provider",
        "secret_key",
        "str",
        None,
        "AWS secret access key (default: the boto3 credential chain).",
        provider_only="aws",
        cli=False,
    ),
    _c(
        "provider",
        "service_account",
        "str",
        None,
        "Who the instances' worker acts as. GCP: a "
        "service account email (default: the project's default compute service account, "
        "cloud-platform scope). AWS: an IAM instance profile name (default: none; the startup "
        "script must then give the worker AWS credentials).",
        cli=False,
    ),
    _c(
        "provider",
        "regions",
        "str_list",
        (),
        "Other regions new instances may go to, cheapest "
        "first, when every zone of the job's region is out of capacity for every eligible type; "
        "the queue stays in the job's region. A list of region names.",
        cli=False,
    ),
    _c(
        "provider",
        "catalog",
        "str",
        None,
        "Instance catalog for the memory provider: aws, gcp, all, or a catalog file.",
        provider_only="memory",
        cli=False,
    ),
)

#: Every option by name.
BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}


def default(name: str) -> Any:
    """The one default of option ``name`` (a ``KeyError`` at import time for a typo)."""
    return BY_NAME[name].default


__all__ = [
    "BY_NAME",
    "DEFAULT_FAILURE_RATE",
    "ENV_PREFIX",
    "OPTIONS",
    "Group",
    "Kind",
    "Option",
    "default",
    "format_default",
]

"""The configuration schema: one ``OptionSpec`` per option, read from the attrs value objects.

The value objects in ``cloud_tasks.domain`` are the single list of options; this module only
adds what they cannot say themselves (help text, which provider an option belongs to) and
never lists a field twice. The CLI flags, the loader and ``docs/configuration.md`` are all
generated from ``RUN_OPTIONS`` and ``PROVIDER_OPTIONS``.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

import attrs

from cloud_tasks.domain.constraints import InstanceConstraints
from cloud_tasks.domain.options import Notify, PoolLimits, ProviderOptions, RetryPolicy, RunOptions
from cloud_tasks.domain.ranges import RANGES

Kind = Literal["int", "float", "bool", "str", "str_list", "notify"]
Group = Literal["constraints", "limits", "retry", "run", "provider"]

#: The run option that has no command-line flag (a script does not fit on a command line).
NO_FLAG: frozenset[str] = frozenset({"startup_script"})

#: The provider options offered as flags by every command (credentials never go on a command
#: line; ``catalog`` and ``service_account`` are set in the file).
PROVIDER_FLAGS: tuple[str, ...] = (
    "job_id",
    "queue_name",
    "region",
    "zone",
    "project_id",
    "credentials_file",
    "exactly_once_queue",
)

#: Provider options valid only in one provider's section.
PROVIDER_ONLY: dict[str, str] = {
    "access_key": "aws",
    "secret_key": "aws",
    "project_id": "gcp",
    "credentials_file": "gcp",
    "catalog": "memory",
}

_HELP: dict[str, str] = {
    # instance constraints (SPEC §5)
    "architecture": "CPU architecture: x86_64 or arm64; null for either.",
    "cpu_family": "Only instance types of this CPU family (e.g. 'Intel Ice Lake').",
    "min_cpu_rank": "Lowest acceptable CPU performance rank.",
    "max_cpu_rank": "Highest acceptable CPU performance rank.",
    "instance_types": "Regular expressions; a type is eligible when any matches its name "
    "(anywhere, unless anchored with ^ or $). A single string or a list.",
    "min_cpu": "Fewest vCPUs per instance.",
    "max_cpu": "Most vCPUs per instance.",
    "cpus_per_task": "vCPUs each task needs; tasks per instance = vCPUs / cpus_per_task.",
    "min_tasks_per_instance": "Fewest tasks one instance must run at once.",
    "max_tasks_per_instance": "Most tasks one instance may run at once.",
    "min_total_memory": "Least memory per instance, GiB.",
    "max_total_memory": "Most memory per instance, GiB.",
    "min_memory_per_cpu": "Least memory per vCPU, GiB.",
    "max_memory_per_cpu": "Most memory per vCPU, GiB.",
    "min_memory_per_task": "Least memory per task, GiB.",
    "max_memory_per_task": "Most memory per task, GiB.",
    "min_local_ssd": "Least local SSD per instance, GB.",
    "max_local_ssd": "Most local SSD per instance, GB.",
    "local_ssd_base_size": "Local SSD reserved for the system before per-CPU/per-task "
    "shares are computed, GB.",
    "min_local_ssd_per_cpu": "Least local SSD per vCPU, GB.",
    "max_local_ssd_per_cpu": "Most local SSD per vCPU, GB.",
    "min_local_ssd_per_task": "Least local SSD per task, GB.",
    "max_local_ssd_per_task": "Most local SSD per task, GB.",
    "boot_disk_types": "Acceptable boot disk types (e.g. pd-balanced, gp3), best first. "
    "A single string or a list.",
    "boot_disk_iops": "Provisioned boot disk IOPS, where the disk type supports it.",
    "boot_disk_throughput": "Provisioned boot disk throughput, MB/s, where supported.",
    "total_boot_disk_size": "Smallest boot disk, GB.",
    "boot_disk_base_size": "Boot disk for the system before per-CPU/per-task space, GB.",
    "boot_disk_per_cpu": "Extra boot disk per vCPU, GB.",
    "boot_disk_per_task": "Extra boot disk per task, GB.",
    "use_spot": "Use spot (preemptible) instances.",
    "gpu_type": "Regular expressions for the GPU type, case-insensitive (e.g. 't4', "
    "'a100|h100'); only instance types with such GPUs. A single string or a list.",
    "min_gpus": "Fewest GPUs per instance.",
    "max_gpus": "Most GPUs per instance.",
    "gpus_per_task": "GPUs each task needs; tasks per instance are also limited to "
    "GPUs / gpus_per_task, and each task sees its own GPUs (CUDA_VISIBLE_DEVICES).",
    "min_gpu_memory": "Least memory of each GPU, GiB.",
    # pool limits (SPEC §6)
    "min_instances": "Fewest instances while work remains.",
    "max_instances": "Most instances at once.",
    "min_total_cpus": "Fewest vCPUs across the pool.",
    "max_total_cpus": "Most vCPUs across the pool.",
    "min_simultaneous_tasks": "Fewest task slots across the pool.",
    "max_simultaneous_tasks": "Most task slots across the pool.",
    "min_total_price_per_hour": "Least the pool should cost, USD per hour.",
    "max_total_price_per_hour": "Most the pool may cost, USD per hour.",
    "max_total_cost": "Most the whole job may cost, USD; at the cap the pool drains and stops.",
    # retry policy (SPEC §7)
    "retry_on_exit": "Retry a task whose process died (exit, signal, out of memory).",
    "retry_on_exception": "Retry a task that raised an exception.",
    "retry_on_timeout": "Retry a task that exceeded max_runtime.",
    "max_attempts": "Application-failure attempts before a task is dead-lettered; 0 = no limit.",
    "max_preemptions": "Deliveries lost to preemption or shutdown before a task is "
    "dead-lettered (these never count against max_attempts).",
    # other run options (SPEC §4)
    "startup_script": "The startup script text each instance runs (exclusive with "
    "startup_script_file).",
    "startup_script_file": "File holding the startup script; a relative path is relative to "
    "the configuration file.",
    "image": "Boot image for the instances (provider's default Linux image when unset).",
    "scaling_check_interval": "Seconds between pool-size checks.",
    "instance_termination_delay": "Seconds an instance may sit idle before it is terminated.",
    "on_demand_after_preemptions": "With use_spot: once a task has lost this many runs to "
    "preemption, new instances are started on-demand until no such task is left; 0 = never.",
    "spot_spread_tolerance": "With use_spot: spread the pool over every instance type and zone "
    "whose price per task slot is within this fraction of the best (0.1 = 10 %), so that one "
    "spot reclaim wave cannot take the whole pool; 0 = every instance in the best pool.",
    "max_runtime": "Seconds one task may run before it is killed.",
    "max_memory_allowed_per_task": "Memory limit of one task process, GB (unset = no limit).",
    "keepalive_interval": "Seconds between worker keep-alive messages; 0 = off.",
    "keepalive_startup_timeout": "Seconds a new instance has to send its first keep-alive "
    "before it is replaced; 0 = off.",
    "keepalive_timeout": "Seconds an instance may stay silent before it is replaced; 0 = off.",
    "db_file": "SQLite task database (default: <job_id>.db).",
    "notify": "Notifications on job done, job failed or stopped, failure rate above a "
    "threshold and spend at 50/80/100 % of max_total_cost, each at most once per job: a "
    "webhook URL, or a mapping with webhook (URL, gets a JSON POST with a Slack-compatible "
    "text), command (run with the JSON on its standard input) and failure_rate (default 0.1). "
    "The flag takes a webhook URL.",
    "speculative_after": "Speculative re-runs: once the queue is empty and slots are idle, a "
    "task running longer than this is started again on another instance; seconds (600) or a "
    "multiple of the running median task time (3x). Unset = off.",
    "speculative_max_extra_cost": "Cap on speculative re-runs: their expected cost as a "
    "fraction of the job's spend so far (0.05 = 5 %).",
    # provider options (SPEC §4)
    "job_id": "Job name: lowercase letters, digits and '-', starting with a letter, at most "
    "24 characters. Names the queues and tags the instances.",
    "queue_name": "Task queue name (default: the job id).",
    "region": "Region to run in (derived from zone when only zone is given).",
    "zone": "Zone to run in.",
    "exactly_once_queue": "Use an exactly-once delivery queue where the provider offers one.",
    "access_key": "AWS access key id (default: the boto3 credential chain).",
    "secret_key": "AWS secret access key (default: the boto3 credential chain).",
    "project_id": "GCP project id.",
    "credentials_file": "GCP service-account key file (default: Application Default Credentials).",
    "service_account": "Who the instances' worker acts as. GCP: a service account email "
    "(default: the project's default compute service account, cloud-platform scope). AWS: an "
    "IAM instance profile name (default: none; the startup script must then give the worker "
    "AWS credentials).",
    "regions": "Other regions new instances may go to, cheapest first, when every zone of the "
    "job's region is out of capacity for every eligible type; the queue stays in the job's "
    "region. A list of region names.",
    "catalog": "Instance catalog for the memory provider: aws, gcp, all, or a catalog file.",
}


@attrs.frozen
class OptionSpec:
    """One configuration option: its key, type, default, where it lives and its help text."""

    name: str
    kind: Kind
    optional: bool
    default: Any
    group: Group
    help: str

    @property
    def flag(self) -> str | None:
        """The command-line flag (``--max-instances``), or ``None`` when there is none."""
        if self.name in NO_FLAG or (self.group == "provider" and self.name not in PROVIDER_FLAGS):
            return None
        return "--" + self.name.replace("_", "-")

    @property
    def provider_only(self) -> str | None:
        """The one provider whose section may hold this option, if it is provider-specific."""
        return PROVIDER_ONLY.get(self.name)


def _kind_of(annotation: Any) -> tuple[Kind, bool]:
    """Map a field annotation (``int | None``, ``tuple[str, ...]``) to its kind and optionality."""
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"unsupported option type {annotation!r}")
        kind, _ = _kind_of(rest[0])
        return kind, True
    if typing.get_origin(annotation) is tuple and args in ((str, Ellipsis),):
        return "str_list", False
    simple: dict[Any, Kind] = {
        int: "int",
        float: "float",
        bool: "bool",
        str: "str",
        Notify: "notify",
    }
    if annotation in simple:
        return simple[annotation], False
    raise TypeError(f"unsupported option type {annotation!r}")


def _specs(cls: type, group: Group, skip: frozenset[str] = frozenset()) -> list[OptionSpec]:
    hints = typing.get_type_hints(cls)
    specs = []
    for field in attrs.fields(cls):
        if field.name in skip:
            continue
        kind, optional = _kind_of(hints[field.name])
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        specs.append(
            OptionSpec(field.name, kind, optional, default, group, _HELP.get(field.name, ""))
        )
    return specs


_NESTED: dict[str, tuple[type, Group]] = {
    "constraints": (InstanceConstraints, "constraints"),
    "limits": (PoolLimits, "limits"),
    "retry": (RetryPolicy, "retry"),
}

#: Every run option, keyed by its flat name (``max_instances``), in documentation order.
RUN_OPTIONS: dict[str, OptionSpec] = {
    spec.name: spec for cls, group in _NESTED.values() for spec in _specs(cls, group)
}
RUN_OPTIONS.update((spec.name, spec) for spec in _specs(RunOptions, "run", skip=frozenset(_NESTED)))

#: Every provider option, keyed by name.
PROVIDER_OPTIONS: dict[str, OptionSpec] = {
    spec.name: spec for spec in _specs(ProviderOptions, "provider")
}

SECTIONS: tuple[str, ...] = ("provider", "run", "aws", "gcp", "local", "memory")


def nested_group(name: str) -> str | None:
    """The ``RunOptions`` attribute holding run option ``name`` (``limits``), or ``None``."""
    group = RUN_OPTIONS[name].group
    return group if group in _NESTED else None


def format_value(value: Any) -> str:
    """A value as a user would write it in YAML (``true``, ``null``, ``[n2-, e2-]``)."""
    if value is None:
        return "null"
    if isinstance(value, Notify):
        return f"<{value.describe()}>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def render_option_table() -> str:
    """The Markdown table of every option that ``docs/configuration.md`` must contain."""
    lines = [
        "| key | default | range | flag | sections | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for spec in (*PROVIDER_OPTIONS.values(), *RUN_OPTIONS.values()):
        if spec.group == "provider":
            sections = spec.provider_only or "aws, gcp, local, memory"
        else:
            sections = "run, aws, gcp, local, memory"
        flag = f"`{spec.flag}`" if spec.flag else "—"
        if spec.flag and spec.kind == "bool":
            flag = f"`{spec.flag}` / `--no-{spec.flag[2:]}`"
        default = format_value(spec.default)
        bounds = RANGES.get(spec.name) if spec.kind in ("int", "float") else None
        shown = f"`{bounds.interval()}`" if bounds is not None else "—"
        lines.append(
            f"| `{spec.name}` | `{default}` | {shown} | {flag} | {sections} | {spec.help} |"
        )
    return "\n".join(lines) + "\n"

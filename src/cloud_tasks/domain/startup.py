"""The startup script every instance runs (SPEC §12).

The user's script gets an export block of ``RMS_CLOUD_TASKS_*`` variables so that the worker on
the instance knows everything the manager knows: where the queue is, what it runs on, and the
retry and runtime policy: every option of the option table with an ``export`` name
(``domain.option_schema``). The block goes right after a bash shebang (one is prepended when the
script has none); every value is shell-quoted.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

import attrs

from cloud_tasks.domain.option_schema import ENV_PREFIX, OPTIONS, Option, default
from cloud_tasks.exceptions import ConfigError

AWS_USER_DATA_LIMIT_BYTES = 16 * 1024
GCP_STARTUP_SCRIPT_LIMIT_BYTES = 256 * 1024
DEFAULT_SHEBANG = "#!/bin/bash"
BLOCK_BEGIN = "# --- cloud_tasks worker settings (generated; do not edit) ---"
BLOCK_END = "# --- end of cloud_tasks worker settings ---"

_SHELLS = ("bash", "sh")


@attrs.frozen
class WorkerSettings:
    """Every worker option the manager knows when it launches an instance.

    Sizes: ``memory_gib`` in GiB, ``local_ssd_gb``/``boot_disk_gb``/
    ``max_memory_allowed_per_task_gb`` in GB; times in seconds; price in USD per hour.
    ``extra`` carries provider-specific variables (already without the prefix), e.g. where the
    local provider keeps its queue database. Defaults are the options' own.
    """

    provider: str
    job_id: str
    queue_name: str
    instance_type: str
    num_cpus: int
    memory_gib: float
    num_tasks_per_instance: int
    project_id: str | None = default("project_id")
    region: str | None = default("region")
    zone: str | None = default("zone")
    local_ssd_gb: float | None = default("local_ssd")
    boot_disk_gb: float | None = default("boot_disk")
    is_spot: bool = default("is_spot")
    price_per_hour_usd: float | None = default("price")
    max_runtime_s: float = default("max_runtime")
    retry_on_exit: bool = default("retry_on_exit")
    retry_on_exception: bool = default("retry_on_exception")
    retry_on_timeout: bool = default("retry_on_timeout")
    max_attempts: int = default("max_attempts")
    max_preemptions: int = default("max_preemptions")
    max_memory_allowed_per_task_gb: float | None = default("max_memory_allowed_per_task")
    keepalive_interval_s: float = default("keepalive_interval")
    exactly_once_queue: bool = default("exactly_once_queue")
    extra: tuple[tuple[str, str], ...] = ()
    gpus: int | None = default("gpus")
    gpus_per_task: float | None = default("gpus_per_task")
    report_task_starts: bool = default("report_task_starts")
    checkpoint_location: str | None = default("checkpoint_location")

    def option_values(self) -> dict[str, Any]:
        """The value of every exported option, by option name; ``None``: not exported."""
        return {
            "provider": self.provider,
            "project_id": self.project_id,
            "region": self.region,
            "zone": self.zone,
            "job_id": self.job_id,
            "queue_name": self.queue_name,
            "exactly_once_queue": self.exactly_once_queue,
            "instance_type": self.instance_type,
            "num_cpus": self.num_cpus,
            "memory": self.memory_gib,
            "local_ssd": self.local_ssd_gb,
            "boot_disk": self.boot_disk_gb,
            "is_spot": self.is_spot,
            "price": self.price_per_hour_usd,
            "num_simultaneous_tasks": self.num_tasks_per_instance,
            "max_runtime": self.max_runtime_s,
            "retry_on_exit": self.retry_on_exit,
            "retry_on_exception": self.retry_on_exception,
            "retry_on_timeout": self.retry_on_timeout,
            "max_attempts": self.max_attempts,
            "max_preemptions": self.max_preemptions,
            "max_memory_allowed_per_task": self.max_memory_allowed_per_task_gb,
            "keepalive_interval": self.keepalive_interval_s,
            "checkpoint_location": self.checkpoint_location,
            # Speculative re-runs need to know when each task started.
            "report_task_starts": True if self.report_task_starts else None,
            # GPU instances only: each task slot gets its own devices.
            "gpus": self.gpus or None,
            "gpus_per_task": self.gpus_per_task if self.gpus else None,
            # A worker started by the manager reports to the event queue; the manager records it.
            "event_log_to_queue": True,
        }


def _number(value: float) -> str:
    """Integers without a trailing ``.0`` so that integer options parse as integers."""
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def export_text(option: Option, value: Any) -> str:
    """``value`` as the worker reads it back for ``option``: ``true``/``false``, ``2``, ``0.5``."""
    if option.kind == "bool":
        return "true" if value else "false"
    if option.kind in ("int", "float"):
        return _number(value)
    return str(value)


#: The options the startup script exports, in the order of the option table.
EXPORTED: tuple[Option, ...] = tuple(option for option in OPTIONS if option.export)


def worker_environment(settings: WorkerSettings) -> dict[str, str]:
    """The ``RMS_CLOUD_TASKS_*`` variables for ``settings``, in a stable order.

    Options without a value (no project, no memory limit) are left out rather than exported
    empty, so the worker applies its own default.
    """
    values = settings.option_values()
    environment = {
        ENV_PREFIX + (option.export or ""): export_text(option, values[option.name])
        for option in EXPORTED
        if values[option.name] is not None
    }
    environment.update((ENV_PREFIX + name, value) for name, value in settings.extra)
    return environment


def _is_shell_shebang(line: str) -> bool:
    words = line[2:].strip().split()
    if not words:
        return False
    program = words[0].rsplit("/", 1)[-1]
    if program == "env" and len(words) > 1:
        program = words[1].rsplit("/", 1)[-1]
    return program in _SHELLS


def build_startup_script(user_script: str, environment: Mapping[str, str]) -> str:
    """Insert the export block for ``environment`` into ``user_script``.

    Raises:
        ConfigError: the script starts with a shebang for something other than bash or sh.
    """
    block = [BLOCK_BEGIN]
    for name, value in environment.items():
        if not name.replace("_", "").isalnum() or name[0].isdigit():
            raise ConfigError(f"startup script: {name!r} is not a valid environment variable name")
        block.append(f"export {name}={shlex.quote(value)}")
    block.append(BLOCK_END)
    lines = user_script.splitlines()
    if lines and lines[0].startswith("#!"):
        if not _is_shell_shebang(lines[0]):
            raise ConfigError(
                f"startup script: the first line {lines[0]!r} is not a bash shebang; "
                "the startup script must be a bash script (drop the line or use #!/bin/bash)"
            )
        shebang, body = lines[0], lines[1:]
    else:
        shebang, body = DEFAULT_SHEBANG, lines
    return "\n".join([shebang, *block, *body]) + "\n"


def check_startup_script_size(script: str, limit_bytes: int, *, where: str) -> None:
    """Refuse a script the provider would reject for its size, before anything is launched.

    Raises:
        ConfigError: ``script`` encoded as UTF-8 is longer than ``limit_bytes``.
    """
    size = len(script.encode("utf-8"))
    if size > limit_bytes:
        raise ConfigError(
            f"startup script: {size} bytes with the generated settings exceeds the {where} "
            f"limit of {limit_bytes} bytes; move large content into a file the script downloads"
        )


__all__ = [
    "AWS_USER_DATA_LIMIT_BYTES",
    "ENV_PREFIX",
    "EXPORTED",
    "GCP_STARTUP_SCRIPT_LIMIT_BYTES",
    "WorkerSettings",
    "build_startup_script",
    "check_startup_script_size",
    "export_text",
    "worker_environment",
]

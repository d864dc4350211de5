"""The startup script every instance runs (SPEC §12).

The user's script gets an export block of ``RMS_CLOUD_TASKS_*`` variables so that the worker on
the instance knows everything the manager knows: where the queue is, what it runs on, and the
retry and runtime policy. The block goes right after a bash shebang (one is prepended when the
script has none); every value is shell-quoted.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

import attrs

from cloud_tasks.exceptions import ConfigError

ENV_PREFIX = "RMS_CLOUD_TASKS_"
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
    local provider keeps its queue database.
    """

    provider: str
    job_id: str
    queue_name: str
    instance_type: str
    num_cpus: int
    memory_gib: float
    num_tasks_per_instance: int
    project_id: str | None = None
    region: str | None = None
    zone: str | None = None
    local_ssd_gb: float = 0.0
    boot_disk_gb: float = 0.0
    is_spot: bool = False
    price_per_hour_usd: float = 0.0
    max_runtime_s: float = 3600.0
    retry_on_exit: bool = False
    retry_on_exception: bool = False
    retry_on_timeout: bool = False
    max_attempts: int = 5
    max_preemptions: int = 20
    max_memory_allowed_per_task_gb: float | None = None
    keepalive_interval_s: float = 60.0
    exactly_once_queue: bool = False
    extra: tuple[tuple[str, str], ...] = ()
    gpus: int = 0
    gpus_per_task: float | None = None
    report_task_starts: bool = False


def _number(value: float) -> str:
    """Integers without a trailing ``.0`` so that integer options parse as integers."""
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _flag(value: bool) -> str:
    return "true" if value else "false"


def worker_environment(settings: WorkerSettings) -> dict[str, str]:
    """The ``RMS_CLOUD_TASKS_*`` variables for ``settings``, in a stable order.

    Options without a value (no project, no memory limit) are left out rather than exported
    empty, so the worker applies its own default.
    """
    values: list[tuple[str, str | None]] = [
        ("PROVIDER", settings.provider),
        ("PROJECT_ID", settings.project_id),
        ("REGION", settings.region),
        ("ZONE", settings.zone),
        ("JOB_ID", settings.job_id),
        ("QUEUE_NAME", settings.queue_name),
        ("EXACTLY_ONCE_QUEUE", _flag(settings.exactly_once_queue)),
        ("INSTANCE_TYPE", settings.instance_type),
        ("NUM_CPUS", _number(settings.num_cpus)),
        ("MEMORY", _number(settings.memory_gib)),
        ("LOCAL_SSD", _number(settings.local_ssd_gb)),
        ("BOOT_DISK", _number(settings.boot_disk_gb)),
        ("IS_SPOT", _flag(settings.is_spot)),
        ("PRICE", _number(settings.price_per_hour_usd)),
        ("NUM_TASKS_PER_INSTANCE", _number(settings.num_tasks_per_instance)),
        ("MAX_RUNTIME", _number(settings.max_runtime_s)),
        ("RETRY_ON_EXIT", _flag(settings.retry_on_exit)),
        ("RETRY_ON_EXCEPTION", _flag(settings.retry_on_exception)),
        ("RETRY_ON_TIMEOUT", _flag(settings.retry_on_timeout)),
        ("MAX_ATTEMPTS", _number(settings.max_attempts)),
        ("MAX_PREEMPTIONS", _number(settings.max_preemptions)),
        (
            "MAX_MEMORY_ALLOWED_PER_TASK",
            None
            if settings.max_memory_allowed_per_task_gb is None
            else _number(settings.max_memory_allowed_per_task_gb),
        ),
        ("KEEPALIVE_INTERVAL", _number(settings.keepalive_interval_s)),
        # Speculative re-runs need to know when each task started.
        ("REPORT_TASK_STARTS", "true" if settings.report_task_starts else None),
        # GPU instances only: each task slot gets its own devices.
        ("GPUS", _number(settings.gpus) if settings.gpus else None),
        (
            "GPUS_PER_TASK",
            _number(settings.gpus_per_task)
            if settings.gpus and settings.gpus_per_task is not None
            else None,
        ),
        # A worker started by the manager reports to the event queue; the manager records it.
        ("EVENT_LOG_TO_QUEUE", "true"),
    ]
    values.extend(settings.extra)
    return {ENV_PREFIX + name: value for name, value in values if value is not None}


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
    "GCP_STARTUP_SCRIPT_LIMIT_BYTES",
    "WorkerSettings",
    "build_startup_script",
    "check_startup_script_size",
    "worker_environment",
]

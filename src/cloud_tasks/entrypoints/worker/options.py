"""Worker options (SPEC §10): command line, else ``RMS_CLOUD_TASKS_<NAME>``, else the default."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, NoReturn, TypeVar

from cloud_tasks.domain.ranges import RANGES, range_problem
from cloud_tasks.exceptions import ConfigError

if TYPE_CHECKING:
    from cloud_tasks.domain.options import RetryPolicy

ENV_PREFIX = "RMS_CLOUD_TASKS_"
_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"0", "false", "no"})

_R = TypeVar("_R", bound="Record")


class Record:
    """A frozen record of keyword-only fields: each annotated class attribute (its value is the
    default) is a field; equality, hashing and ``repr`` go by the fields.

    Plain Python rather than attrs, on purpose: ``import cloud_tasks.worker`` stays fast, and
    the fork server, forked before anything else is imported, stays small.
    """

    fields: ClassVar[tuple[str, ...]] = ()
    #: Fields left out of equality and hashing, and out of ``repr``.
    uncompared: ClassVar[frozenset[str]] = frozenset()
    hidden: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Not inspect.get_annotations: importing inspect costs more than this whole module.
        own = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
        added = tuple(
            name
            for name, annotation in own.items()
            if "ClassVar" not in str(annotation) and name not in cls.fields
        )
        cls.fields = cls.fields + added

    def __init__(self, **values: Any) -> None:
        for name, value in values.items():
            if name not in self.fields:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword {name!r}")
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot set {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot delete {name!r}")

    def _key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.fields if name not in self.uncompared)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self) or not isinstance(other, Record):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        shown = (f"{n}={getattr(self, n)!r}" for n in self.fields if n not in self.hidden)
        return f"{type(self).__name__}({', '.join(shown)})"

    def as_dict(self) -> dict[str, Any]:
        """Every field by name."""
        return {name: getattr(self, name) for name in self.fields}


def evolve(record: _R, **changes: Any) -> _R:
    """A copy of ``record`` with ``changes`` applied."""
    return type(record)(**{**record.as_dict(), **changes})


class WorkerOptions(Record):
    """Every worker option after parsing. Times in seconds, sizes in GB, price in USD/hour."""

    task_file: str | None = None
    provider: str | None = None
    project_id: str | None = None
    region: str | None = None
    zone: str | None = None
    job_id: str | None = None
    queue_name: str | None = None
    exactly_once_queue: bool = False
    event_log_file: str = "events.log"
    event_log_to_file: bool | None = None
    event_log_to_queue: bool | None = None
    keepalive_interval: float = 60.0
    instance_type: str | None = None
    num_cpus: int | None = None
    memory: float | None = None
    local_ssd: float | None = None
    boot_disk: float | None = None
    is_spot: bool = False
    price: float | None = None
    num_simultaneous_tasks: int | None = None
    max_runtime: float = 3600.0
    max_memory_allowed_per_task: float | None = None
    max_attempts: int = 5
    max_preemptions: int = 20
    shutdown_grace_period: float = 30.0
    tasks_to_skip: int = 0
    max_num_tasks: int | None = None
    retry_on_exit: bool = False
    retry_on_exception: bool = False
    retry_on_timeout: bool = False
    simulate_spot_termination_after: float | None = None
    simulate_spot_termination_delay: float | None = None
    exit_when_idle: float | None = None
    visibility_timeout: float = 120.0
    checkpoint_location: str | None = None
    gpus: int | None = None
    gpus_per_task: float | None = None
    report_task_starts: bool = False
    verbose: int = 0

    @property
    def tasks(self) -> str | None:
        """Alias of ``task_file`` (the ``--tasks`` spelling of the flag)."""
        return self.task_file

    @property
    def retry_policy(self) -> RetryPolicy:
        # Imported here: the job configuration model is not needed to start a worker.
        from cloud_tasks.domain.options import RetryPolicy

        return RetryPolicy(
            retry_on_exit=self.retry_on_exit,
            retry_on_exception=self.retry_on_exception,
            retry_on_timeout=self.retry_on_timeout,
            max_attempts=self.max_attempts,
            max_preemptions=self.max_preemptions,
        )


class _Spec(NamedTuple):
    flags: tuple[str, ...]
    dest: str
    kind: str  # str | int | float | bool | count
    help: str
    env: tuple[str, ...] = ()

    @property
    def env_names(self) -> tuple[str, ...]:
        return (ENV_PREFIX + self.dest.upper(), *(ENV_PREFIX + name for name in self.env))


_SPECS: tuple[_Spec, ...] = (
    _Spec(
        ("--tasks", "--task-file"),
        "task_file",
        "str",
        "JSON or YAML task file to run locally (file mode); without it tasks come from the queue",
        env=("TASKS",),
    ),
    _Spec(("--provider",), "provider", "str", "aws, gcp, local or memory (queue mode)"),
    _Spec(("--project-id",), "project_id", "str", "GCP project id"),
    _Spec(("--region",), "region", "str", "region of the queue and of this instance"),
    _Spec(("--zone",), "zone", "str", "zone of this instance"),
    _Spec(("--job-id",), "job_id", "str", "job id; the queue is named after it by default"),
    _Spec(("--queue-name",), "queue_name", "str", "task queue name (default: the job id)"),
    _Spec(
        ("--exactly-once-queue",),
        "exactly_once_queue",
        "bool",
        "the queue was created with exactly-once delivery (Pub/Sub)",
    ),
    _Spec(
        ("--event-log-file",),
        "event_log_file",
        "str",
        "file for JSON-lines events (default: events.log)",
    ),
    _Spec(
        ("--event-log-to-file",),
        "event_log_to_file",
        "bool",
        "write events to the event log file (default: on in file mode)",
    ),
    _Spec(
        ("--event-log-to-queue",),
        "event_log_to_queue",
        "bool",
        "send events to the <queue>-events queue (default: on in queue mode)",
    ),
    _Spec(
        ("--keepalive-interval",),
        "keepalive_interval",
        "float",
        "seconds between keep_alive events in queue mode (default 60; 0 = off)",
    ),
    _Spec(("--instance-type",), "instance_type", "str", "instance type of this VM"),
    _Spec(("--num-cpus",), "num_cpus", "int", "vCPUs of this VM"),
    _Spec(("--memory",), "memory", "float", "memory of this VM in GB"),
    _Spec(("--local-ssd",), "local_ssd", "float", "local SSD of this VM in GB"),
    _Spec(("--boot-disk",), "boot_disk", "float", "boot disk of this VM in GB"),
    _Spec(("--is-spot",), "is_spot", "bool", "this VM is a spot VM (watch for notices)"),
    _Spec(("--price",), "price", "float", "price of this VM in USD per hour"),
    _Spec(
        ("--num-simultaneous-tasks",),
        "num_simultaneous_tasks",
        "int",
        "tasks run at once (default: --num-cpus if known, else 1)",
        env=("NUM_TASKS_PER_INSTANCE",),
    ),
    _Spec(
        ("--max-runtime",),
        "max_runtime",
        "float",
        "seconds a task may run before it is killed (default 3600)",
    ),
    _Spec(
        ("--max-memory-allowed-per-task",),
        "max_memory_allowed_per_task",
        "float",
        "address-space limit per task in GB (RLIMIT_AS); exceeding it is a memory outcome",
    ),
    _Spec(
        ("--max-attempts",),
        "max_attempts",
        "int",
        "application-failure attempts before a task is dead-lettered (default 5; 0 = no cap)",
    ),
    _Spec(
        ("--max-preemptions",),
        "max_preemptions",
        "int",
        "deliveries lost to preemption or shutdown before a task is dead-lettered "
        "(default 20; 0 = no cap)",
    ),
    _Spec(
        ("--shutdown-grace-period",),
        "shutdown_grace_period",
        "float",
        "seconds running tasks get to finish after SIGINT/SIGTERM (default 30)",
    ),
    _Spec(
        ("--tasks-to-skip",),
        "tasks_to_skip",
        "int",
        "skip this many tasks at the start of the task file",
        env=("TO_SKIP",),
    ),
    _Spec(
        ("--max-num-tasks",),
        "max_num_tasks",
        "int",
        "stop after starting this many tasks",
    ),
    _Spec(
        ("--retry-on-exit",),
        "retry_on_exit",
        "bool",
        "retry a task whose process exited or was killed",
    ),
    _Spec(
        ("--retry-on-exception",),
        "retry_on_exception",
        "bool",
        "retry a task that raised an exception",
    ),
    _Spec(
        ("--retry-on-timeout",),
        "retry_on_timeout",
        "bool",
        "retry a task that exceeded --max-runtime",
    ),
    _Spec(
        ("--simulate-spot-termination-after",),
        "simulate_spot_termination_after",
        "float",
        "simulate a spot termination notice this many seconds after start",
    ),
    _Spec(
        ("--simulate-spot-termination-delay",),
        "simulate_spot_termination_delay",
        "float",
        "seconds from a (simulated) notice until running tasks are killed and released",
    ),
    _Spec(
        ("--exit-when-idle",),
        "exit_when_idle",
        "float",
        "queue mode: exit after the queue stayed empty this many seconds (default: never)",
    ),
    _Spec(
        ("--visibility-timeout",),
        "visibility_timeout",
        "float",
        "queue mode: lease length in seconds, renewed every third of it (default 120)",
    ),
    _Spec(
        ("--checkpoint-location",),
        "checkpoint_location",
        "str",
        "folder, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX for worker_data.checkpoint",
    ),
    _Spec(
        ("--gpus",),
        "gpus",
        "int",
        "GPUs of this VM; each task slot gets its own (CUDA_VISIBLE_DEVICES)",
    ),
    _Spec(
        ("--gpus-per-task",),
        "gpus_per_task",
        "float",
        "GPUs each task slot sees (default: an equal share of --gpus)",
    ),
    _Spec(
        ("--report-task-starts",),
        "report_task_starts",
        "bool",
        "queue mode: send a task_started event as each task starts (for speculative re-runs)",
    ),
    _Spec(("-v", "--verbose"), "verbose", "count", "more log output on stderr (repeatable)"),
)


def _check_range(spec: _Spec, value: float, source: str) -> None:
    problem = range_problem(spec.dest, value)
    if problem is not None:
        raise ConfigError(f"{source}: {problem}")


def parse_bool(text: str, source: str) -> bool:
    """Strict boolean: 1/0/true/false/yes/no in any case; anything else is a ``ConfigError``."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{source}: expected one of 1/0/true/false/yes/no, got {text!r}")


def _convert(spec: _Spec, text: str, source: str) -> Any:
    if spec.kind == "bool":
        return parse_bool(text, source)
    if spec.kind == "str":
        return text
    number: float
    try:
        number = int(text) if spec.kind in ("int", "count") else float(text)
    except ValueError:
        digits = text.strip().lstrip("+-")
        bounds = RANGES.get(spec.dest)
        if digits.isdigit() and bounds is not None:
            # int() refuses more digits than sys.get_int_max_str_digits(): out of range anyway.
            raise ConfigError(
                f"{source}: must be {bounds.describe()}, got a number of {len(digits)} digits"
            ) from None
        noun = "an integer" if spec.kind in ("int", "count") else "a number"
        shown = text if len(text) <= 40 else text[:30] + "..."
        raise ConfigError(f"{source}: expected {noun}, got {shown!r}") from None
    _check_range(spec, number, source)
    return number


def _argparse_type(spec: _Spec) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return _convert(spec, text, spec.flags[-1])
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None

    convert.__name__ = spec.kind
    return convert


def build_parser(
    argparser: argparse.ArgumentParser | None = None, prog: str | None = None
) -> argparse.ArgumentParser:
    """The worker's argument parser, with the user's own options added when given."""
    parents = [argparser] if argparser is not None else []
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run process_task for every task of a task file or a queue (Cloud Tasks).",
        parents=parents,
        conflict_handler="resolve",
        epilog="Every option can also be set with the environment variable "
        "RMS_CLOUD_TASKS_<OPTION> (e.g. RMS_CLOUD_TASKS_MAX_RUNTIME=600); the command line wins.",
    )
    group = parser.add_argument_group("Cloud Tasks worker options")
    for spec in _SPECS:
        envs = ", ".join(spec.env_names)
        helptext = f"{spec.help} [env: {envs}]"
        if spec.kind == "bool":
            group.add_argument(
                *spec.flags,
                dest=spec.dest,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=helptext,
            )
        elif spec.kind == "count":
            group.add_argument(
                *spec.flags, dest=spec.dest, action="count", default=None, help=helptext
            )
        else:
            group.add_argument(
                *spec.flags,
                dest=spec.dest,
                type=_argparse_type(spec),
                default=None,
                metavar=spec.dest.upper(),
                help=helptext,
            )
    return parser


def resolve_options(namespace: argparse.Namespace, environ: Mapping[str, str]) -> WorkerOptions:
    """Fill options the command line left unset from the environment, then the defaults."""
    values: dict[str, Any] = {}
    for spec in _SPECS:
        value = getattr(namespace, spec.dest, None)
        if value is None:
            for name in spec.env_names:
                text = environ.get(name)
                if text is not None and text.strip() != "":
                    value = _convert(spec, text, name)
                    break
        if value is not None:
            values[spec.dest] = value
    provider = values.get("provider")
    if isinstance(provider, str):
        values["provider"] = provider.strip().lower()
    options = WorkerOptions(**values)
    if options.num_simultaneous_tasks is None:
        options = evolve(options, num_simultaneous_tasks=options.num_cpus or 1)
    return options


def parse_worker_options(
    args: Sequence[str] | None,
    environ: Mapping[str, str],
    argparser: argparse.ArgumentParser | None = None,
    prog: str | None = None,
) -> tuple[WorkerOptions, argparse.Namespace, argparse.ArgumentParser]:
    """Parse ``args``, then the environment; a bad flag or variable exits 2 with one error line."""
    parser = build_parser(argparser, prog)
    namespace = parser.parse_args(list(args) if args is not None else [])
    try:
        options = resolve_options(namespace, environ)
    except ConfigError as exc:
        parser.error(str(exc))
    for spec in _SPECS:
        setattr(namespace, spec.dest, getattr(options, spec.dest))
    return options, namespace, parser


def option_table() -> list[tuple[str, str, str]]:
    """(flags, environment variables, help) for every option, for docs and tests."""
    return [(", ".join(s.flags), ", ".join(s.env_names), s.help) for s in _SPECS]


__all__ = [
    "ENV_PREFIX",
    "Record",
    "WorkerOptions",
    "build_parser",
    "evolve",
    "option_table",
    "parse_bool",
    "parse_worker_options",
    "resolve_options",
]

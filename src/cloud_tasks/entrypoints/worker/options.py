"""Worker options (SPEC §10): command line, else ``RMS_CLOUD_TASKS_<NAME>``, else the default.

The flags, variables, types, defaults and help come from the option table
(``domain.option_schema``), like the configuration keys and the startup script's exports.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar

from cloud_tasks.domain.option_schema import ENV_PREFIX, OPTIONS, Option, default
from cloud_tasks.domain.ranges import range_problem
from cloud_tasks.exceptions import ConfigError

if TYPE_CHECKING:
    from cloud_tasks.domain.options import RetryPolicy

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

    task_file: str | None = default("task_file")
    provider: str | None = default("provider")
    project_id: str | None = default("project_id")
    region: str | None = default("region")
    zone: str | None = default("zone")
    job_id: str | None = default("job_id")
    queue_name: str | None = default("queue_name")
    exactly_once_queue: bool = default("exactly_once_queue")
    event_log_file: str = default("event_log_file")
    event_log_to_file: bool | None = default("event_log_to_file")
    event_log_to_queue: bool | None = default("event_log_to_queue")
    keepalive_interval: float = default("keepalive_interval")
    instance_type: str | None = default("instance_type")
    num_cpus: int | None = default("num_cpus")
    memory: float | None = default("memory")
    local_ssd: float | None = default("local_ssd")
    boot_disk: float | None = default("boot_disk")
    is_spot: bool = default("is_spot")
    price: float | None = default("price")
    num_simultaneous_tasks: int | None = default("num_simultaneous_tasks")
    max_runtime: float = default("max_runtime")
    max_memory_allowed_per_task: float | None = default("max_memory_allowed_per_task")
    max_attempts: int = default("max_attempts")
    max_preemptions: int = default("max_preemptions")
    shutdown_grace_period: float = default("shutdown_grace_period")
    tasks_to_skip: int = default("tasks_to_skip")
    max_num_tasks: int | None = default("max_num_tasks")
    retry_on_exit: bool = default("retry_on_exit")
    retry_on_exception: bool = default("retry_on_exception")
    retry_on_timeout: bool = default("retry_on_timeout")
    simulate_spot_termination_after: float | None = default("simulate_spot_termination_after")
    simulate_spot_termination_delay: float | None = default("simulate_spot_termination_delay")
    exit_when_idle: float | None = default("exit_when_idle")
    visibility_timeout: float = default("visibility_timeout")
    checkpoint_location: str | None = default("checkpoint_location")
    gpus: int | None = default("gpus")
    gpus_per_task: float | None = default("gpus_per_task")
    report_task_starts: bool = default("report_task_starts")
    verbose: int = default("verbose")

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


#: The worker's options, in the order of its ``--help``.
_SPECS: tuple[Option, ...] = tuple(option for option in OPTIONS if option.worker_flags)


def _check_range(spec: Option, value: float, source: str) -> None:
    problem = range_problem(spec.name, value)
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


def _convert(spec: Option, text: str, source: str) -> Any:
    if spec.kind == "bool":
        return parse_bool(text, source)
    if spec.kind == "str":
        return text
    number: float
    try:
        number = int(text) if spec.kind in ("int", "count") else float(text)
    except ValueError:
        digits = text.strip().lstrip("+-")
        bounds = spec.range
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


def _argparse_type(spec: Option) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return _convert(spec, text, spec.worker_flags[-1])
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
        f"{ENV_PREFIX}<OPTION> (e.g. {ENV_PREFIX}MAX_RUNTIME=600); the command line wins.",
    )
    group = parser.add_argument_group("Cloud Tasks worker options")
    for spec in _SPECS:
        envs = ", ".join(spec.env_names)
        helptext = f"{spec.worker_text} [env: {envs}]"
        if spec.kind == "bool":
            group.add_argument(
                *spec.worker_flags,
                dest=spec.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=helptext,
            )
        elif spec.kind == "count":
            group.add_argument(
                *spec.worker_flags, dest=spec.name, action="count", default=None, help=helptext
            )
        else:
            group.add_argument(
                *spec.worker_flags,
                dest=spec.name,
                type=_argparse_type(spec),
                default=None,
                metavar=spec.name.upper(),
                help=helptext,
            )
    return parser


def resolve_options(namespace: argparse.Namespace, environ: Mapping[str, str]) -> WorkerOptions:
    """Fill options the command line left unset from the environment, then the defaults."""
    values: dict[str, Any] = {}
    for spec in _SPECS:
        value = getattr(namespace, spec.name, None)
        if value is None:
            for name in spec.env_names:
                text = environ.get(name)
                if text is not None and text.strip() != "":
                    value = _convert(spec, text, name)
                    break
        if value is not None:
            values[spec.name] = value
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
        setattr(namespace, spec.name, getattr(options, spec.name))
    return options, namespace, parser


def render_option_table() -> str:
    """The Markdown table of every worker option that ``docs/worker.md`` must contain."""
    lines = ["| option | environment variables | range | meaning |", "|---|---|---|---|"]
    for spec in _SPECS:
        bounds = spec.range
        shown = f"`{bounds.interval()}`" if bounds is not None else "—"
        lines.append(
            f"| `{', '.join(spec.worker_flags)}` | `{', '.join(spec.env_names)}` | {shown} "
            f"| {spec.worker_text} |"
        )
    return "\n".join(lines) + "\n"


def option_table() -> list[tuple[str, str, str]]:
    """(flags, environment variables, help) for every option, for docs and tests."""
    return [(", ".join(s.worker_flags), ", ".join(s.env_names), s.worker_text) for s in _SPECS]


__all__ = [
    "ENV_PREFIX",
    "Record",
    "WorkerOptions",
    "build_parser",
    "evolve",
    "option_table",
    "parse_bool",
    "parse_worker_options",
    "render_option_table",
    "resolve_options",
]

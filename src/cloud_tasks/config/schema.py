"""The configuration schema: the configuration keys of ``domain.option_schema``, by section.

The option table is the one declaration of every key (type, default, flag, help); this module
only arranges its configuration keys in the order of the value objects' fields (the order of
``docs/configuration.md`` and of the flags) and makes the class every section of a file is
structured into. The CLI flags, the loader and ``docs/configuration.md`` are all generated from
``RUN_OPTIONS`` and ``PROVIDER_OPTIONS``.
"""

from __future__ import annotations

from typing import Any

import attrs

from cloud_tasks.domain.constraints import InstanceConstraints
from cloud_tasks.domain.option_schema import BY_NAME, Group, Kind, Option
from cloud_tasks.domain.options import Notify, PoolLimits, ProviderOptions, RetryPolicy, RunOptions

#: A configuration option (a row of the option table with a ``group``).
OptionSpec = Option

_NESTED: dict[str, tuple[type, Group]] = {
    "constraints": (InstanceConstraints, "constraints"),
    "limits": (PoolLimits, "limits"),
    "retry": (RetryPolicy, "retry"),
}


def _specs(cls: type, group: Group, skip: frozenset[str] = frozenset()) -> list[Option]:
    specs = []
    for field in attrs.fields(cls):
        if field.name in skip:
            continue
        option = BY_NAME[field.name]
        if option.group != group:
            raise TypeError(f"option {field.name!r}: group {option.group!r}, field of {group!r}")
        specs.append(option)
    return specs


#: Every run option, keyed by its flat name (``max_instances``), in documentation order.
RUN_OPTIONS: dict[str, Option] = {
    spec.name: spec for cls, group in _NESTED.values() for spec in _specs(cls, group)
}
RUN_OPTIONS.update((spec.name, spec) for spec in _specs(RunOptions, "run", skip=frozenset(_NESTED)))

#: Every provider option, keyed by name.
PROVIDER_OPTIONS: dict[str, Option] = {
    spec.name: spec for spec in _specs(ProviderOptions, "provider")
}

#: The provider options offered as flags by every command (credentials never go on a command
#: line; ``catalog`` and ``service_account`` are set in the file).
PROVIDER_FLAGS: tuple[str, ...] = tuple(name for name, s in PROVIDER_OPTIONS.items() if s.flag)

SECTIONS: tuple[str, ...] = ("provider", "run", "aws", "gcp", "local", "memory")

_TYPES: dict[Kind, Any] = {
    "int": int,
    "float": float,
    "bool": bool,
    "str": str,
    "str_list": tuple[str, ...],
    "notify": Notify,
}


class Unset:
    """The value of a key a section does not set (``None`` is a value: "no limit")."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = Unset()


def _section_class() -> type:
    fields: dict[str, Any] = {}
    for spec in (*RUN_OPTIONS.values(), *PROVIDER_OPTIONS.values()):
        kind = _TYPES[spec.kind]
        fields[spec.name] = attrs.field(
            type=kind | None if spec.optional else kind, default=UNSET, kw_only=True
        )
    return attrs.make_class("Section", fields, frozen=True)


#: What one section of a configuration file (or the command line's flags) holds: every key,
#: ``UNSET`` where not given. The loader structures each section into it with the converter.
Section: type = _section_class()


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
        bounds = spec.range
        shown = f"`{bounds.interval()}`" if bounds is not None else "—"
        lines.append(
            f"| `{spec.name}` | `{default}` | {shown} | {flag} | {sections} | {spec.help} |"
        )
    return "\n".join(lines) + "\n"

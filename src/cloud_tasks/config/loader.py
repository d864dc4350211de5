"""Loading a configuration (SPEC §4): file sections, command-line overrides, validation.

Precedence: command line > the provider's section > ``run:`` > defaults. Each section (and the
flags the user passed) is structured whole into ``schema.Section`` by the one converter; its
keys, then its values, are checked in the order they were written, so an error names the exact
place it came from (``gcp.max_cpu``, ``gcp.instance_types[1]``, ``--max-cpu``) and the file.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from cloud_tasks.config.convert import Problem, StructureError, converter, describe, structure
from cloud_tasks.config.schema import (
    PROVIDER_OPTIONS,
    RUN_OPTIONS,
    SECTIONS,
    OptionSpec,
    Section,
    format_value,
    nested_group,
)
from cloud_tasks.config.yamlfile import MAX_CONFIG_BYTES, read_config_file
from cloud_tasks.domain import ranges, validation
from cloud_tasks.domain.options import PROVIDERS, JobConfig, ProviderOptions, RunOptions
from cloud_tasks.exceptions import CloudTasksError, ConfigError
from cloud_tasks.localfile import read_regular_file

DEFAULT_PROVIDER = "local"
CATALOG_NAMES: tuple[str, ...] = ("aws", "gcp", "all")

_PROVIDER_TITLES = {"aws": "AWS", "gcp": "GCP", "local": "local", "memory": "memory"}
_STARTUP_PAIR = ("startup_script", "startup_script_file")
# Paths in a configuration file are relative to that file, like startup_script_file.
_PATH_OPTIONS = ("startup_script_file", "credentials_file")


@attrs.define
class _Origin:
    """Where a value came from: its display path and whether it came from the file."""

    path: str
    from_file: bool


@attrs.define
class _Resolver:
    """Mutable state of one ``load_config`` call."""

    where: str | None
    base_dir: Path
    values: dict[str, Any] = attrs.Factory(dict)
    origins: dict[str, _Origin] = attrs.Factory(dict)
    notices: list[str] = attrs.Factory(list)

    def fail(self, path: str, problem: str, *, from_file: bool = True) -> ConfigError:
        suffix = f" ({self.where})" if from_file and self.where else ""
        text = f"{path}: {problem}{suffix}"
        # A key may hold a newline or a control character: the message stays one line.
        if not text.isprintable():
            text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
        return ConfigError(text)

    def fail_at(self, name: str, problem: str) -> ConfigError:
        origin = self.origins[name]
        return self.fail(origin.path, problem, from_file=origin.from_file)


def load_config(
    path: str | Path | None,
    *,
    provider_override: str | None = None,
    cli_overrides: Mapping[str, Any] | None = None,
) -> JobConfig:
    """Load, merge and validate a configuration into a ``JobConfig``.

    Args:
        path: the YAML configuration file, or ``None`` for defaults only.
        provider_override: ``--provider`` when the user passed it (any case).
        cli_overrides: only the flags the user actually passed, keyed by option name
            (``{"max_cpu": 4}``); they override every section of the file.

    Raises:
        ConfigError: one line naming the key path (``gcp.max_instances``), the problem and
            the file.
    """
    where = str(path) if path is not None else None
    base_dir = Path(path).parent if path is not None else Path()
    resolver = _Resolver(where, base_dir)
    data = read_config_file(Path(path)) if path is not None else None
    sections = _split_sections(resolver, data)

    file_provider = _read_provider(resolver, data)
    provider, section = _choose_provider(resolver, file_provider, provider_override)

    for name, raw in sections.items():
        sections[name] = _read_section(resolver, name, raw)
    _layer(resolver, sections.get("run", {}), "run")
    _layer(resolver, sections.get(section, {}), section)
    _layer_cli(resolver, dict(cli_overrides or {}), section)

    _check_cross_fields(resolver, section)
    _resolve_files(resolver)
    _fill_derived(resolver, provider, section)
    return JobConfig(
        provider=provider,
        provider_options=_build_provider_options(resolver.values),
        run=_build_run_options(resolver.values),
        source=where,
        notices=tuple(resolver.notices),
        section=section,
    )


def _suggest(key: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
    return f"; did you mean {match[0]}?" if match else ""


def _split_sections(resolver: _Resolver, data: Any) -> dict[str, Any]:
    """The top-level mapping's sections (without ``provider``), keys normalised."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise resolver.fail(
            "top level",
            f"expected a mapping of sections ({', '.join(SECTIONS)}), got {describe(data)}",
        )
    sections: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise resolver.fail("top level", f"section name {describe(key)} is not a name")
        name = key.replace("-", "_")
        if name == "provider":
            continue
        if name in SECTIONS:
            sections[name] = value
            continue
        if name in RUN_OPTIONS or name in PROVIDER_OPTIONS:
            raise resolver.fail(
                key,
                "options belong in a section: put it under run: or under the provider's "
                "section (aws:, gcp:, local: or memory:)",
            )
        raise resolver.fail(
            key,
            f"unknown section{_suggest(name, list(SECTIONS))} (sections: {', '.join(SECTIONS)})",
        )
    return sections


def _provider_name(resolver: _Resolver, value: Any, path: str, *, from_file: bool) -> str:
    if not isinstance(value, str):
        raise resolver.fail(
            path, f"expected a provider name, got {describe(value)}", from_file=from_file
        )
    name = value.lower()
    if name not in PROVIDERS:
        raise resolver.fail(
            path,
            f"unknown provider {value!r}{_suggest(name, list(PROVIDERS))} "
            f"(providers: {', '.join(PROVIDERS)})",
            from_file=from_file,
        )
    return name


def _read_provider(resolver: _Resolver, data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    for key, value in data.items():
        if key == "provider":
            return _provider_name(resolver, value, "provider", from_file=True)
    return None


def _choose_provider(
    resolver: _Resolver, file_provider: str | None, override: str | None
) -> tuple[str, str]:
    """The provider and the section its options come from (SPEC §9 for memory)."""
    if override is None:
        provider = file_provider or DEFAULT_PROVIDER
        return provider, provider
    provider = _provider_name(resolver, override, "--provider", from_file=False)
    if file_provider is None or file_provider == provider:
        return provider, provider
    if provider == "memory" and file_provider in ("aws", "gcp"):
        resolver.notices.append(
            f"--provider=memory overrides provider={file_provider} "
            f"(planned offline with the {file_provider}: section and the "
            f"{file_provider} catalog)"
        )
        return provider, file_provider
    resolver.notices.append(f"--provider={provider} overrides provider={file_provider}")
    return provider, provider


def _allowed(section: str) -> dict[str, OptionSpec]:
    if section == "run":
        return RUN_OPTIONS
    return {**RUN_OPTIONS, **PROVIDER_OPTIONS}


def _read_section(resolver: _Resolver, section: str, raw: Any) -> dict[str, Any]:
    """Check every key and value of one section; return ``{option name: value}``."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise resolver.fail(section, f"expected a mapping of options, got {describe(raw)}")
    allowed = _allowed(section)
    spelled: dict[str, str] = {}
    given: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise resolver.fail(section, f"option name {describe(key)} is not a name")
        name = key.replace("-", "_")
        if name in spelled:
            path = f"{section}.{name}"
            raise resolver.fail(path, f"given twice (as {spelled[name]} and {key}); keep one")
        spelled[name] = key
        given[name] = value
    structured = _structure(given, allowed)
    result: dict[str, Any] = {}
    for name in given:
        path = f"{section}.{name}"
        if name not in allowed:
            raise resolver.fail(path, _unknown_key_problem(section, name, allowed))
        spec = allowed[name]
        if section != "run" and spec.provider_only not in (None, section):
            owner = spec.provider_only or ""
            raise resolver.fail(
                path,
                f"{name} is a{'n' if owner == 'aws' else ''} {_PROVIDER_TITLES[owner]} "
                f"option; move it to the {owner}: section",
            )
        result[name] = _checked_value(resolver, structured, spec, path, from_file=True)
    if all(name in result for name in _STARTUP_PAIR):
        raise resolver.fail(section, "give startup_script or startup_script_file, not both")
    return result


@attrs.frozen
class _Structured:
    """A section structured by the converter: the good values, the problems by option name.

    A problem's ``path`` is the part below the option (``[1]`` for a list's second item).
    """

    values: Any
    problems: dict[str, Problem]


def _structure(given: Mapping[str, Any], allowed: Mapping[str, OptionSpec]) -> _Structured:
    """Structure the known keys of ``given`` into one ``Section`` with the converter.

    The keys with bad values are set aside and the rest structured again, so that the loader
    can report the first problem in the order of the file, whatever kind it is.
    """
    known = {name: value for name, value in given.items() if name in allowed}
    problems: dict[str, Problem] = {}
    while True:
        try:
            values: Any = structure(known, Section, "")
        except StructureError as exc:
            before = len(known)
            for problem in exc.problems:
                name = problem.path[1:].split("[", 1)[0].split(".", 1)[0]
                problems.setdefault(name, Problem(problem.path[1 + len(name) :], problem.message))
                known.pop(name, None)
            if len(known) == before:
                raise  # a problem outside every key: a bug, not a user's mistake
            continue
        return _Structured(values, problems)


def _unknown_key_problem(section: str, name: str, allowed: Mapping[str, OptionSpec]) -> str:
    if section == "run" and name in PROVIDER_OPTIONS:
        return (
            f"{name} is a provider option, not a run option; put it in the provider's "
            "section (aws:, gcp:, local: or memory:)"
        )
    return f"unknown option{_suggest(name, list(allowed))}"


def _checked_value(
    resolver: _Resolver,
    structured: _Structured,
    spec: OptionSpec,
    path: str,
    *,
    from_file: bool,
) -> Any:
    """The structured value of ``spec``, checked by the rules that need no other value."""
    problem = structured.problems.get(spec.name)
    if problem is not None:
        raise resolver.fail(path + problem.path, problem.message, from_file=from_file)
    result = getattr(structured.values, spec.name)
    message, subpath = _value_problem(spec, result)
    if message:
        raise resolver.fail(path + subpath, message, from_file=from_file)
    return result


def _value_problem(spec: OptionSpec, value: Any) -> tuple[str | None, str]:
    if value is None:
        return None, ""
    if spec.kind in ("int", "float"):
        return ranges.range_problem(spec.name, value), ""
    if spec.kind == "str" and value == "":
        return "must not be empty", ""
    if spec.name == "job_id":
        return validation.job_id_problem(value), ""
    if spec.name == "queue_name":
        return validation.queue_name_problem(value), ""
    if spec.name == "checkpoint_location":
        return validation.checkpoint_location_problem(value), ""
    if spec.name == "architecture":
        return validation.choice_problem(value, validation.ARCHITECTURES), ""
    if spec.name == "notify":
        return validation.notify_problem(value.webhook, value.command, value.failure_rate)
    if spec.name == "speculative_after":
        from cloud_tasks.domain.speculation import parse_speculative_after

        try:
            parse_speculative_after(value)
        except CloudTasksError as exc:
            return str(exc).split(": ", 1)[-1], ""
    if spec.name in ("instance_types", "gpu_type"):
        for index, pattern in enumerate(value):
            problem = validation.regex_problem(pattern)
            if problem:
                return problem, f"[{index}]"
    return None, ""


def _set(resolver: _Resolver, name: str, value: Any, origin: _Origin) -> None:
    """Apply one value over what lower-precedence sources set, noting a real override."""
    if name in _STARTUP_PAIR:
        # The two startup options are one choice: setting either replaces both below.
        for other in _STARTUP_PAIR:
            if other != name and other in resolver.values:
                old_origin = resolver.origins.pop(other)
                del resolver.values[other]
                resolver.notices.append(f"{origin.path} overrides {old_origin.path}")
    if name in resolver.values and resolver.values[name] != value:
        old = resolver.origins[name]
        resolver.notices.append(
            f"{origin.path}={format_value(value)} overrides "
            f"{old.path}={format_value(resolver.values[name])}"
        )
    resolver.values[name] = value
    resolver.origins[name] = origin


def _layer(resolver: _Resolver, options: Mapping[str, Any], section: str) -> None:
    for name, value in options.items():
        _set(resolver, name, value, _Origin(f"{section}.{name}", from_file=True))


def _layer_cli(resolver: _Resolver, overrides: Mapping[str, Any], section: str) -> None:
    allowed = {**RUN_OPTIONS, **PROVIDER_OPTIONS}
    for name in overrides:
        if name not in allowed:
            raise ValueError(f"cli_overrides: {name!r} is not a configuration option")
    structured = _structure(overrides, allowed)
    for name in overrides:
        spec = allowed[name]
        flag = "--" + name.replace("_", "-")
        if spec.provider_only not in (None, section):
            owner = spec.provider_only or ""
            raise resolver.fail(
                flag,
                f"applies only to the {_PROVIDER_TITLES[owner]} provider "
                f"(this configuration uses the {section}: section)",
                from_file=False,
            )
        checked = _checked_value(resolver, structured, spec, flag, from_file=False)
        _set(resolver, name, checked, _Origin(flag, from_file=False))


def _full_run_values(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: values.get(name, spec.default) for name, spec in RUN_OPTIONS.items()}


def _origin_text(resolver: _Resolver, name: str) -> str:
    origin = resolver.origins.get(name)
    return origin.path if origin else "the default"


def _check_cross_fields(resolver: _Resolver, section: str) -> None:
    for low, high, problem in validation.min_max_problems(_full_run_values(resolver.values)):
        # Blame the value the user set; when both are set, the maximum.
        blamed, other = (high, low) if high in resolver.origins else (low, high)
        raise resolver.fail_at(blamed, f"{problem} ({other} from {_origin_text(resolver, other)})")
    zone = resolver.values.get("zone")
    if zone is None:
        return
    derived = validation.region_of_zone(zone)
    region = resolver.values.get("region")
    if derived is None or region is None:
        return
    if derived != region:
        raise resolver.fail_at(
            "zone",
            f"zone {zone} is in region {derived}, not in region {region} "
            f"({_origin_text(resolver, 'region')}); fix one or drop region",
        )


def _resolve_path(resolver: _Resolver, name: str) -> Path:
    path = Path(resolver.values[name]).expanduser()
    if not path.is_absolute() and resolver.origins[name].from_file:
        path = resolver.base_dir / path
    return path.resolve()


def _resolve_files(resolver: _Resolver) -> None:
    """Make file paths absolute and read the startup script file into ``startup_script``."""
    for name in _PATH_OPTIONS:
        if resolver.values.get(name) is not None:
            resolver.values[name] = str(_resolve_path(resolver, name))
    script_file = resolver.values.get("startup_script_file")
    if script_file is None:
        return
    try:
        raw = read_regular_file(script_file, MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise resolver.fail_at("startup_script_file", f"file {script_file} not found") from None
    except OSError as exc:
        raise resolver.fail_at(
            "startup_script_file", f"cannot read {script_file}: {exc.strerror or exc}"
        ) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise resolver.fail_at(
            "startup_script_file", f"{script_file} is larger than 1 MB; is it a script?"
        )
    try:
        resolver.values["startup_script"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise resolver.fail_at(
            "startup_script_file", f"{script_file} is not UTF-8 text; is it a script?"
        ) from None


def _fill_derived(resolver: _Resolver, provider: str, section: str) -> None:
    values = resolver.values
    if values.get("zone") is not None and values.get("region") is None:
        values["region"] = validation.region_of_zone(values["zone"])
    if values.get("job_id") is not None and values.get("db_file") is None:
        values["db_file"] = f"{values['job_id']}.db"
    if provider != "memory":
        return
    catalog = values.get("catalog")
    if catalog is None:
        values["catalog"] = section if section in ("aws", "gcp") else "all"
    elif catalog not in CATALOG_NAMES:
        path = _resolve_path(resolver, "catalog")
        if not path.is_file():
            raise resolver.fail_at(
                "catalog",
                f"{catalog!r} is neither {', '.join(CATALOG_NAMES)} nor an existing "
                f"catalog file ({path})",
            )
        values["catalog"] = str(path)


def _build_run_options(values: Mapping[str, Any]) -> RunOptions:
    nested: dict[str, Any] = {"constraints": {}, "limits": {}, "retry": {}}
    for name in RUN_OPTIONS:
        if name not in values:
            continue
        group = nested_group(name)
        if group is None:
            nested[name] = values[name]
        else:
            nested[group][name] = values[name]
    return converter.structure(nested, RunOptions)


def _build_provider_options(values: Mapping[str, Any]) -> ProviderOptions:
    return converter.structure(
        {name: values[name] for name in PROVIDER_OPTIONS if name in values}, ProviderOptions
    )

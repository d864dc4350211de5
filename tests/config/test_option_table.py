"""The option table (``domain.option_schema``) is the one declaration of every option.

Properties over the whole table, not examples: each option's one default is the value seen
through the configuration loader, the commands' flags, the startup script's exports and the
worker's parser; the value objects, the worker's options and the exports hold exactly the
options the table says, with the table's types.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any

import attrs
import click
import pytest
from click.testing import CliRunner

from cloud_tasks.config import PROVIDER_OPTIONS, RUN_OPTIONS, load_config
from cloud_tasks.domain.constraints import InstanceConstraints
from cloud_tasks.domain.offers import InstanceOffer
from cloud_tasks.domain.option_schema import (
    BY_NAME,
    ENV_PREFIX,
    OPTIONS,
    Option,
    format_default,
)
from cloud_tasks.domain.options import (
    JobConfig,
    Notify,
    PoolLimits,
    ProviderOptions,
    RetryPolicy,
    RunOptions,
)
from cloud_tasks.domain.selection import select_instance_type
from cloud_tasks.domain.startup import EXPORTED, WorkerSettings, worker_environment
from cloud_tasks.entrypoints.cli.options import common_options, resolve_config, run_options
from cloud_tasks.entrypoints.worker.options import WorkerOptions, parse_worker_options
from cloud_tasks.service_layer.plan import worker_settings

CONFIG = [option for option in OPTIONS if option.group is not None]
WORKER = [option for option in OPTIONS if option.worker_flags]
#: Configuration keys with a flag and a default one can type (not null, not an empty list).
FLAGGED = [o for o in CONFIG if o.flag and o.default not in (None, ())]

_CLASSES: dict[str, type] = {
    "constraints": InstanceConstraints,
    "limits": PoolLimits,
    "retry": RetryPolicy,
    "run": RunOptions,
    "provider": ProviderOptions,
}
_KINDS: dict[Any, str] = {
    int: "int",
    float: "float",
    bool: "bool",
    str: "str",
    tuple[str, ...]: "str_list",
    Notify: "notify",
}


def _ids(options: list[Option]) -> list[str]:
    return [option.name for option in options]


def _kind_of(annotation: Any) -> tuple[str, bool]:
    """(kind, optional) of a field annotation such as ``int | None``."""
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (rest,) = [a for a in args if a is not type(None)]
        return _KINDS[rest], True
    return _KINDS[annotation], False


def _configured(config: JobConfig, option: Option) -> Any:
    if option.group == "provider":
        return getattr(config.provider_options, option.name)
    if option.group == "run":
        return getattr(config.run, option.name)
    return getattr(getattr(config.run, str(option.group)), option.name)


# --- one declaration: the value objects and the worker hold exactly the table's options


@pytest.mark.parametrize("group", sorted(_CLASSES))
def test_each_value_object_holds_exactly_its_groups_options(group: str) -> None:
    cls = _CLASSES[group]
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in attrs.fields(cls) if f.name not in ("constraints", "limits")}
    fields.pop("retry", None)
    assert set(fields) == {o.name for o in CONFIG if o.group == group}
    for name, field in fields.items():
        option = BY_NAME[name]
        assert _kind_of(hints[name]) == (option.kind, option.optional), name
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        assert default == option.default and type(default) is type(option.default), name


def test_the_worker_holds_exactly_the_worker_options() -> None:
    assert WorkerOptions.fields == tuple(_ids(WORKER))
    hints = typing.get_type_hints(WorkerOptions)
    for option in WORKER:
        kind = "int" if option.kind == "count" else option.kind
        assert _kind_of(hints[option.name]) == (kind, option.optional), option.name


@pytest.mark.parametrize("option", OPTIONS, ids=_ids(OPTIONS))
def test_every_option_is_well_formed(option: Option) -> None:
    assert option.help and "\n" not in option.help
    assert option.worker_text and "{" not in option.worker_text
    assert option.optional or option.default is not None
    if option.export is not None:
        assert option.worker_flags and ENV_PREFIX + option.export in option.env_names
    if option.worker_flags:
        assert option.kind in ("int", "float", "bool", "str", "count")
    if option.kind in ("int", "float") and option.default is not None:
        assert option.range is not None and option.range.interval()
    assert option.group is not None or option.worker_flags, "an option nobody reads"


def test_the_exports_are_exactly_the_settings_values() -> None:
    settings = WorkerSettings("aws", "j", "j", "t", 2, 4.0, 2)
    assert set(settings.option_values()) == {option.name for option in EXPORTED}
    assert len({option.export for option in EXPORTED}) == len(EXPORTED)


# --- one default: the same through every consumer


def test_no_two_options_share_a_name_flag_or_variable() -> None:
    assert len(BY_NAME) == len(OPTIONS)
    flags = [flag for option in OPTIONS for flag in option.worker_flags]
    assert len(flags) == len(set(flags))
    variables = [name for option in OPTIONS for name in option.env_names]
    assert len(variables) == len(set(variables))


@pytest.mark.parametrize("option", CONFIG, ids=_ids(CONFIG))
def test_the_loader_default_is_the_options_default(option: Option) -> None:
    config = load_config(None)
    assert _configured(config, option) == option.default
    assert (option.name in RUN_OPTIONS) == (option.group != "provider")
    assert (option.name in PROVIDER_OPTIONS) == (option.group == "provider")


@click.command()
@common_options
@run_options
def _show(**params: Any) -> None:
    config = resolve_config(**params)
    click.echo(json.dumps({option.name: _configured(config, option) for option in CONFIG}))


def _cli_values(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(_show, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)  # type: ignore[no-any-return]


def test_without_flags_the_commands_see_every_default() -> None:
    defaults = {option.name: option.default for option in CONFIG}
    assert _cli_values() == json.loads(json.dumps(defaults))


@pytest.mark.parametrize("option", FLAGGED, ids=_ids(FLAGGED))
def test_passing_the_default_as_a_flag_changes_nothing(option: Option) -> None:
    flag = str(option.flag)
    if option.kind == "bool":
        args = [flag if option.default else f"--no-{flag[2:]}"]
    else:
        args = [flag, format_default(option.default)]
    assert _cli_values(*args)[option.name] == option.default


def _default_settings() -> WorkerSettings:
    """What the manager tells a worker for a job configured with nothing but a job id."""
    config = load_config(None, cli_overrides={"job_id": "job"})
    offer = InstanceOffer(
        "t", vcpus=2, memory_gib=4.0, architecture="x86_64", region="r", price_per_hour_usd=0.1
    )
    candidate = select_instance_type([offer], config.run.constraints)
    return worker_settings(config, candidate, "z")


@pytest.mark.parametrize("option", WORKER, ids=_ids(WORKER))
def test_the_worker_default_is_the_options_default(option: Option) -> None:
    options, _, _ = parse_worker_options([], {}, prog="worker")
    if option.name == "num_simultaneous_tasks":
        assert options.num_simultaneous_tasks == 1  # --num-cpus if known, else 1
    else:
        assert getattr(options, option.name) == option.default


@pytest.mark.parametrize("option", EXPORTED, ids=_ids(list(EXPORTED)))
def test_an_exported_value_reaches_the_worker_unchanged(option: Option) -> None:
    """Configuration → startup script export → worker's parser: the same value, and for a
    policy option left at its default (retry, runtime, keep-alive, GPUs), that default."""
    settings = _default_settings()
    environment = worker_environment(settings)
    options, _, _ = parse_worker_options([], environment, prog="worker")
    sent = settings.option_values()[option.name]
    seen = getattr(options, option.name)
    assert seen == (option.default if sent is None else sent)
    assert (ENV_PREFIX + str(option.export) in environment) == (sent is not None)
    if option.group not in (None, "provider"):
        assert seen == option.default

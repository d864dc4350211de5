"""Shared click options for every ``cloud_tasks`` command, defined once.

Decorate a command and turn its keyword arguments into a validated ``JobConfig``::

    @click.command()
    @common_options          # --config --provider --job-id ... -v/--verbose -q/--quiet
    @run_options             # one flag per run option: --max-instances, --use-spot/--no-use-spot
    @format_option           # --format text|json  (keyword argument ``output_format``)
    def status(**params: Any) -> None:
        config = resolve_config(**params)    # raises ConfigError (CLI: one line, exit 1)
        level = verbosity(params)            # -q → -1, default 0, -v → 1, -vv → 2

Every flag defaults to ``None`` (``()`` for repeatable ones), so ``resolve_config`` can tell a
flag the user passed from one they did not; only passed flags override the configuration
file. ``resolve_config`` ignores keyword arguments that are not configuration options, so a
command may pass its own parameters through ``**params`` as well.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from cloud_tasks.config import PROVIDER_OPTIONS, RUN_OPTIONS, OptionSpec, load_config
from cloud_tasks.config.schema import PROVIDER_FLAGS
from cloud_tasks.domain.options import PROVIDERS, JobConfig

F = TypeVar("F", bound=Callable[..., Any])

#: The run options that ``run_options`` offers as flags, in documentation order.
RUN_FLAGS: tuple[str, ...] = tuple(name for name, spec in RUN_OPTIONS.items() if spec.flag)

_CLICK_TYPES: dict[str, Any] = {
    "int": click.INT,
    "float": click.FLOAT,
    "str": click.STRING,
    "notify": click.STRING,
}


def _option_for(spec: OptionSpec) -> Callable[[F], F]:
    """The click option of one configuration option, with "not passed" distinguishable."""
    dashed = spec.name.replace("_", "-")
    help_text = spec.help
    if spec.kind == "bool":
        return click.option(f"--{dashed}/--no-{dashed}", spec.name, default=None, help=help_text)
    if spec.kind == "str_list":
        return click.option(
            f"--{dashed}",
            spec.name,
            multiple=True,
            help=f"{help_text} Repeat the flag for several.",
        )
    return click.option(
        f"--{dashed}", spec.name, type=_CLICK_TYPES[spec.kind], default=None, help=help_text
    )


def _apply(options: list[Callable[[F], F]], function: F) -> F:
    # click lists options in reverse order of application; apply last first.
    for option in reversed(options):
        function = option(function)
    return function


def common_options(function: F) -> F:
    """Add --config, --provider, the job and location flags, -v/--verbose and -q/--quiet."""
    options: list[Callable[[F], F]] = [
        click.option(
            "--config",
            "config",
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            help="YAML configuration file (see docs/configuration.md).",
        ),
        click.option(
            "--provider",
            "provider",
            type=click.Choice(PROVIDERS, case_sensitive=False),
            default=None,
            help="Provider to use; overrides 'provider:' in the configuration file.",
        ),
        *(_option_for(PROVIDER_OPTIONS[name]) for name in PROVIDER_FLAGS),
        click.option(
            "-v", "--verbose", "verbose", count=True, help="More output; repeat for more."
        ),
        click.option("-q", "--quiet", "quiet", is_flag=True, help="Only warnings and errors."),
    ]
    return _apply(options, function)


def run_options(function: F) -> F:
    """Add one flag per run option (every one except ``startup_script``)."""
    return _apply([_option_for(RUN_OPTIONS[name]) for name in RUN_FLAGS], function)


def format_option(function: F) -> F:
    """Add ``--format text|json`` as the keyword argument ``output_format`` (default text)."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(["text", "json"], case_sensitive=False),
        default="text",
        show_default=True,
        help="Output for people (text) or for scripts (json).",
    )(function)


_OVERRIDABLE = frozenset(RUN_FLAGS) | frozenset(PROVIDER_FLAGS) | {"catalog"}


def cli_overrides(params: dict[str, Any]) -> dict[str, Any]:
    """The configuration options among a command's keyword arguments that the user passed."""
    return {
        name: value
        for name, value in params.items()
        if name in _OVERRIDABLE and value is not None and value != ()
    }


def resolve_config(**params: Any) -> JobConfig:
    """Load ``--config`` and apply ``--provider`` and every passed flag on top of it.

    Raises:
        ConfigError: the file or a flag is invalid (one line with the key path and file).
    """
    config = load_config(
        params.get("config"),
        provider_override=params.get("provider"),
        cli_overrides=cli_overrides(params),
    )
    # Whatever this command prints from now on is checked for these values (docs/reliability).
    from cloud_tasks import redact

    redact.register_secret(config.provider_options.access_key)
    redact.register_secret(config.provider_options.secret_key)
    redact.register_startup_script(config.run.startup_script)
    if config.run.notify is not None:
        redact.register_secret(config.run.notify.webhook)
    return config


def verbosity(params: dict[str, Any]) -> int:
    """-1 with ``--quiet``, else the number of ``-v`` flags."""
    if params.get("quiet"):
        return -1
    return int(params.get("verbose") or 0)

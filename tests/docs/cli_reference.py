"""Renders docs/cli.md from the click commands themselves, so the reference cannot drift.

Regenerate after changing a command: ``python -m tests.docs.cli_reference > docs/cli.md``.
"""

from __future__ import annotations

import inspect

import click

from cloud_tasks.entrypoints.cli.main import cli
from cloud_tasks.entrypoints.cli.options import common_options, run_options

HEADER = """# Command reference

`cloud_tasks COMMAND [OPTIONS]` — command names accept `_` or `-`. Every command that reads a
configuration takes `--config`, `--provider` and the provider options; flags override the file
(see [configuration](configuration.md)). Exit status: 0 success, 1 a handled error (one line
saying what failed, where and what to do), 2 a usage error, 130 interrupted.

This page is generated from the commands' own help (`cloud_tasks COMMAND --help` shows the
same).
"""


def _option_row(param: click.Parameter) -> str | None:
    if not isinstance(param, click.Option) or param.hidden:
        return None
    flags = ", ".join(f"`{flag}`" for flag in [*param.opts, *param.secondary_opts])
    help_text = " ".join((param.help or "").split()).replace("|", "\\|")
    return f"| {flags} | {help_text} |"


def _params_of(decorator: object) -> list[click.Parameter]:
    @click.command()
    def probe() -> None: ...

    return list(decorator(probe).params)  # type: ignore[operator]


def render() -> str:
    ctx = click.Context(cli, info_name="cloud_tasks")
    common = _params_of(common_options)
    run = {param.name for param in _params_of(run_options)}
    shared = {param.name for param in common} | run
    parts = [HEADER, "\n## Common options\n", "| option | meaning |\n|---|---|"]
    parts.extend(row for row in map(_option_row, common) if row)
    parts.append(
        "\nCommands marked *takes run options* also accept one flag per run option "
        "(`--max-instances`, `--min-cpu`, `--use-spot/--no-use-spot`, ...): the table in "
        "[configuration](configuration.md#every-option) lists each with its default.\n"
    )
    for name in sorted(cli.list_commands(ctx)):
        command = cli.get_command(ctx, name)
        if command is None:
            continue
        sub = click.Context(command, info_name=name, parent=ctx)
        usage = " ".join(command.collect_usage_pieces(sub))
        parts.append(f"\n## `{name}`\n")
        parts.append(f"```\ncloud_tasks {name} {usage}\n```\n")
        help_text = inspect.cleandoc((command.help or "").split("\f")[0])
        if help_text:
            parts.append(f"{help_text}\n")
        names = {param.name for param in command.params}
        notes = [
            note
            for note, present in (
                ("takes the common options", {p.name for p in common} <= names),
                ("takes run options", bool(run) and run <= names),
            )
            if present
        ]
        if notes:
            parts.append(f"*{'; '.join(notes).capitalize()}.*\n")
        own = [param for param in command.params if param.name not in shared]
        rows = [row for row in map(_option_row, own) if row]
        if rows:
            parts.append("\n| option | meaning |\n|---|---|")
            parts.extend(rows)
            parts.append("")
    return "\n".join(parts).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")

"""The ``cloud_tasks`` click group: command registration and error handling."""

from __future__ import annotations

import sys
from typing import Any

import click

from cloud_tasks import __version__
from cloud_tasks.bootstrap import missing_library_error
from cloud_tasks.domain.text import one_line
from cloud_tasks.entrypoints.cli import check, info, job, look, queue, simulate
from cloud_tasks.exceptions import CloudTasksError
from cloud_tasks.redact import redact


class _Group(click.Group):
    """Accepts ``list_instance_types`` and ``list-instance-types`` alike."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name.replace("-", "_"))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        _name, command, rest = super().resolve_command(ctx, args)
        return (command.name if command else None), command, rest


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cloud_tasks")
def cli() -> None:
    """Run many independent tasks on cloud VMs or on this machine.

    Command names accept '_' or '-' (list_instance_types = list-instance-types).
    """


for _module in (job, queue, info, simulate, look, check):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI; our errors become one line on stderr and exit status 1."""
    try:
        return cli.main(args=argv, prog_name="cloud_tasks", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except CloudTasksError as exc:
        # One line whatever the message holds (a task id with newlines, 300 KB of text).
        click.echo(f"Error: {one_line(redact(str(exc)))}", err=True)
        sys.exit(1)
    except ModuleNotFoundError as exc:
        # A cloud SDK imported outside the composition root: still one line, not a traceback.
        error = missing_library_error(exc)
        if error is None:
            raise
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)

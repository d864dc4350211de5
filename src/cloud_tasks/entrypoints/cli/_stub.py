"""Placeholders for commands that are not built yet: they say so and exit 1."""

from __future__ import annotations

import click


def not_built(name: str, summary: str) -> click.Command:
    """A command named ``name`` that explains it is not available yet."""

    @click.command(
        name=name,
        help=f"{summary}\n\nNot built yet in this version.",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
    def command() -> None:
        raise click.ClickException(f"'{name}' is not built yet in this version of cloud_tasks")

    return command

"""The simulate command: what-if runs of the pool manager on virtual time."""

from __future__ import annotations

import click

from cloud_tasks.entrypoints.cli._stub import not_built

COMMANDS: list[click.Command] = [
    not_built("simulate", "Simulate a job on virtual time: makespan, cost, retries."),
]

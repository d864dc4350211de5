"""Queue commands: load_queue, show_queue, purge_queue, delete_queue."""

from __future__ import annotations

import click

from cloud_tasks.entrypoints.cli._stub import not_built

COMMANDS: list[click.Command] = [
    not_built("load_queue", "Create the task queue and load tasks into it."),
    not_built("show_queue", "Show the approximate depth of the task queue."),
    not_built("purge_queue", "Empty the task and event queues."),
    not_built("delete_queue", "Delete the task and event queues."),
]

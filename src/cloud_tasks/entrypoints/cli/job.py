"""Job commands: run, manage_pool, status, stop, monitor_event_queue."""

from __future__ import annotations

import click

from cloud_tasks.entrypoints.cli._stub import not_built

COMMANDS: list[click.Command] = [
    not_built("run", "Load tasks, start and supervise instances until every task is done."),
    not_built("manage_pool", "Supervise the instance pool for an already loaded queue."),
    not_built("status", "Show task counts, failures, instances and spend."),
    not_built("stop", "Terminate this job's instances."),
    not_built("monitor_event_queue", "Consume worker events into the task database."),
]

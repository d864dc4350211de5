"""``cloud_tasks check``: preflight checks before a job creates anything."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from cloud_tasks.bootstrap import build_job_adapters
from cloud_tasks.entrypoints.cli.options import (
    common_options,
    format_option,
    resolve_config,
    run_options,
)
from cloud_tasks.service_layer.preflight import failed, render, run_checks
from cloud_tasks.service_layer.session import db_path_of, make_plan
from cloud_tasks.service_layer.taskload import read_task_file

#: Tasks assumed when no task file is given: the pool is then as large as the limits allow.
_UNBOUNDED_TASKS = 10**9


@click.command("check")
@common_options
@run_options
@click.option(
    "--tasks",
    "--task-file",
    "tasks_file",
    type=str,
    default=None,
    help="Size the planned pool for this task file (default: as large as the limits allow).",
)
@format_option
def check_command(**params: Any) -> None:
    """Check credentials, permissions, image, quotas, queue, startup script and the workers'
    credentials before a job runs; one row per check with the fix. Exit 1 when one fails.

    'run' and 'manage_pool' run the same checks before they create anything. A check that
    cannot be verified (the API is unavailable, or the caller may not ask) is a warning.
    """
    config = resolve_config(**params)
    adapters = build_job_adapters(config, db_path_of(config))
    n_tasks = _UNBOUNDED_TASKS
    if params["tasks_file"]:
        # The whole file and every message's size, in one pass, as `run` checks it.
        max_bytes = adapters.task_queue.max_message_bytes
        n_tasks = read_task_file(params["tasks_file"], max_message_bytes=max_bytes).total
    plan = make_plan(config, adapters, n_tasks)
    results = run_checks(config, adapters, plan)
    if params["output_format"] == "json":
        click.echo(
            json.dumps(
                {
                    "ok": not failed(results),
                    "checks": [
                        {"name": r.name, "status": r.status, "detail": r.detail, "fix": r.fix}
                        for r in results
                    ],
                },
                indent=2,
            )
        )
    else:
        click.echo(render(results))
    if failed(results):
        sys.exit(1)


COMMANDS: list[click.Command] = [check_command]

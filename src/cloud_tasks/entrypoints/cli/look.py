"""Commands that look at a job's task database: dashboard, results (SPEC §11)."""

from __future__ import annotations

import sys
from typing import Any

import click

from cloud_tasks.domain.taskstate import STATES
from cloud_tasks.entrypoints.cli.options import common_options, resolve_config
from cloud_tasks.entrypoints.dashboard import DEFAULT_HOST, DEFAULT_PORT, DashboardServer
from cloud_tasks.service_layer.results import FORMATS, export_results, export_results_to_file
from cloud_tasks.service_layer.session import db_path_of


def _db_option(function: Any) -> Any:
    return click.option(
        "--db-file",
        "db_file",
        type=str,
        default=None,
        help="Task database (default: db_file from the configuration, else <job_id>.db).",
    )(function)


@click.command("results")
@common_options
@_db_option
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS, case_sensitive=False),
    default="jsonl",
    show_default=True,
    help="JSON lines (one object per task) or CSV (with a header row).",
)
@click.option(
    "--state",
    "states",
    type=click.Choice(STATES),
    multiple=True,
    help="Only tasks in this state; repeat the flag for several (default: every task).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write to this new file (never over an existing one) instead of standard output.",
)
def results_command(**params: Any) -> None:
    """Export per-task results from the task database, one record per task.

    Keys: task_id, state, attempts, result (the JSON value the task returned), error,
    elapsed_s, instance_id; tasks in the order they were loaded. Reads the database without
    changing it, so it may run while the job does.
    """
    from cloud_tasks.bootstrap import open_task_database_view

    config = resolve_config(**params)
    db_path = db_path_of(config)
    with open_task_database_view(db_path) as db:
        output_format = params["output_format"].lower()
        if params["output"] is None:
            export_results(db, sys.stdout, output_format=output_format, states=params["states"])
            sys.stdout.flush()
            return
        count = export_results_to_file(
            db, params["output"], output_format=output_format, states=params["states"]
        )
        click.echo(f"wrote {count} task results to {params['output']}", err=True)


@click.command("dashboard")
@common_options
@_db_option
@click.option(
    "--host",
    default=DEFAULT_HOST,
    show_default=True,
    help="Address to listen on; anything but a loopback address exposes the page to the network.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on (0 picks a free one).",
)
def dashboard_command(**params: Any) -> None:
    """Serve a live web page over the task database until Ctrl-C.

    Shows progress and ETA, completions and throughput, spend against max_total_cost,
    instances by type, zone and spot/on-demand with preemptions, task durations, the slowest
    running tasks, the top errors, and the manager's decisions with why the pool is not
    larger. The page refreshes itself every few seconds while the job runs and stays useful
    after it. Read-only; everything it loads comes from this server.
    """
    from cloud_tasks.bootstrap import open_task_database_view

    config = resolve_config(**params)
    db_path = db_path_of(config)
    open_task_database_view(db_path).close()
    server = DashboardServer(db_path, params["host"], params["port"])
    if not server.loopback_only:
        click.echo(
            f"WARNING: listening on {params['host']}: anyone who can reach this address sees "
            "the job (the page has no login); prefer an SSH tunnel to 127.0.0.1",
            err=True,
        )
    click.echo(f"dashboard of {db_path} at {server.url} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.server_close()


COMMANDS: list[click.Command] = [dashboard_command, results_command]

"""The command group itself: every SPEC §11 command is listed; names accept '_' or '-'."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from cloud_tasks.entrypoints.cli.main import cli

SPEC_COMMANDS = {
    "run",
    "manage_pool",
    "load_queue",
    "show_queue",
    "purge_queue",
    "delete_queue",
    "monitor_event_queue",
    "status",
    "stop",
    "list_running_instances",
    "list_instance_types",
    "list_images",
    "list_regions",
    "simulate",
    "dashboard",
    "results",
    "check",
}


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = {line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line}
    assert listed == SPEC_COMMANDS


def test_run_force_help_says_what_force_does() -> None:
    result = CliRunner().invoke(cli, ["run", "--help"], terminal_width=2000)
    assert result.exit_code == 0
    force = next(line for line in result.output.splitlines() if "--force" in line)
    assert "purge the messages its task queue holds" in force
    assert "replace its task database" in force
    assert "even if the queue or database exist" not in force


def test_dash_and_underscore_names_are_the_same_command() -> None:
    runner = CliRunner()
    underscore = runner.invoke(cli, ["list_regions", "--help"])
    dash = runner.invoke(cli, ["list-regions", "--help"])
    assert underscore.exit_code == dash.exit_code == 0
    assert underscore.output == dash.output


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cloud_tasks", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "cloud_tasks" in result.stdout


def test_unknown_command_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cloud_tasks", "no_such_command"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "No such command" in result.stderr

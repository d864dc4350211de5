"""The command group itself: every SPEC §11 command is listed; names accept '_' or '-'."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from cloud_tasks.entrypoints.cli.main import cli
from cloud_tasks.exceptions import TaskFileError

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


def test_check_reads_the_task_file_as_run_does(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yml").write_text("provider: local\nlocal:\n  job_id: chk\n")
    (tmp_path / "bad.json").write_text(
        '[{"task_id": "a", "data": {}}, {"task_id": "a", "data": {}}]'
    )
    result = CliRunner().invoke(cli, ["check", "--config", "c.yml", "--tasks", "bad.json"])
    assert isinstance(result.exception, TaskFileError)  # main() prints it as one line
    assert "bad.json, task index 1" in str(result.exception)
    assert "duplicate task_id 'a'" in str(result.exception)
    assert not list(tmp_path.glob("*.db"))  # nothing was created

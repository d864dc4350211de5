"""``cloud_tasks results``: one record per task, JSON lines or CSV, filtered, never clobbering."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cloud_tasks.adapters.local.taskdb import TaskDatabase
from cloud_tasks.domain.tasks import Task
from cloud_tasks.entrypoints.cli.main import cli
from cloud_tasks.service_layer.results import RESULT_KEYS


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    path = tmp_path / "job.db"
    with TaskDatabase(path) as db:
        db.add_tasks([Task(f"t{i}", {"i": i}) for i in range(4)], 1.0)
        db.ingest(
            [
                {
                    "event_type": "task_completed",
                    "task_id": "t0",
                    "instance_id": "i-1",
                    "success": True,
                    "retry": False,
                    "attempt": 1,
                    "elapsed_time": 1.5,
                    "result": {"sum": 3, "note": 'é,"quoted"\nline'},
                },
                {
                    "event_type": "task_completed",
                    "task_id": "t1",
                    "instance_id": "i-2",
                    "success": True,
                    "retry": False,
                    "attempt": 2,
                    "elapsed_time": 2.0,
                    "result": [1, 2],
                },
                {
                    "event_type": "task_exception",
                    "task_id": "t2",
                    "instance_id": "i-1",
                    "retry": False,
                    "attempt": 1,
                    "elapsed_time": 0.5,
                    "exception": "Traceback...\nValueError: bad input",
                },
            ],
            2.0,
        )
    return path


def _main(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloud_tasks", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _results(*args: str) -> str:
    result = CliRunner().invoke(cli, ["results", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_json_lines_have_exactly_the_documented_keys(db_file: Path) -> None:
    records = [json.loads(line) for line in _results("--db-file", str(db_file)).splitlines()]
    assert [tuple(r) for r in records] == [RESULT_KEYS] * 4
    assert RESULT_KEYS == (
        "task_id",
        "state",
        "attempts",
        "result",
        "error",
        "elapsed_s",
        "instance_id",
    )
    by_id = {r["task_id"]: r for r in records}
    assert by_id["t0"]["result"] == {"sum": 3, "note": 'é,"quoted"\nline'}
    assert by_id["t0"]["state"] == "completed" and by_id["t0"]["elapsed_s"] == 1.5
    assert by_id["t1"]["result"] == [1, 2] and by_id["t1"]["attempts"] == 2
    assert by_id["t2"]["state"] == "failed" and by_id["t2"]["error"] == "ValueError: bad input"
    assert by_id["t2"]["result"] is None
    assert by_id["t3"] == {
        "task_id": "t3",
        "state": "pending",
        "attempts": 0,
        "result": None,
        "error": None,
        "elapsed_s": None,
        "instance_id": None,
    }


def test_csv_has_a_header_and_the_result_as_json_text(db_file: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(_results("--db-file", str(db_file), "--format", "csv"))))
    assert tuple(rows[0]) == RESULT_KEYS
    assert [r["task_id"] for r in rows] == ["t0", "t1", "t2", "t3"]
    assert json.loads(rows[0]["result"]) == {"sum": 3, "note": 'é,"quoted"\nline'}
    assert rows[2]["error"] == "ValueError: bad input"


def test_the_state_filter(db_file: Path) -> None:
    out = _results("--db-file", str(db_file), "--state", "failed", "--state", "pending")
    assert [json.loads(line)["task_id"] for line in out.splitlines()] == ["t2", "t3"]


def test_output_file_is_written_and_never_overwritten(db_file: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        cli, ["results", "--db-file", str(db_file), "--output", str(target)]
    )
    assert result.exit_code == 0, result.output
    assert len(target.read_text().splitlines()) == 4
    target.write_text("mine\n")
    again = _main("results", "--db-file", str(db_file), "--output", str(target))
    assert again.returncode == 1
    assert (
        again.stderr.strip()
        == f"Error: {target}: already exists; remove it or choose another --output"
    )
    assert target.read_text() == "mine\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_export_leaves_the_database_unchanged(db_file: Path) -> None:
    before = hashlib.sha256(db_file.read_bytes()).hexdigest()
    _results("--db-file", str(db_file))
    assert hashlib.sha256(db_file.read_bytes()).hexdigest() == before


def test_a_missing_database_is_one_clear_line(tmp_path: Path) -> None:
    result = _main("results", "--db-file", str(tmp_path / "nope.db"))
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert "no task database here" in result.stderr

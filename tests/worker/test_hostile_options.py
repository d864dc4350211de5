"""Hostile worker options and returns: one line and exit 1, never a traceback or a hang."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from tests.worker.helpers import by_task, read_events, run_script, write_tasks

from cloud_tasks.entrypoints.worker.options import evolve
from cloud_tasks.worker import Worker, WorkerData


@pytest.mark.parametrize(
    ("event_log", "fragment"),
    [
        ("/proc/cloud-tasks-events.log", "kernel file system"),
        ("/proc/self/status", "kernel file system"),
        ("/sys/events.log", "kernel file system"),
        ("/", "is a directory"),
        ("missing/folder/events.log", "folder 'missing/folder' does not exist"),
        ("tasks.json/events.log", "'tasks.json' is not a folder"),
        ("fifo", "named pipe that nothing reads"),
    ],
)
def test_bad_event_log_path_is_one_line_and_exit_1(
    tmp_path: Path, event_log: str, fragment: str
) -> None:
    marker = tmp_path / "ran"
    write_tasks(tmp_path / "tasks.json", [{"task_id": "a", "data": {"mode": "success"}}])
    (tmp_path / "tasks.json").write_text(
        f'[{{"task_id": "a", "data": {{"mode": "success", "marker": "{marker}"}}}}]'
    )
    os.mkfifo(tmp_path / "fifo")
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = run_script(
        "outcomes_worker.py", ["--tasks", "tasks.json", "--event-log-file", event_log], timeout_s=60
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--event-log-file" in lines[0] and fragment in lines[0], lines
    assert not marker.exists()  # no task ran
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no folder was created


def test_event_log_variable_with_a_missing_folder_is_refused(tmp_path: Path) -> None:
    write_tasks(tmp_path / "tasks.json", [{"task_id": "a", "data": {"mode": "success"}}])
    proc = run_script(
        "outcomes_worker.py",
        ["--tasks", "tasks.json"],
        env={"RMS_CLOUD_TASKS_EVENT_LOG_FILE": str(tmp_path / "nowhere" / "e.log")},
    )
    assert proc.returncode == 1 and "does not exist" in proc.stderr
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--max-runtime", "nan"], {}),
        (["--num-simultaneous-tasks", "9" * 40], {}),
        (["--tasks-to-skip", "1" + "0" * 30], {}),
        ([], {"RMS_CLOUD_TASKS_SHUTDOWN_GRACE_PERIOD": "inf"}),
        ([], {"RMS_CLOUD_TASKS_TO_SKIP": "9" * 5000}),
    ],
)
def test_numbers_out_of_range_are_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    write_tasks(tmp_path / "tasks.json", [{"task_id": "a", "data": {"mode": "success"}}])
    proc = run_script("outcomes_worker.py", ["--tasks", "tasks.json", *args], env=env)
    assert proc.returncode == 2, proc.stderr  # a bad option, as argparse reports every other
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and len(errors[0]) < 300 and "Traceback" not in proc.stderr
    assert read_events() == []


def test_only_a_real_bool_decides_success(tmp_path: Path) -> None:
    tasks = [
        {"task_id": "str", "data": {"mode": "not_bool"}},
        {"task_id": "int", "data": {"mode": "int_success"}},
        {"task_id": "ok", "data": {"mode": "success"}},
    ]
    write_tasks(tmp_path / "tasks.json", tasks)
    proc = run_script("outcomes_worker.py", ["--tasks", "tasks.json"])
    assert proc.returncode == 0, proc.stderr
    events = {task_id: found[0] for task_id, found in by_task(read_events()).items()}
    for task_id, kind in (("str", "str"), ("int", "int")):
        assert events[task_id]["event_type"] == "task_exception", events[task_id]
        assert events[task_id]["outcome"] == "exception"
        assert (
            f"process_task returned success of type {kind}; expected bool"
            in (events[task_id]["exception"])
        )
    assert events["ok"]["success"] is True


def test_the_largest_limits_still_run_tasks(tmp_path: Path) -> None:
    # A max_runtime of weeks overflowed the fork server's poll (nothing ever finished), and a
    # huge memory limit failed every task; the upper bounds of their ranges work.
    write_tasks(tmp_path / "tasks.json", [{"task_id": "a", "data": {"mode": "success"}}])
    proc = run_script(
        "outcomes_worker.py",
        [
            "--tasks", "tasks.json", "--max-runtime", "604800",
            "--max-memory-allowed-per-task", "1000000",
        ],
        timeout_s=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert by_task(read_events())["a"][0]["success"] is True


def _quick(task_id: str, data: Any, worker_data: WorkerData) -> tuple[bool, Any]:
    return True, {"max_runtime": worker_data.max_runtime}


def test_fork_server_waits_safely_past_the_poll_limit() -> None:
    # Bypass the option check: even a deadline past poll()'s C int of milliseconds (24.8 days)
    # must not stop the fork server from reporting.
    worker = Worker(
        _quick,
        args=["--no-event-log-to-file"],
        task_source=lambda: [{"task_id": "a", "data": {}}],
        environ={},
        handle_signals=False,
    )
    worker.options = evolve(worker.options, max_runtime=60 * 86400.0)
    assert asyncio.run(asyncio.wait_for(worker.serve(), timeout=60)) == 0


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_disk_under_the_event_log_is_one_line(tmp_path: Path) -> None:
    tasks = [{"task_id": f"t{i}", "data": {"mode": "success"}} for i in range(3)]
    write_tasks(tmp_path / "tasks.json", tasks)
    proc = run_script(
        "outcomes_worker.py", ["--tasks", "tasks.json", "--event-log-file", "/dev/full"]
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "cannot write the event log" in errors[0], proc.stderr


def test_a_nan_result_is_an_error_outcome_not_bare_nan(tmp_path: Path) -> None:
    write_tasks(tmp_path / "tasks.json", [{"task_id": "a", "data": {"mode": "nan_result"}}])
    proc = run_script("outcomes_worker.py", ["--tasks", "tasks.json"])
    assert proc.returncode == 0, proc.stderr
    assert "NaN" not in (tmp_path / "events.log").read_text()  # every line stays JSON
    (event,) = by_task(read_events())["a"]
    assert event["event_type"] == "task_exception"
    assert "not JSON-serializable" in event["exception"]

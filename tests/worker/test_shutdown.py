"""Spot termination and SIGINT/SIGTERM in file mode, with real processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.worker.helpers import SCRIPTS, by_task, read_events, run_script, write_tasks


def _wait_for(paths: list[Path], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(p.exists() for p in paths):
        assert time.monotonic() < deadline, f"tasks never started: {paths}"
        time.sleep(0.05)


def test_simulated_spot_termination(tmp_path: Path) -> None:
    tasks = [
        {"task_id": "watcher", "data": {"mode": "wait_for_shutdown", "seconds": 20}},
        {"task_id": "sleeper", "data": {"mode": "sleep", "seconds": 60}},
        {"task_id": "never-started", "data": {"mode": "success"}},
    ]
    write_tasks(tmp_path / "tasks.json", tasks)
    started = time.monotonic()
    proc = run_script(
        "outcomes_worker.py",
        [
            "--tasks", "tasks.json", "--num-simultaneous-tasks", "2",
            "--simulate-spot-termination-after", "1", "--simulate-spot-termination-delay", "1",
        ],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 30
    events = read_events()
    assert [e["event_type"] for e in events if "task_id" not in e] == ["spot_termination"]
    per_task = by_task(events)
    assert per_task["watcher"][0]["result"] == {"noticed": True}
    (released,) = per_task["sleeper"]
    assert released["event_type"] == "task_released"
    assert released["reason"] == "spot termination" and released["retry"] is False
    assert "never-started" not in per_task


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPTS / "outcomes_worker.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigterm_waits_for_the_grace_period_then_kills(tmp_path: Path) -> None:
    tasks = [
        {"task_id": "watcher", "data": {"mode": "wait_for_shutdown", "marker": "w"}},
        {"task_id": "sleeper", "data": {"mode": "sleep", "seconds": 60, "marker": "s"}},
        {"task_id": "later", "data": {"mode": "success"}},
    ]
    write_tasks(tmp_path / "tasks.json", tasks)
    proc = _start(
        ["--tasks", "tasks.json", "--num-simultaneous-tasks", "2", "--shutdown-grace-period", "1"]
    )
    _wait_for([tmp_path / "w", tmp_path / "s"])
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    per_task = by_task(read_events())
    assert per_task["watcher"][0]["result"] == {"noticed": True}
    assert per_task["sleeper"][0]["event_type"] == "task_released"
    assert "later" not in per_task


def test_a_second_sigint_stops_at_once(tmp_path: Path) -> None:
    tasks = [{"task_id": "sleeper", "data": {"mode": "sleep", "seconds": 60, "marker": "s"}}]
    write_tasks(tmp_path / "tasks.json", tasks)
    proc = _start(["--tasks", "tasks.json", "--shutdown-grace-period", "60"])
    _wait_for([tmp_path / "s"])
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    assert proc.poll() is None  # still inside the grace period
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - started < 15
    assert proc.returncode == 128 + signal.SIGINT, stderr
    (event,) = by_task(read_events())["sleeper"]
    assert event["event_type"] == "task_released"


def test_task_processes_do_not_outlive_a_killed_worker(tmp_path: Path) -> None:
    tasks = [{"task_id": "sleeper", "data": {"mode": "sleep", "seconds": 60, "marker": "s"}}]
    write_tasks(tmp_path / "tasks.json", tasks)
    proc = _start(["--tasks", "tasks.json"])
    _wait_for([tmp_path / "s"])
    child_pid = int((tmp_path / "s").read_text())
    proc.kill()
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 15
    while Path(f"/proc/{child_pid}").exists():
        status = Path(f"/proc/{child_pid}/stat").read_text().split()[2]
        if status == "Z":
            break
        assert time.monotonic() < deadline, "task process survived its worker"
        time.sleep(0.05)


def test_run_script_helper_sees_exit_code_zero_for_empty_file(tmp_path: Path) -> None:
    write_tasks(tmp_path / "tasks.json", [])
    proc = run_script("outcomes_worker.py", ["--tasks", "tasks.json"])
    assert proc.returncode == 0, proc.stderr
    assert read_events() == []

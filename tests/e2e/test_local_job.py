"""End to end on the ``local`` provider: real processes, real SQLite queue, real teardown."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "local"

pytestmark = pytest.mark.slow

WORKER = """\
import asyncio, os, sys, time
from cloud_tasks.worker import Worker

def process_task(task_id, task_data, worker_data):
    with open(os.path.join("started", f"{task_id}.{os.getpid()}"), "w"):
        pass
    time.sleep(task_data.get("sleep", 0.5))
    with open(os.path.join("done", task_id), "a") as f:
        f.write("x")
    return True, {"doubled": task_data["n"] * 2}

if __name__ == "__main__":
    asyncio.run(Worker(process_task, args=sys.argv[1:]).start())
"""

CONFIG = """\
provider: local
local:
  job_id: {job_id}
  startup_script: |
    mkdir -p started done
    export RMS_CLOUD_TASKS_VISIBILITY_TIMEOUT=3
    {command}
  max_instances: 2
  cpus_per_task: 0.25
  max_tasks_per_instance: 2
  scaling_check_interval: 1
  instance_termination_delay: 3
  keepalive_interval: 1
  keepalive_startup_timeout: 20
  keepalive_timeout: 30
"""


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}


def _write_job(
    tmp_path: Path, n: int, *, sleep_s: float = 0.5, job_id: str = "e2e-job", command: str = ""
) -> None:
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "config.yml").write_text(
        CONFIG.format(job_id=job_id, command=command or "exec python3 worker.py")
    )
    tasks = [{"task_id": f"t{i:03d}", "data": {"n": i, "sleep": sleep_s}} for i in range(n)]
    (tmp_path / "tasks.json").write_text(json.dumps(tasks))


def _cli(tmp_path: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloud_tasks", *args],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _default_sigint() -> None:
    """In a child about to exec: Ctrl-C acts as for a person even when this test runs under a
    shell that started it in the background, where SIGINT is ignored (and stays ignored across
    exec, so Python would never raise KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cloud_tasks", *args],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def _wait_for(predicate: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


def _registry(tmp_path: Path, job_id: str = "e2e-job") -> dict[str, dict[str, object]]:
    path = tmp_path / ".cloud_tasks" / job_id / "local-instances.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _status(tmp_path: Path) -> dict[str, object]:
    result = _cli(tmp_path, "status", "--config", "config.yml", "--format", "json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def _queue_exists(directory: Path, name: str) -> bool:
    """Whether queue ``name`` exists in the queue file of job ``name`` run in ``directory``."""
    from cloud_tasks.adapters.local.sqlite_queue import SqliteTaskQueue, queue_file

    path = queue_file(name, directory / ".cloud_tasks" / name)
    return path.exists() and SqliteTaskQueue(path, name).exists()


def _alive_pids(tmp_path: Path) -> list[int]:
    import psutil

    pids = []
    for entry in _registry(tmp_path).values():
        pid = int(str(entry["pid"]))
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            pids.append(pid)
    return pids


def test_readme_example_runs_end_to_end(tmp_path: Path) -> None:
    work = tmp_path / "example"
    shutil.copytree(
        EXAMPLE, work, ignore=shutil.ignore_patterns("results", "*.db*", ".cloud_tasks")
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cloud_tasks",
            "run",
            "--config",
            "config.yml",
            "--tasks",
            "my_tasks.json",
        ],
        cwd=work,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tasks = json.loads((work / "my_tasks.json").read_text())
    for task in tasks:
        saved = json.loads((work / "results" / f"{task['task_id']}.json").read_text())
        assert saved["sum"] == task["data"]["num1"] + task["data"]["num2"]
    assert f"All {len(tasks)} tasks completed." in result.stdout
    assert "0 failed" in result.stdout
    # The job's queue file went with it.
    assert not list((work / ".cloud_tasks" / "example-local").glob("*.sqlite3*"))
    registry = work / ".cloud_tasks" / "example-local" / "local-instances.json"
    assert json.loads(registry.read_text()) == {}


def test_kill_9_of_an_instance_mid_task_loses_nothing(tmp_path: Path) -> None:
    _write_job(tmp_path, 16, sleep_s=1.0)
    manager = _start(tmp_path, "run", "--config", "config.yml", "--tasks", "tasks.json")
    try:
        _wait_for(
            lambda: (
                len(_alive_pids(tmp_path)) == 2 and len(list((tmp_path / "started").glob("*"))) >= 3
            )
        )
        victim = _alive_pids(tmp_path)[0]
        os.killpg(victim, signal.SIGKILL)
        out, err = manager.communicate(timeout=180)
    finally:
        if manager.poll() is None:
            manager.kill()
    assert manager.returncode == 0, out + err
    assert "failed; it will be replaced" in err
    status = _status(tmp_path)
    assert status["tasks"] == {
        "pending": 0,
        "running": 0,
        "completed": 16,
        "failed": 0,
        "total": 16,
    }
    done = sorted(p.name for p in (tmp_path / "done").iterdir())
    assert done == [f"t{i:03d}" for i in range(16)]
    starts = [p.name.split(".")[0] for p in (tmp_path / "started").iterdir()]
    assert len(starts) > 16  # the killed instance's tasks ran again elsewhere
    from cloud_tasks.adapters.local.taskdb import TaskDatabase

    with TaskDatabase(tmp_path / "e2e-job.db") as db:
        rows = list(db.iter_rows())
        # A lost instance is not the task's fault: no attempt was consumed (SPEC §7).
        assert {row.attempts for row in rows} == {1}
        assert {row.result["doubled"] for row in rows} == {2 * i for i in range(16)}
    assert _alive_pids(tmp_path) == []


def test_broken_startup_script_stops_with_where_to_look(tmp_path: Path) -> None:
    _write_job(tmp_path, 4, command="python3 no_such_worker.py")
    result = _cli(tmp_path, "run", "--config", "config.yml", "--tasks", "tasks.json")
    assert result.returncode == 1
    assert "the startup script is probably broken" in result.stderr
    assert "local-instances" in result.stderr and ".log" in result.stderr
    assert _alive_pids(tmp_path) == []
    # Nothing is lost: the job can be fixed and resumed.
    assert _queue_exists(tmp_path, "e2e-job")
    assert _status(tmp_path)["tasks"]["pending"] == 4  # type: ignore[index]


def test_continue_after_the_manager_was_killed(tmp_path: Path) -> None:
    _write_job(tmp_path, 12, sleep_s=0.7)
    manager = _start(tmp_path, "run", "--config", "config.yml", "--tasks", "tasks.json")
    try:
        _wait_for(
            lambda: (tmp_path / "done").exists() and len(list((tmp_path / "done").iterdir())) >= 2
        )
        manager.send_signal(signal.SIGKILL)
        manager.wait(timeout=30)
    finally:
        if manager.poll() is None:
            manager.kill()
    assert len(_alive_pids(tmp_path)) == 2  # the instances outlive the manager
    result = _cli(tmp_path, "run", "--config", "config.yml", "--continue")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _status(tmp_path)["tasks"]["completed"] == 12  # type: ignore[index]
    assert _alive_pids(tmp_path) == []
    assert not _queue_exists(tmp_path, "e2e-job")
    assert not list((tmp_path / ".cloud_tasks" / "e2e-job").glob("*.sqlite3*"))


def test_interrupt_leaves_instances_running_and_stop_ends_them(tmp_path: Path) -> None:
    _write_job(tmp_path, 40, sleep_s=1.0)
    manager = _start(tmp_path, "run", "--config", "config.yml", "--tasks", "tasks.json")
    try:
        _wait_for(lambda: len(_alive_pids(tmp_path)) == 2)
        manager.send_signal(signal.SIGINT)
        out, err = manager.communicate(timeout=60)
    finally:
        if manager.poll() is None:
            manager.kill()
    assert manager.returncode == 130, out + err
    assert "--continue" in err and "cloud_tasks stop" in err
    assert len(_alive_pids(tmp_path)) == 2
    listed = _cli(tmp_path, "list_running_instances", "--config", "config.yml", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert {i["state"] for i in json.loads(listed.stdout)} == {"running"}
    assert len(json.loads(listed.stdout)) == 2
    result = _cli(tmp_path, "stop", "--config", "config.yml", "--delete-queues")
    assert result.returncode == 0, result.stderr
    assert "stopped 2 instances" in result.stdout
    # The queues are gone: --continue no longer works, and the hint says what does.
    assert "start it over with: cloud_tasks run --force --config config.yml --tasks " in (
        result.stdout
    )
    _wait_for(lambda: _alive_pids(tmp_path) == [])
    assert not _queue_exists(tmp_path, "e2e-job")
    assert not list((tmp_path / ".cloud_tasks" / "e2e-job").glob("*.sqlite3*"))


def test_stop_with_delete_queues_tells_the_manager_to_hint_a_new_start(tmp_path: Path) -> None:
    _write_job(tmp_path, 24, sleep_s=1.0)
    manager = _start(tmp_path, "run", "--config", "config.yml", "--tasks", "tasks.json")
    try:
        _wait_for(lambda: len(_alive_pids(tmp_path)) == 2)
        stopped = _cli(tmp_path, "stop", "--config", "config.yml", "--delete-queues")
        assert stopped.returncode == 0, stopped.stderr
        out, err = manager.communicate(timeout=120)
    finally:
        if manager.poll() is None:
            manager.kill()
    said = out + err
    assert "stop --delete-queues" in said, said
    hint = said.split("start it over with: ", 1)[1].split("\n", 1)[0].split()
    assert hint[:3] == ["cloud_tasks", "run", "--force"], said
    assert "--continue" not in said.split("stop --delete-queues", 1)[1]
    # The hinted command is what works: it runs the job to the end.
    restarted = _cli(tmp_path, *hint[1:])
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert _status(tmp_path)["tasks"]["completed"] == 24  # type: ignore[index]
    assert _alive_pids(tmp_path) == []


def test_load_queue_then_manage_pool(tmp_path: Path) -> None:
    _write_job(tmp_path, 10, sleep_s=0.2, job_id="pool-job")
    loaded = _cli(tmp_path, "load_queue", "--config", "config.yml", "--tasks", "tasks.json")
    assert loaded.returncode == 0, loaded.stderr
    result = _cli(tmp_path, "manage_pool", "--config", "config.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All 10 tasks completed." in result.stdout
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == [f"t{i:03d}" for i in range(10)]
    assert _registry(tmp_path, "pool-job") == {}
    # manage_pool leaves the queues to whoever loaded them.
    assert _queue_exists(tmp_path, "pool-job")


def test_monitor_event_queue_records_hand_started_workers(tmp_path: Path) -> None:
    _write_job(tmp_path, 6, sleep_s=0.1, job_id="hand-job")
    (tmp_path / "started").mkdir()
    (tmp_path / "done").mkdir()
    loaded = _cli(tmp_path, "load_queue", "--config", "config.yml", "--tasks", "tasks.json")
    assert loaded.returncode == 0, loaded.stderr
    worker = subprocess.run(
        [
            sys.executable,
            "worker.py",
            "--provider",
            "local",
            "--job-id",
            "hand-job",
            "--exit-when-idle",
            "1",
            "--num-simultaneous-tasks",
            "3",
        ],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == 0, worker.stderr
    result = _cli(tmp_path, "monitor_event_queue", "--config", "config.yml", "--once")
    assert result.returncode == 0, result.stderr
    assert "6 completed, 0 failed" in result.stdout
    status = _status(tmp_path)
    assert status["tasks"]["completed"] == 6  # type: ignore[index]


FAILING_WORKER = """\
import asyncio, sys
from cloud_tasks.worker import Worker

def process_task(task_id, task_data, worker_data):
    if task_data["n"] % 3 == 0:
        raise ValueError(f"bad input {task_data['n']}")
    return True, None

if __name__ == "__main__":
    asyncio.run(Worker(process_task, args=sys.argv[1:]).start())
"""


def test_failed_tasks_are_reported_and_strict_exits_1(tmp_path: Path) -> None:
    _write_job(tmp_path, 9, job_id="fail-job")
    (tmp_path / "worker.py").write_text(FAILING_WORKER)
    result = _cli(tmp_path, "run", "--config", "config.yml", "--tasks", "tasks.json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING: 3 of 9 tasks FAILED" in result.stdout
    assert "ValueError: bad input" in result.stdout
    status = _status(tmp_path)
    assert status["tasks"] == {"pending": 0, "running": 0, "completed": 6, "failed": 3, "total": 9}
    assert {f["task_id"] for f in status["failures"]} == {"t000", "t003", "t006"}  # type: ignore[union-attr]

    again = _cli(tmp_path, "run", "--config", "config.yml", "--tasks", "tasks.json")
    assert again.returncode == 1
    assert "already exists" in again.stderr and "--force" in again.stderr
    strict = _cli(
        tmp_path, "run", "--config", "config.yml", "--tasks", "tasks.json", "--force", "--strict"
    )
    assert strict.returncode == 1
    assert "WARNING: 3 of 9 tasks FAILED" in strict.stdout


def _pty_run(tmp_path: Path, args: list[str]) -> tuple[int, int]:
    """Start the CLI on a pseudo-terminal (so Ctrl-C and the prompt behave as for a person)."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child process
        _default_sigint()
        os.chdir(tmp_path)
        os.execve(sys.executable, [sys.executable, "-m", "cloud_tasks", *args], _env(tmp_path))
    return pid, fd


def _read_until(fd: int, needle: str, timeout_s: float = 60.0) -> str:
    import select

    seen = ""
    deadline = time.monotonic() + timeout_s
    while needle not in seen:
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} not seen; output so far: {seen[-2000:]!r}")
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 65536).decode(errors="replace")
            except OSError:
                break
    return seen


def test_ctrl_c_asks_and_terminate_cleans_everything(tmp_path: Path) -> None:
    _write_job(tmp_path, 40, sleep_s=1.0, job_id="e2e-job")
    pid, fd = _pty_run(tmp_path, ["run", "--config", "config.yml", "--tasks", "tasks.json"])
    try:
        _wait_for(lambda: len(_alive_pids(tmp_path)) == 2)
        _read_until(fd, "started 2 instances")
        os.write(fd, b"\x03")
        _read_until(fd, "[c]ontinue?")
        os.write(fd, b"t\n")
        _read_until(fd, "task database is kept")
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 130
    assert _alive_pids(tmp_path) == []
    assert not _queue_exists(tmp_path, "e2e-job")


def test_ctrl_c_then_continue_finishes_the_job(tmp_path: Path) -> None:
    _write_job(tmp_path, 12, sleep_s=0.5, job_id="e2e-job")
    pid, fd = _pty_run(tmp_path, ["run", "--config", "config.yml", "--tasks", "tasks.json"])
    try:
        _read_until(fd, "started 2 instances")
        os.write(fd, b"\x03")
        _read_until(fd, "[c]ontinue?")
        os.write(fd, b"c\n")
        _read_until(fd, "All 12 tasks completed.", timeout_s=120)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(list((tmp_path / "done").iterdir())) == 12
    assert _alive_pids(tmp_path) == []

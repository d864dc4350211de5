"""The job commands when the manager is interrupted, doubled or stopped, with real processes.

``cloud_tasks run`` runs as a subprocess on the ``local`` provider (instances are process
groups running a real worker); the tests then kill it while it records the task file, start a
second manager of the same job, send it SIGTERM or SIGHUP, or run ``cloud_tasks stop`` beside it,
and check what is left: every task still runs exactly as the file says, no instance process
outlives the job, no file is lost.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from cloud_tasks.adapters.local.taskdb import TaskDatabase

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

JOB = "guard-job"
WORKER = """\
import os, sys, time
from cloud_tasks.worker import Worker

def process_task(task_id, data, worker_data):
    started = time.monotonic()
    # Gated tasks wait for the test to create "go" (bounded), so the job outlasts the test's
    # checks however slow the machine is.
    while data.get("gate") and not os.path.exists("go") and time.monotonic() - started < 120:
        time.sleep(0.05)
    if data.get("mark"):
        with open(os.path.join("done", task_id), "a") as f:
            f.write("x")
    return True, None

if __name__ == "__main__":
    Worker(process_task, args=sys.argv[1:]).run()
"""
CONFIG = f"""\
provider: local
local:
  job_id: {JOB}
  startup_script: |
    export RMS_CLOUD_TASKS_VISIBILITY_TIMEOUT=5
    export RMS_CLOUD_TASKS_SHUTDOWN_GRACE_PERIOD=2
    exec python3 worker.py
  max_instances: 2
  cpus_per_task: 0.1
  max_tasks_per_instance: {{slots}}
  scaling_check_interval: 1
  instance_termination_delay: 2
  keepalive_interval: 1
  keepalive_startup_timeout: 30
  keepalive_timeout: 30
"""


RUN_ARGS = ("run", "--config", "config.yml", "--tasks", "tasks.json")


def _write_job(directory: Path, tasks: list[dict[str, object]], slots: int = 2) -> None:
    (directory / "worker.py").write_text(WORKER)
    (directory / "config.yml").write_text(CONFIG.format(slots=slots))
    (directory / "tasks.json").write_text(json.dumps(tasks))
    (directory / "done").mkdir(exist_ok=True)


def _gated(n: int) -> list[dict[str, object]]:
    return [{"task_id": f"t{i:03d}", "data": {"gate": True, "mark": True}} for i in range(n)]


def _env(directory: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RMS_CLOUD_TASKS_")}
    env["XDG_STATE_HOME"] = str(directory / "state")
    return env


def _cli(directory: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloud_tasks", *args],
        cwd=directory,
        env=_env(directory),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _start(directory: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cloud_tasks", *args],
        cwd=directory,
        env=_env(directory),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(what: str, predicate: Callable[[], bool], timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout_s:g} s")
        time.sleep(0.1)


def _instance_groups(directory: Path) -> list[int]:
    """Process groups of the instances the local registry lists and that are alive."""
    path = directory / ".cloud_tasks" / JOB / "local-instances.json"
    try:
        entries = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return []
    return [int(e["pid"]) for e in entries.values() if _group_alive(int(e["pid"]))]


def _group_alive(pgid: int) -> bool:
    for process in psutil.process_iter(["status"]):
        with contextlib.suppress(OSError, psutil.Error):
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                return True
    return False


def _job_processes(directory: Path) -> list[psutil.Process]:
    """Every live process started for this job's instances (shells, workers, tasks)."""
    found = []
    for process in psutil.process_iter(["cwd", "cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(process.info["cmdline"] or [])
            if process.info["cwd"] == str(directory) and "worker.py" in cmdline:
                found.append(process)
    return found


@contextlib.contextmanager
def _cleanup(directory: Path, *managers: subprocess.Popen[str]) -> Iterator[None]:
    seen: set[int] = set()
    try:
        yield
    finally:
        for manager in managers:
            if manager.poll() is None:
                manager.kill()
                manager.wait(timeout=30)
        seen.update(_instance_groups(directory))
        for group in seen:
            with contextlib.suppress(OSError):
                os.killpg(group, signal.SIGKILL)
        for process in _job_processes(directory):
            with contextlib.suppress(psutil.Error):
                process.kill()


def _db_counts(directory: Path) -> tuple[int, bool]:
    """(tasks visible to another reader, 'recorded' flag) of the job's task database."""
    path = directory / f"{JOB}.db"
    if not path.exists():
        return 0, False
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as db:
        try:
            count = db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
            recorded = db.execute("SELECT value FROM meta WHERE key = 'recorded'").fetchone()
        except sqlite3.OperationalError:
            return 0, False
    return int(count), recorded is not None and json.loads(recorded[0]) is True


def _status(directory: Path) -> dict[str, int]:
    result = _cli(directory, "status", "--config", "config.yml", "--format", "json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout)["tasks"])


# -- killed while reading the task file -----------------------------------------------------


class _StallingServer:
    """Serves the task file; the ``stall_on``-th request gets part of it, then nothing until
    the test ends (the manager is killed while it reads the task file)."""

    def __init__(self, body: bytes, stall_on: int, sent_fraction: float) -> None:
        self.requests = 0
        self.stalled = threading.Event()
        self.release = threading.Event()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if owner.requests != stall_on:
                    self.wfile.write(body)
                    return
                self.wfile.write(body[: int(len(body) * sent_fraction)])
                self.wfile.flush()
                owner.stalled.set()
                owner.release.wait(120)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tasks.json"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_manager_killed_while_reading_the_task_file_leaves_a_clean_start(
    tmp_path: Path,
) -> None:
    # The task file is read once, before anything is created (a manager killed while it
    # records is tests/sources/test_reads_once.py's --continue case, and the recording's all
    # or nothing is tests/service_layer/test_taskdb_integrity.py's).
    n_tasks = 6000
    tasks = [{"task_id": f"t{i:05d}", "data": {"pad": "x" * 200}} for i in range(n_tasks)]
    _write_job(tmp_path, [], slots=8)
    # Request 1 stalls at 70 %; request 2, of the run started again, gets the whole file.
    server = _StallingServer(json.dumps(tasks).encode(), stall_on=1, sent_fraction=0.7)
    manager = _start(tmp_path, "run", "--config", "config.yml", "--tasks", server.url)
    try:
        with _cleanup(tmp_path, manager):
            _wait_for("the download to stall", server.stalled.is_set)
            time.sleep(1.0)  # let the manager read and spool what it was sent
            manager.send_signal(signal.SIGKILL)
            manager.wait(timeout=30)
            assert not (tmp_path / f"{JOB}.db").exists()
            assert _instance_groups(tmp_path) == []
            # The spool had no name: nothing is left to clean up.
            assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".tasks-")]

            result = _cli(tmp_path, "run", "--config", "config.yml", "--tasks", server.url)
            assert result.returncode == 0, result.stdout + result.stderr
            assert f"All {n_tasks} tasks completed." in result.stdout
            assert _db_counts(tmp_path) == (n_tasks, True)
            assert _status(tmp_path) == {
                "pending": 0,
                "running": 0,
                "completed": n_tasks,
                "failed": 0,
                "total": n_tasks,
            }
            assert server.requests == 2
            with TaskDatabase.open_existing(tmp_path / f"{JOB}.db") as db:
                ran = {e["task_id"] for e in db.events() if e["event_type"] == "task_completed"}
            assert ran == {task["task_id"] for task in tasks}
    finally:
        server.close()


# -- one manager per job, and SIGTERM / SIGHUP ----------------------------------------------


def test_a_second_manager_is_refused_and_sigterm_stops_every_instance(tmp_path: Path) -> None:
    _write_job(tmp_path, _gated(24))
    manager = _start(tmp_path, "run", "--config", "config.yml", "--tasks", "tasks.json")
    db_path = tmp_path / f"{JOB}.db"
    with _cleanup(tmp_path, manager):
        _wait_for("two instances", lambda: len(_instance_groups(tmp_path)) == 2)
        inode = db_path.stat().st_ino
        for args in (
            ["run", "--config", "config.yml", "--continue"],
            ["run", "--config", "config.yml", "--tasks", "tasks.json", "--force"],
            ["manage_pool", "--config", "config.yml"],
            ["monitor_event_queue", "--config", "config.yml", "--once"],
        ):
            second = _cli(tmp_path, *args)
            assert second.returncode == 1, second.stdout + second.stderr
            lines = second.stderr.strip().splitlines()
            assert len(lines) == 1, second.stderr
            assert f"already being managed by process {manager.pid}" in lines[0]
        # The running job's database was neither deleted nor replaced, nor its queue purged.
        assert db_path.stat().st_ino == inode
        assert _db_counts(tmp_path) == (24, True)

        assert manager.poll() is None, "the job ended before the signal: make it longer"
        manager.send_signal(signal.SIGTERM)
        out, err = manager.communicate(timeout=90)
        assert manager.returncode == 130, out + err
        # Whole lines, even though stderr is not a terminal (no wrapping at 80 columns).
        lines = err.splitlines()
        assert (
            "received SIGTERM: stopping every instance; the queues and the task database "
            "are kept" in lines
        ), err
        assert "stopped. Resume with: cloud_tasks run --continue --config" in err
        _wait_for("no instance process", lambda: not _job_processes(tmp_path), 30)
        assert _instance_groups(tmp_path) == []
        assert not Path(f"{db_path}.lock").exists()

        # Resumable: the queue and the database were kept.
        (tmp_path / "go").touch()
        result = _cli(tmp_path, "run", "--config", "config.yml", "--continue")
        assert result.returncode == 0, result.stdout + result.stderr
        assert sorted(p.name for p in (tmp_path / "done").iterdir()) == [
            f"t{i:03d}" for i in range(24)
        ]
        assert not _job_processes(tmp_path)


def test_sighup_stops_every_instance_and_says_how_to_resume(tmp_path: Path) -> None:
    _write_job(tmp_path, _gated(24))
    manager = _start(tmp_path, "run", "--config", "config.yml", "--tasks", "tasks.json")
    with _cleanup(tmp_path, manager):
        _wait_for("two instances", lambda: len(_instance_groups(tmp_path)) == 2)
        manager.send_signal(signal.SIGHUP)
        out, err = manager.communicate(timeout=90)
        assert manager.returncode == 130, out + err
        assert "received SIGHUP" in err and "Resume with: cloud_tasks run --continue" in err
        _wait_for("no instance process", lambda: not _job_processes(tmp_path), 30)
        assert _status(tmp_path)["total"] == 24


# -- stop during a run ----------------------------------------------------------------------


@pytest.mark.parametrize("extra", [[], ["--delete-queues"]], ids=["instances", "and-queues"])
def test_stop_during_a_run_ends_it_and_nothing_is_replaced(
    extra: list[str], tmp_path: Path
) -> None:
    _write_job(tmp_path, _gated(24))
    manager = _start(tmp_path, "run", "--config", "config.yml", "--tasks", "tasks.json")
    with _cleanup(tmp_path, manager):
        _wait_for("two instances", lambda: len(_instance_groups(tmp_path)) == 2)
        stop = _cli(tmp_path, "stop", "--config", "config.yml", *extra)
        assert stop.returncode == 0, stop.stderr
        assert "stopped 2 instances" in stop.stdout
        assert f"(process {manager.pid}) was told to stop" in stop.stdout
        out, err = manager.communicate(timeout=90)
        assert manager.returncode == 1, out + err
        assert "the job was stopped with 'cloud_tasks stop" in err
        if extra:  # the queues are gone: --continue would refuse, a new start works
            assert "start it over with: cloud_tasks run --force --config config.yml" in err
            assert "--continue" not in err
        else:
            assert "resume it with: cloud_tasks run --continue" in err
        _wait_for("no instance process", lambda: not _job_processes(tmp_path), 30)
        with TaskDatabase.open_existing(tmp_path / f"{JOB}.db") as db:
            records = db.instances()
        assert len(records) == 2, records  # none was started after the stop
        assert all(record.ended_at is not None for record in records)
        assert "will be replaced" not in err and "started 1 instance" not in err


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_a_task_database_removed_mid_run_stops_every_instance(how: str, tmp_path: Path) -> None:
    _write_job(tmp_path, _gated(24))
    manager = _start(tmp_path, "run", "--config", "config.yml", "--tasks", "tasks.json")
    with _cleanup(tmp_path, manager):
        _wait_for("two instances", lambda: len(_instance_groups(tmp_path)) == 2)
        db_path = tmp_path / f"{JOB}.db"
        if how == "removed":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db_path}{suffix}").unlink(missing_ok=True)
        else:
            db_path.rename(tmp_path / "moved.db")
            db_path.write_bytes(b"someone else's file")
        out, err = manager.communicate(timeout=90)
        assert manager.returncode == 1, out + err
        assert f"the task database {JOB}.db was {how}" in err, err
        assert "every instance was stopped" in err
        _wait_for("no instance process", lambda: not _job_processes(tmp_path), 30)
        if how == "replaced":
            assert db_path.read_bytes() == b"someone else's file"  # never written into


def test_a_task_database_locked_by_another_program_is_waited_out(tmp_path: Path) -> None:
    _write_job(tmp_path, _gated(6))
    manager = _start(tmp_path, "run", "--config", "config.yml", "--tasks", "tasks.json")
    with _cleanup(tmp_path, manager):
        _wait_for("two instances", lambda: len(_instance_groups(tmp_path)) == 2)
        other = sqlite3.connect(tmp_path / f"{JOB}.db", isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")  # longer than the database's 10 s busy timeout
            (tmp_path / "go").touch()  # tasks finish meanwhile: their events must wait
            time.sleep(15)
            assert manager.poll() is None
        finally:
            other.execute("ROLLBACK")
            other.close()
        out, err = manager.communicate(timeout=120)
        assert manager.returncode == 0, out + err
        assert "the task database is locked by another program" in err
        assert "the task database answers again" in err
        assert "All 6 tasks completed." in out
        _wait_for("no instance process", lambda: not _job_processes(tmp_path), 30)


# -- forged events on the real event queue -----------------------------------------------------


def test_forged_events_on_the_event_queue_change_nothing(tmp_path: Path) -> None:
    from cloud_tasks.adapters.local.sqlite_queue import SqliteEventQueue, queue_file

    _write_job(tmp_path, _gated(6))
    log = tmp_path / "manager.log"
    with log.open("w") as stderr:
        manager = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cloud_tasks",
                "run",
                *("--config", "config.yml"),
                "--tasks",
                "tasks.json",
            ],
            cwd=tmp_path,
            env=_env(tmp_path),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    with _cleanup(tmp_path, manager):
        _wait_for("two instances", lambda: len(_instance_groups(tmp_path)) == 2)
        events = SqliteEventQueue(queue_file(JOB, tmp_path / ".cloud_tasks" / JOB), f"{JOB}-events")
        forged = [
            {"event_type": "task_completed", "task_id": "t000", "success": "yes", "retry": False},
            {"event_type": "task_completed", "task_id": "t001", "success": 1, "retry": False},
            {"event_type": "task_completed", "task_id": "intruder", "success": True},
            {"event_type": "task_dead_lettered", "task_id": ["t002"], "reason": "x"},
            {"event_type": "keep_alive", "instance_id": {"a": 1}, "running_tasks": -1},
            {"event_type": "drop_tables", "task_id": "t003"},
        ]
        events.send(forged)
        _wait_for("the manager to drop them", lambda: "invalid event" in log.read_text())
        assert manager.poll() is None
        counts = _status(tmp_path)  # every task is still held at its gate: none may be done
        assert (counts["completed"], counts["failed"], counts["total"]) == (0, 0, 6), counts
        (tmp_path / "go").touch()
        out, _ = manager.communicate(timeout=120)
        err = log.read_text()
        assert manager.returncode == 0, out + err
        assert "dropped 6 invalid event(s) from the event queue" in err
        assert "All 6 tasks completed." in out
        with TaskDatabase.open_existing(tmp_path / f"{JOB}.db") as db:
            assert db.task("intruder") is None
            assert not any(e.get("event_type") == "drop_tables" for e in db.events())


# -- hostile task ids in status --------------------------------------------------------------


def test_status_shows_hostile_task_ids_escaped_and_cut(tmp_path: Path) -> None:
    hostile = {
        "newline": "a\nFAKE: 0 failed",
        "escape": "b\x1b[2J\x1b[31mred",
        "long": "c" * 10_000,
        "bidi": "d\u202etxt.exe",
    }
    (tmp_path / "config.yml").write_text(CONFIG.format(slots=2))
    with TaskDatabase(tmp_path / f"{JOB}.db") as db:
        db.set_meta(job_id=JOB, started_at=1.0)
        from cloud_tasks.domain.tasks import Task

        db.add_tasks([Task(task_id, {}) for task_id in hostile.values()], 1.0, complete=True)
        db.ingest(
            [
                {
                    "event_type": "task_exception",
                    "task_id": task_id,
                    "instance_id": "i-1",
                    "retry": False,
                    "attempt": 1,
                    "exception": "Traceback\nValueError: \x1b[5mblink " + "e" * 5000,
                }
                for task_id in hostile.values()
            ],
            2.0,
        )
    result = _cli(tmp_path, "status", "--config", "config.yml")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "\x1b" not in out and "\u202e" not in out
    assert "FAKE: 0 failed" not in out.splitlines()
    assert max(len(line) for line in out.splitlines()) < 400
    assert "a\\nFAKE: 0 failed" in out and "b\\x1b[2J" in out and "d\\u202etxt.exe" in out
    assert "c" * 80 + "…" in out
    # Scripts get the values as they are.
    raw = _cli(tmp_path, "status", "--config", "config.yml", "--format", "json")
    failures = {f["task_id"] for f in json.loads(raw.stdout)["failures"]}
    assert failures == set(hostile.values())


def test_a_300_kb_task_id_gives_a_short_error_line(tmp_path: Path) -> None:
    huge = "x" * 300_000
    (tmp_path / "config.yml").write_text(CONFIG.format(slots=2))
    tasks = [{"task_id": huge, "data": {}}, {"task_id": huge, "data": {}}]
    (tmp_path / "tasks.json").write_text(json.dumps(tasks))
    for command in ("run", "load_queue"):
        result = _cli(tmp_path, command, "--config", "config.yml", "--tasks", "tasks.json")
        assert result.returncode == 1
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and len(lines[0]) < 2200, (command, len(result.stderr))
        assert "tasks.json" in lines[0]

"""Chaos on the ``local`` provider: a 1,000-task job while a seeded driver breaks things.

``cloud_tasks run`` runs as a subprocess with real instances (process groups), real workers and
the SQLite queue. Meanwhile the driver, at random moments (seeded, so a failure can be
replayed with the same ``CHAOS_SEED``), ``kill -9``s whole instances, ``kill -9``s task
processes, sends SIGTERM to workers, holds the queue's write lock for a while, and ``kill -9``s
the pool manager itself and resumes the job with ``run --continue``. When the chaos window
closes the job must finish on its own, and then:

- every task ended as SPEC §7 says for what its ``process_task`` does: completed, or failed
  after ``max_attempts`` (dead-lettered) or at once (an exception, not retried);
- no task is completed twice in the task database: a second completion is recorded as a
  duplicate event and counted in ``duplicate_completions``, never as another task;
- no instance process is left running, the queues are deleted and the SQLite files pass
  ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from cloud_tasks.adapters.local.taskdb import TaskDatabase

JOB = "chaos-job"
N_TASKS = 1000
MAX_ATTEMPTS = 4
SEED = int(os.environ.get("CHAOS_SEED", "20250917"))
#: Faults are injected for this long after the first instance starts; then the job finishes.
CHAOS_WINDOW_S = 60.0
#: The whole test gives up (and cleans up) after this long.
DEADLINE_S = 170.0

WORKER = """\
import os, sys, time
from cloud_tasks.worker import Worker

def process_task(task_id, data, worker_data):
    marker = os.path.join("running", str(os.getpid()))
    with open(marker, "w") as f:
        f.write(task_id)
    time.sleep(data["sleep"])
    os.unlink(marker)
    with open(os.path.join("done", task_id), "a") as f:
        f.write(f"{worker_data.attempt}\\n")
    kind = data["kind"]
    if kind == "raise":
        raise ValueError(f"bad input {task_id}")
    if kind == "always_retry":
        return False, None
    if kind == "retry_once":
        return worker_data.attempt >= 2, {"n": data["n"]}
    return True, {"n": data["n"]}

if __name__ == "__main__":
    Worker(process_task, args=sys.argv[1:]).run()
"""

CONFIG = f"""\
provider: local
local:
  job_id: {JOB}
  startup_script: |
    export RMS_CLOUD_TASKS_VISIBILITY_TIMEOUT=3
    export RMS_CLOUD_TASKS_SHUTDOWN_GRACE_PERIOD=2
    exec python3 worker.py
  max_instances: 4
  cpus_per_task: 0.25
  max_tasks_per_instance: 4
  retry_on_exit: true
  retry_on_exception: false
  max_attempts: {MAX_ATTEMPTS}
  scaling_check_interval: 1
  instance_termination_delay: 2
  keepalive_interval: 1
  keepalive_startup_timeout: 30
  keepalive_timeout: 20
"""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def _tasks(rng: random.Random) -> list[dict[str, object]]:
    kinds = ["ok"] * 880 + ["retry_once"] * 50 + ["always_retry"] * 35 + ["raise"] * 35
    rng.shuffle(kinds)
    return [
        {
            "task_id": f"t{i:04d}",
            "data": {"n": i, "kind": kind, "sleep": round(rng.uniform(0.2, 0.8), 3)},
        }
        for i, kind in enumerate(kinds)
    ]


class Job:
    """The job's directory, its manager process and what the driver can see of it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RMS_CLOUD_TASKS_")},
            "XDG_STATE_HOME": str(directory / "state"),
        }
        self.manager: subprocess.Popen[bytes] | None = None
        self.manager_runs = 0
        self.seen_groups: set[int] = set()

    @property
    def queue_file(self) -> Path:
        return self.directory / ".cloud_tasks" / JOB / f"{JOB}.sqlite3"

    @property
    def db_file(self) -> Path:
        return self.directory / f"{JOB}.db"

    def start_manager(self, *args: str) -> None:
        self.manager_runs += 1
        log = open(self.directory / f"manager-{self.manager_runs}.log", "wb")  # noqa: SIM115
        self.manager = subprocess.Popen(
            [sys.executable, "-m", "cloud_tasks", "run", "--config", "config.yml", *args],
            cwd=self.directory,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def manager_log(self) -> str:
        return "\n".join(
            f"--- manager run {n} ---\n"
            + (self.directory / f"manager-{n}.log").read_text(errors="replace")[-3000:]
            for n in range(1, self.manager_runs + 1)
        )

    def instances(self) -> list[int]:
        """Process group ids of the instances the registry lists and that are alive."""
        path = self.directory / ".cloud_tasks" / JOB / "local-instances.json"
        try:
            entries = json.loads(path.read_text() or "{}")
        except (OSError, ValueError):
            return []
        groups = []
        for entry in entries.values():
            pid = int(entry["pid"])
            self.seen_groups.add(pid)
            if not entry.get("terminated") and _alive(pid):
                groups.append(pid)
        return groups

    def running_tasks(self) -> dict[int, str]:
        """pid → task id of task processes running now."""
        found = {}
        for marker in (self.directory / "running").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                pid = int(marker.name)
                task_id = marker.read_text()
                if task_id and _alive(pid):
                    found[pid] = task_id
        return found

    def terminal_fraction(self) -> float:
        if not self.db_file.exists():
            return 0.0
        try:
            with contextlib.closing(sqlite3.connect(self.db_file, timeout=5)) as conn:
                row = conn.execute(
                    "SELECT SUM(state IN ('completed', 'failed')), COUNT(*) FROM tasks"
                ).fetchone()
        except sqlite3.Error:
            return 0.0
        return (row[0] or 0) / max(row[1] or 1, N_TASKS)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _job_processes(directory: Path) -> list[psutil.Process]:
    """Every live process started for this job (instances, workers, task processes)."""
    found = []
    for process in psutil.process_iter(["cwd", "cmdline", "status"]):
        try:
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(process.info["cmdline"] or [])
            if process.info["cwd"] == str(directory) and "worker.py" in cmdline:
                found.append(process)
        except psutil.Error:
            continue
    return found


class Driver:
    """Injects one random fault at a time; every kind of fault happens at least once."""

    KINDS = ("kill_instance", "kill_task", "sigterm_worker", "hold_queue_lock", "restart_manager")

    def __init__(self, job: Job, rng: random.Random) -> None:
        self.job = job
        self.rng = rng
        self.counts: collections.Counter[str] = collections.Counter()
        self.killed_tasks: collections.Counter[str] = collections.Counter()
        first = list(self.KINDS)
        rng.shuffle(first)
        self.script = first

    def next_kind(self) -> str:
        if self.script:
            return self.script.pop(0)
        weights = {
            "kill_instance": 3,
            "kill_task": 5,
            "sigterm_worker": 2,
            "hold_queue_lock": 2,
            "restart_manager": 1,
        }
        if self.counts["restart_manager"] >= 3:
            weights["restart_manager"] = 0
        kinds = list(weights)
        return self.rng.choices(kinds, weights=[weights[k] for k in kinds])[0]

    def inject(self) -> bool:
        """Try one fault; False when its target does not exist right now."""
        kind = self.next_kind()
        done = getattr(self, kind)()
        if done:
            self.counts[kind] += 1
        else:
            self.script.insert(0, kind) if kind not in self.counts else None
        return bool(done)

    def kill_instance(self) -> bool:
        groups = self.job.instances()
        if not groups:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.rng.choice(groups), signal.SIGKILL)
        return True

    def kill_task(self) -> bool:
        # At most one kill per task: it then still ends as its kind says (max_attempts=4).
        running = {
            pid: task_id
            for pid, task_id in self.job.running_tasks().items()
            if self.killed_tasks[task_id] == 0
        }
        if not running:
            return False
        pid = self.rng.choice(sorted(running))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        self.killed_tasks[running[pid]] += 1
        return True

    def sigterm_worker(self) -> bool:
        groups = self.job.instances()
        if not groups:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.rng.choice(groups), signal.SIGTERM)  # the leader is the worker (exec)
        return True

    def hold_queue_lock(self) -> bool:
        if not self.job.queue_file.exists():
            return False
        with contextlib.closing(
            sqlite3.connect(self.job.queue_file, timeout=30, isolation_level=None)
        ) as conn:
            conn.execute("BEGIN IMMEDIATE")  # every writer (receive, ack, send) now waits
            time.sleep(self.rng.uniform(0.5, 2.0))
            conn.execute("COMMIT")
        return True

    def restart_manager(self) -> bool:
        manager = self.job.manager
        if manager is None or manager.poll() is not None:
            return False
        manager.kill()
        manager.wait(timeout=30)
        self.job.start_manager("--continue")
        return True


def _wait(predicate: Callable[[], bool], deadline: float, what: str, job: Job) -> None:
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in time\n{job.manager_log()}")
        time.sleep(0.1)


def _cleanup(job: Job) -> None:
    if job.manager is not None and job.manager.poll() is None:
        job.manager.kill()
        job.manager.wait(timeout=30)
    for group in job.seen_groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    for process in _job_processes(job.directory):
        with contextlib.suppress(psutil.Error):
            process.kill()


def test_a_thousand_tasks_survive_chaos(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    tasks = _tasks(rng)
    kinds = {task["task_id"]: task["data"]["kind"] for task in tasks}  # type: ignore[index]
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "config.yml").write_text(CONFIG)
    (tmp_path / "tasks.json").write_text(json.dumps(tasks))
    (tmp_path / "running").mkdir()
    (tmp_path / "done").mkdir()
    job = Job(tmp_path)
    driver = Driver(job, rng)
    started = time.monotonic()
    deadline = started + DEADLINE_S
    try:
        job.start_manager("--tasks", "tasks.json")
        _wait(lambda: len(job.instances()) >= 2, deadline, "two instances running", job)
        window_ends = time.monotonic() + CHAOS_WINDOW_S
        while time.monotonic() < window_ends and job.terminal_fraction() < 0.97:
            driver.inject()
            time.sleep(rng.uniform(0.2, 1.0))
        chaos_s = time.monotonic() - started
        manager = job.manager
        assert manager is not None
        _wait(lambda: manager.poll() is not None, deadline, "the end of the job", job)
        assert manager.returncode == 0, job.manager_log()
        # The job stopped its instances; let the last SIGKILLed groups be reaped.
        _wait(lambda: not _job_processes(tmp_path), time.monotonic() + 20, "no processes", job)
    finally:
        _cleanup(job)
    total_s = time.monotonic() - started

    print(
        f"\nchaos seed {SEED}: {sum(driver.counts.values())} faults in {chaos_s:.0f} s "
        f"(job done after {total_s:.0f} s, {job.manager_runs} manager runs): "
        + ", ".join(f"{kind} {driver.counts[kind]}" for kind in Driver.KINDS)
    )
    for kind in Driver.KINDS:
        assert driver.counts[kind] >= 1, (kind, dict(driver.counts))

    with TaskDatabase(job.db_file) as db:
        counts = db.counts()
        assert (counts.pending, counts.running, counts.total) == (0, 0, N_TASKS), counts
        rows = {row.task_id: row for row in db.iter_rows()}
        completions = collections.Counter(
            event["task_id"]
            for event in db.events()
            if event.get("event_type") == "task_completed" and event.get("success")
        )
        duplicates = db.duplicate_completions()
    assert set(rows) == set(kinds)
    for task_id, kind in kinds.items():
        row = rows[task_id]
        where = (task_id, kind, row, driver.killed_tasks[task_id])
        if kind in ("ok", "retry_once"):
            assert row.state == "completed", where
            assert (tmp_path / "done" / task_id).exists(), where
            if kind == "retry_once":
                assert row.attempts >= 2, where
        elif kind == "always_retry":
            # Asked for a retry every time: dead-lettered on attempt max_attempts (SPEC §7).
            assert row.state == "failed", where
            assert row.attempts == MAX_ATTEMPTS, where
            assert row.error is not None and row.error.startswith("dead-lettered"), where
        else:
            # An exception is not retried (retry_on_exception is off); a killed task process
            # before it is (retry_on_exit), and costs one attempt.
            assert row.state == "failed", where
            assert row.error is not None and "ValueError: bad input" in row.error, where
            assert row.attempts <= 1 + driver.killed_tasks[task_id], where
        # Duplicate deliveries are recorded, never counted as another completion.
        assert row.duplicate_completions == max(0, completions[task_id] - 1), where
    assert duplicates == sum(max(0, n - 1) for n in completions.values())
    print(f"duplicate completions recorded (not counted): {duplicates}")

    # Nothing left running: no live process in any instance's group, none started for the job.
    leftovers = [g for g in job.seen_groups if _group_has_live_process(g)]
    assert leftovers == []
    assert _job_processes(tmp_path) == []
    registry = tmp_path / ".cloud_tasks" / JOB / "local-instances.json"
    assert json.loads(registry.read_text() or "{}") == {}

    # The job's queue file (its queues and their messages) went with the job.
    assert not list(job.queue_file.parent.glob(f"{JOB}.sqlite3*"))
    with contextlib.closing(sqlite3.connect(job.db_file)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _group_has_live_process(pgid: int) -> bool:
    for process in psutil.process_iter(["status"]):
        try:
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (OSError, psutil.Error):
            continue
    return False

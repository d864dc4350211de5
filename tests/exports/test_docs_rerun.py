"""docs/running-a-job.md, "Re-running only the failed tasks", run as written on the local provider.

A job with failures, its event file, a dump of the failed tasks, the code fixed, and a second
job that runs only those tasks; then the same with --skip-completed on the original file.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "running-a-job.md"

pytestmark = pytest.mark.slow

WORKER = """\
import asyncio, sys
from cloud_tasks.worker import Worker

def process_task(task_id, task_data, worker_data):
    if task_data["n"] % 3 == 0 and not FIXED:
        raise ValueError(f"bad input {task_data['n']}")
    return True, {"n": task_data["n"]}

FIXED = False

if __name__ == "__main__":
    asyncio.run(Worker(process_task, args=sys.argv[1:]).start())
"""

CONFIG = """\
provider: local
local:
  job_id: my-job
  startup_script: |
    exec python3 my_worker.py
  max_instances: 1
  cpus_per_task: 0.25
  max_tasks_per_instance: 3
  scaling_check_interval: 1
  instance_termination_delay: 1
  keepalive_interval: 1
  keepalive_startup_timeout: 30
"""


def _commands() -> list[str]:
    section = DOC.read_text().split("## Re-running only the failed tasks", 1)[1]
    section = section.split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def _run(tmp_path: Path, command: str) -> subprocess.CompletedProcess[str]:
    args = shlex.split(command)
    assert args[0] == "cloud_tasks"
    return subprocess.run(
        [sys.executable, "-m", "cloud_tasks", *args[1:]],
        cwd=tmp_path,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")},
        capture_output=True,
        text=True,
        timeout=180,
    )


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_worked_example(tmp_path: Path) -> None:
    first, dump, rerun, skip = _commands()
    (tmp_path / "my_worker.py").write_text(WORKER)
    (tmp_path / "myconfig.yml").write_text(CONFIG)
    tasks = [{"task_id": f"t{i}", "data": {"n": i}} for i in range(9)]
    (tmp_path / "my_tasks.json").write_text(json.dumps(tasks))

    result = _run(tmp_path, first)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING: 3 of 9 tasks FAILED" in result.stdout
    events = _events(tmp_path / "events.jsonl")
    kinds = [e["event_type"] for e in events]
    assert "keep_alive" not in kinds
    assert kinds.count("task_completed") == 6
    failed = {e["task_id"] for e in events if e["event_type"] == "task_exception"}
    assert failed == {"t0", "t3", "t6"}
    assert all("bad input" in e["exception"] for e in events if e["event_type"] == "task_exception")

    result = _run(tmp_path, dump)
    assert result.returncode == 0, result.stderr
    assert "wrote 3 failed task(s) to failed.json" in result.stderr
    dumped = json.loads((tmp_path / "failed.json").read_text())
    assert dumped == [t for t in tasks if t["task_id"] in failed]

    # Fix the code.
    (tmp_path / "my_worker.py").write_text(WORKER.replace("FIXED = False", "FIXED = True"))
    result = _run(tmp_path, rerun)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All 3 tasks completed." in result.stdout

    result = _run(tmp_path, skip)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "loading 3 tasks" in result.stderr
    assert "All 3 tasks completed." in result.stdout
    # The first job's database is untouched: still 3 failed.
    status = _run(tmp_path, "cloud_tasks status --config myconfig.yml --format json")
    assert json.loads(status.stdout)["tasks"]["failed"] == 3


SLOW_WORKER = """\
import asyncio, os, sys, time
from cloud_tasks.worker import Worker

def process_task(task_id, task_data, worker_data):
    time.sleep(0.6)
    os.makedirs("done", exist_ok=True)
    open(os.path.join("done", task_id), "w").close()
    return True, None

if __name__ == "__main__":
    asyncio.run(Worker(process_task, args=sys.argv[1:]).start())
"""


def test_continue_into_a_new_event_file_first_gets_the_recorded_events(tmp_path: Path) -> None:
    import signal
    import time

    (tmp_path / "my_worker.py").write_text(SLOW_WORKER)
    (tmp_path / "myconfig.yml").write_text(CONFIG)
    tasks = [{"task_id": f"t{i}", "data": {}} for i in range(8)]
    (tmp_path / "my_tasks.json").write_text(json.dumps(tasks))
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    command = "run --config myconfig.yml --tasks my_tasks.json --output-file first.jsonl"
    manager = subprocess.Popen(
        [sys.executable, "-m", "cloud_tasks", *command.split()],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "done").exists() or len(list((tmp_path / "done").iterdir())) < 2:
            assert time.monotonic() < deadline, "no task finished in time"
            time.sleep(0.1)
        time.sleep(1.5)  # a supervision pass or two, so some events reach the file
        manager.send_signal(signal.SIGKILL)
        manager.wait(timeout=30)
    finally:
        if manager.poll() is None:
            manager.kill()
    before = (tmp_path / "first.jsonl").read_text().splitlines()
    assert before

    result = _run(
        tmp_path, "cloud_tasks run --config myconfig.yml --continue --output-file second.jsonl"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    after = (tmp_path / "second.jsonl").read_text().splitlines()
    assert after[: len(before)] == before  # what the first file had, first and in order
    completed = {
        e["task_id"] for e in map(json.loads, after) if e["event_type"] == "task_completed"
    }
    assert completed == {t["task_id"] for t in tasks}

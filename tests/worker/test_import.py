"""``import cloud_tasks.worker`` stays light: no cloud SDK, no YAML parser, no asyncio, no attrs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.worker.helpers import SCRIPTS, read_events, run_script


def test_worker_import_loads_no_cloud_sdk() -> None:
    code = (
        "import sys, cloud_tasks.worker\n"
        "from cloud_tasks.worker import Worker, WorkerData\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', "
        "'google', 'yaml', 'grpc', 'rich', 'asyncio', 'attr', 'attrs'))\n"
        "print(','.join(bad))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert proc.stdout.strip() == ""


def test_task_processes_are_forked_before_the_event_loop_and_the_task_file_reader(
    tmp_path: Path,
) -> None:
    """``Worker(...).run()`` forks the fork server before importing asyncio or reading the
    (YAML) task file, so task processes are forked from a small parent."""
    (tmp_path / "tasks.yaml").write_text("- task_id: t1\n  data: {}\n- task_id: t2\n  data: {}\n")
    proc = run_script("modules_worker.py", ["--tasks", "tasks.yaml"])
    assert proc.returncode == 0, proc.stderr
    results = [e["result"] for e in read_events() if e["event_type"] == "task_completed"]
    assert results == [{"loaded": []}, {"loaded": []}]


def test_task_processes_get_the_fork_hooks_the_fork_server_turns_off(tmp_path: Path) -> None:
    """The fork server forks without the standard library's thread-safety fork hooks (it is
    single-threaded); every task process has them back before the user's code runs."""
    (tmp_path / "tasks.json").write_text('[{"task_id": "t1", "data": {}}]')
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "forkhooks_worker.py"), "--tasks", "tasks.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    results = [
        e["result"]
        for e in read_events(tmp_path / "events.log")
        if e["event_type"] == "task_completed"
    ]
    assert results == [
        {
            "hooks": {"threading": "_after_fork", "logging": "_after_at_fork_child_reinit_locks"},
            "grandchild_exit": 0,
        }
    ]
    assert "logged from a process a task forked" in proc.stderr


def test_the_worker_loads_its_retry_rule_only_after_a_failure() -> None:
    """Receive and event-send retries import the backoff rule (and tenacity never) on the
    first failure, not at start."""
    code = (
        "import sys, cloud_tasks.entrypoints.worker.service as s\n"
        "print(sorted(m for m in ('tenacity', 'cloud_tasks.adapters.retrying') "
        "if m in sys.modules))\n"
        "s.ev.queue_retry_delay_s(0)\n"
        "print('cloud_tasks.adapters.retrying' in sys.modules, 'tenacity' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert proc.stdout.split("\n")[:2] == ["[]", "True False"]

"""What a task process starts with, whatever the fork server left undone to fork faster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.worker.helpers import SCRIPTS, read_events


def test_each_task_process_starts_with_default_signals_its_own_group_and_its_task(
    tmp_path: Path,
) -> None:
    (tmp_path / "tasks.json").write_text(
        '[{"task_id": "t1", "data": {}}, {"task_id": "t2", "data": {}}]'
    )
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "taskprocess_worker.py"), "--tasks", "tasks.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    results = {
        e["task_id"]: e["result"]
        for e in read_events(tmp_path / "events.log")
        if e["event_type"] == "task_completed"
    }
    assert results == {
        task_id: {
            "sigint_raises": True,
            "sigterm_default": True,
            "own_group": True,
            "task_id": task_id,
            "attempt": 1,
            "pair": [1, 2],
            "7": "int key",
        }
        for task_id in ("t1", "t2")
    }

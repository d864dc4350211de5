"""Helpers for worker tests: run a worker script as a real process and read its events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).parent / "scripts"


def write_tasks(path: Path, tasks: Sequence[Mapping[str, Any]]) -> Path:
    path.write_text(json.dumps(list(tasks)), encoding="utf-8")
    return path


def run_script(
    script: str,
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 60,
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RMS_CLOUD_TASKS_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, str(SCRIPTS / script), *args],  # an absolute script path wins
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=full_env,
        check=False,
    )


def read_events(path: Path | str = "events.log") -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def by_task(events: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for event in events:
        if "task_id" in event:
            grouped.setdefault(str(event["task_id"]), []).append(event)
    return grouped

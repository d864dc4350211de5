"""Reading task files (SPEC §3).

Placeholder reader with the final API; the streaming reader with full error reporting replaces
its body.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import yaml

from cloud_tasks.domain.tasks import Task
from cloud_tasks.exceptions import TaskFileError


def iter_tasks(path: str | Path) -> Iterator[Task]:
    """Yield the tasks of a JSON or YAML task file in file order.

    Raises:
        TaskFileError: the file is missing, unreadable, malformed or has duplicate ids.
    """
    path = Path(path)
    if path.suffix not in (".json", ".yaml", ".yml"):
        raise TaskFileError(f"{path}: unsupported extension (use .json, .yaml or .yml)")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaskFileError(f"{path}: cannot read task file: {exc.strerror}") from exc
    records = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    seen: set[str] = set()
    for index, record in enumerate(records):
        task_id = record["task_id"]
        if task_id in seen:
            raise TaskFileError(f"{path}: task {index}: duplicate task_id {task_id!r}")
        seen.add(task_id)
        yield Task(task_id, record["data"])

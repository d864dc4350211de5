"""A worker for the queue tests: ``data["mode"]`` picks the outcome of each task."""

from __future__ import annotations

import sys
import time
from typing import Any

from cloud_tasks.worker import Worker, WorkerData


def process_task(task_id: str, data: dict[str, Any], worker_data: WorkerData) -> Any:
    mode = data.get("mode", "work")
    if mode == "fail_once":
        return worker_data.attempt >= 2, {"attempt": worker_data.attempt}
    if mode == "big_result":
        return True, {"blob": "x" * data["bytes"]}
    if mode == "big_exception":
        raise ValueError("y" * data["bytes"])
    if mode == "timeout":
        time.sleep(120)
    time.sleep(data.get("seconds", 0.05))
    return True, {"value": data.get("value")}


if __name__ == "__main__":
    Worker(process_task, args=sys.argv[1:]).run()

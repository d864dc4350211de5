"""A worker whose tasks report the GPUs they see."""

from __future__ import annotations

import os
import time
from typing import Any

from cloud_tasks.worker import Worker, WorkerData


def process_task(task_id: str, task_data: dict[str, Any], worker_data: WorkerData) -> Any:
    time.sleep(task_data.get("sleep", 0.2))  # overlap with the other slots
    return True, {
        "gpu_devices": list(worker_data.gpu_devices),
        "env": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


if __name__ == "__main__":
    Worker(process_task).run()

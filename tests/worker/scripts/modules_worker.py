"""A worker whose task reports which heavy modules its process holds (all inherited by fork)."""

from __future__ import annotations

import sys
from typing import Any

from cloud_tasks.worker import Worker, WorkerData

HEAVY = ("asyncio", "yaml", "ssl", "http", "boto3", "botocore", "google", "grpc")


def process_task(task_id: str, task_data: dict[str, Any], worker_data: WorkerData) -> Any:
    loaded = sorted({name.split(".")[0] for name in sys.modules} & set(HEAVY))
    return True, {"loaded": loaded}


if __name__ == "__main__":
    Worker(process_task).run()

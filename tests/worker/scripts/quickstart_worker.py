"""The Quick Start worker: add two numbers per task and write the sum to a results folder."""

import asyncio
import json
import os
import sys
from typing import Any

from cloud_tasks.worker import Worker, WorkerData


def process_task(
    task_id: str, task_data: dict[str, Any], worker_data: WorkerData
) -> tuple[bool, Any]:
    """
    Process a task.

    Args:
        task_id: The unique ID of the task.
        task_data: The data required to process the task.
        worker_data: WorkerData object (useful for retrieving information about the
            local environment and polling for shutdown notifications)

    Returns:
        Tuple of (success, result)
    """
    total = task_data["num1"] + task_data["num2"]
    out_dir = os.environ.get("MY_WORKER_RESULTS_DIR", "results")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"{task_id}.json"), "w") as f:
        json.dump({"sum": total}, f)
    return True, {"sum": total}


async def main():
    # These command line arguments are used to override environment variables when
    # specifying the behavior of the worker process manager.
    worker = Worker(process_task, args=sys.argv[1:])
    await worker.start()


if __name__ == "__main__":
    asyncio.run(main())

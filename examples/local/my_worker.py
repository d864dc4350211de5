"""Example worker: add two numbers per task and write the sum to a results folder.

Run it directly on a task file (``python my_worker.py --tasks my_tasks.json``), or let
``cloud_tasks run --config config.yml --tasks my_tasks.json`` start it through the startup
script, on this machine (provider ``local``) or on cloud VMs.
"""

import asyncio
import json
import os
import sys
import time
from typing import Any, Dict, Tuple

from cloud_tasks.worker import Worker, WorkerData


def process_task(task_id: str, task_data: Dict[str, Any], worker_data: WorkerData) -> Tuple[bool, Any]:
    """Add ``num1`` and ``num2``; save the sum as results/<task_id>.json."""
    time.sleep(float(task_data.get("sleep", 0.2)))
    total = task_data["num1"] + task_data["num2"]
    out_dir = os.environ.get("MY_WORKER_RESULTS_DIR", "results")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"{task_id}.json"), "w") as f:
        json.dump({"sum": total}, f)
    return True, {"sum": total}


async def main() -> None:
    worker = Worker(process_task, args=sys.argv[1:])
    await worker.start()


if __name__ == "__main__":
    asyncio.run(main())

"""A Quick Start form worker whose task reports the process it runs in: its signal handlers,
its process group, and a result that only JSON round-trips (test fixture)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from cloud_tasks.worker import Worker, WorkerData

# The user's module may change handlers; each task process still starts with the defaults.
signal.signal(signal.SIGTERM, signal.SIG_IGN)


def process_task(task_id: str, task_data: dict[str, Any], worker_data: WorkerData) -> Any:
    return True, {
        "sigint_raises": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
        "sigterm_default": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
        "own_group": os.getpgid(0) == os.getpid(),
        "task_id": worker_data.task_id,
        "attempt": worker_data.attempt,
        "pair": (1, 2),
        7: "int key",
    }


async def main() -> None:
    worker = Worker(process_task, args=sys.argv[1:])
    await worker.start()


if __name__ == "__main__":
    asyncio.run(main())

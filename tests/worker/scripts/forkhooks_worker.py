"""A Quick Start form worker (asyncio and logging loaded before the fork server) whose task
reports whether the standard library's fork hooks are back on in its process, then forks a
process of its own that logs (which needs them)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from typing import Any

from cloud_tasks.worker import Worker, WorkerData

logging.basicConfig(level=logging.INFO, stream=sys.stderr)


def process_task(task_id: str, task_data: dict[str, Any], worker_data: WorkerData) -> Any:
    names = {
        "threading": threading._after_fork.__code__.co_name,  # type: ignore[attr-defined]
        "logging": logging._after_at_fork_child_reinit_locks.__code__.co_name,  # type: ignore[attr-defined]
    }
    pid = os.fork()
    if pid == 0:
        logging.getLogger("grandchild").info("logged from a process a task forked")
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return True, {"hooks": names, "grandchild_exit": os.waitstatus_to_exitcode(status)}


async def main() -> None:
    worker = Worker(process_task, args=sys.argv[1:])
    await worker.start()


if __name__ == "__main__":
    asyncio.run(main())

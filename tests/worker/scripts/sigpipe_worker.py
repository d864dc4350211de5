"""A program that sets SIGPIPE to its default, then runs one task; prints what the task saw."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from cloud_tasks.entrypoints.worker.data import WorkerData
from cloud_tasks.entrypoints.worker.forkserver import ForkServer


def task(task_id: str, data: Any, worker_data: WorkerData) -> tuple[bool, dict[str, int]]:
    return True, {"sigpipe": int(signal.getsignal(signal.SIGPIPE))}


async def main(server: ForkServer) -> None:
    server.attach(asyncio.get_running_loop())
    _, future = server.submit("t", {}, 1, None)
    report = await future
    print(report.exit_code, report.outcome())
    server.close()


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    asyncio.run(main(ForkServer.fork(task, WorkerData(), max_running=1)))

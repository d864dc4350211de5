"""The worker API: ``Worker`` and ``WorkerData`` (SPEC §10; user guide in ``docs/worker.md``).

A user's script::

    from cloud_tasks.worker import Worker, WorkerData

    def process_task(task_id: str, task_data: dict, worker_data: WorkerData) -> tuple[bool, Any]:
        ...
        return True, {"answer": 42}        # True: done; False: retry later

    if __name__ == "__main__":
        Worker(process_task).run()         # or: await Worker(process_task, args=...).start()

Embedding (tests, the pytest plugin, simulations) supplies the ports instead of a provider::

    queue = InMemoryTaskQueue("jobs"); queue.create(); queue.send([...])
    events = InMemoryEventQueue("jobs-events"); events.create()
    worker = Worker(process_task, args=["--num-simultaneous-tasks", "2", "--exit-when-idle", "0"],
                    task_queue=queue, event_queue=events,
                    metadata=None,        # any ports.InstanceMetadata: polled for spot notices
                    clock=None,           # ports.Clock: timestamps, lease renewal, keep-alives
                    environ={},           # instead of os.environ
                    handle_signals=False)
    exit_status = await worker.serve()    # 0 or 128+signal; CloudTasksError on bad input
    worker.notice_termination(delay_s=1)  # act as if a spot notice arrived now

Tasks always run in real child processes forked from a fork server created by ``serve``.
Importing this module loads no cloud SDK.
"""

from __future__ import annotations

from cloud_tasks.entrypoints.worker.data import WorkerData
from cloud_tasks.entrypoints.worker.runtime import Worker

__all__ = ["Worker", "WorkerData"]

"""The worker runtime (SPEC §10): runs ``process_task`` once per task, each in its own process.

See ``cloud_tasks.worker`` for the public names and ``docs/worker.md`` for the user guide.
"""

from __future__ import annotations

from cloud_tasks.entrypoints.worker.data import WorkerData
from cloud_tasks.entrypoints.worker.runtime import Worker

__all__ = ["Worker", "WorkerData"]

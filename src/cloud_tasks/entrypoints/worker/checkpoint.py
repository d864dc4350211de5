"""``worker_data.checkpoint``: save a task's progress so a new delivery resumes from it.

A checkpoint is one pickled object per task id, stored under ``--checkpoint-location``: a local
folder, ``s3://bucket/prefix`` or ``gs://bucket/prefix``. ``save`` replaces it atomically;
``load`` returns it (or the default when there is none) and is what a task calls first after a
spot termination or a lost lease delivered it again; the worker deletes it once the task's
outcome is final (completed, failed or dead-lettered). The stores load their cloud SDK on
first use, so importing this module costs nothing.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cloud_tasks.exceptions import ConfigError

if TYPE_CHECKING:
    from cloud_tasks.ports import CheckpointStore

_SUFFIX = ".checkpoint"
_stores: dict[str, CheckpointStore] = {}


def checkpoint_key(task_id: str) -> str:
    """The key of ``task_id``'s checkpoint: the id with every unsafe character escaped."""
    return quote(task_id, safe="-_.") + _SUFFIX


def open_checkpoint_store(location: str) -> CheckpointStore:
    """The store for ``location`` (a folder, ``s3://bucket/prefix`` or ``gs://bucket/prefix``).

    One store per location and process, so a task that saves often reuses its client.
    """
    store = _stores.get(location)
    if store is None:
        from cloud_tasks import bootstrap

        store = _stores[location] = bootstrap.make_checkpoint_store(location)
    return store


class Checkpoint:
    """The checkpoint of one task: ``save(obj)``, ``load(default=None)``, ``delete()``.

    Objects are stored with ``pickle``: load checkpoints only from a location you control.
    """

    def __init__(self, location: str | None, task_id: str) -> None:
        self.location = location
        self.task_id = task_id

    def _store(self) -> CheckpointStore:
        if self.location is None:
            raise ConfigError(
                "worker_data.checkpoint: no checkpoint location; give the worker "
                "--checkpoint-location FOLDER|s3://BUCKET/PREFIX|gs://BUCKET/PREFIX "
                "(or RMS_CLOUD_TASKS_CHECKPOINT_LOCATION, or run.checkpoint_location in the "
                "configuration)"
            )
        return open_checkpoint_store(self.location)

    @property
    def enabled(self) -> bool:
        """True when a checkpoint location is configured."""
        return self.location is not None

    def save(self, obj: Any) -> None:
        """Store ``obj`` (anything picklable) as this task's checkpoint, replacing the last."""
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        self._store().put(checkpoint_key(self.task_id), data)

    def load(self, default: Any = None) -> Any:
        """This task's last saved checkpoint, or ``default`` when none was saved."""
        data = self._store().get(checkpoint_key(self.task_id))
        if data is None:
            return default
        return pickle.loads(data)

    def delete(self) -> None:
        """Remove this task's checkpoint (the worker does so when the task is done)."""
        self._store().delete(checkpoint_key(self.task_id))

    def __repr__(self) -> str:
        return f"Checkpoint(location={self.location!r}, task_id={self.task_id!r})"


__all__ = ["Checkpoint", "checkpoint_key", "open_checkpoint_store"]

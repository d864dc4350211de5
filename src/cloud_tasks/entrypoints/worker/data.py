"""``WorkerData``: what ``process_task`` learns about its worker, options and live state."""

from __future__ import annotations

import argparse
import mmap
from typing import TYPE_CHECKING, Any, ClassVar

from cloud_tasks.entrypoints.worker.options import WorkerOptions

if TYPE_CHECKING:
    from cloud_tasks.entrypoints.worker.checkpoint import Checkpoint

if TYPE_CHECKING:
    from cloud_tasks.entrypoints.worker.checkpoint import Checkpoint

_TERMINATION = 0
_SHUTDOWN = 1


class LiveFlags:
    """Two flags in anonymous shared memory, created before any fork.

    The worker sets them; every task process forked afterwards reads the same page, so a
    running task sees a notice the moment it arrives.
    """

    def __init__(self) -> None:
        self._page = mmap.mmap(-1, mmap.PAGESIZE)

    @property
    def termination_notice(self) -> bool:
        return self._page[_TERMINATION] != 0

    @property
    def shutdown_request(self) -> bool:
        return self._page[_SHUTDOWN] != 0

    def set_termination_notice(self) -> None:
        self._page[_TERMINATION] = 1

    def set_shutdown_request(self) -> None:
        self._page[_SHUTDOWN] = 1


class WorkerData(WorkerOptions):
    """Options of this worker plus live state, passed to every ``process_task`` call.

    Every worker option is an attribute under its long name (``max_runtime``,
    ``num_simultaneous_tasks``, ...). ``args`` holds the parsed command line including the
    user's own ``argparser`` options. ``attempt`` is 1 for the first try of this task.
    ``received_termination_notice`` and ``received_shutdown_request`` change while a task runs.
    ``task_id`` is the id of the task being run; ``checkpoint`` saves and loads its progress.
    ``gpu_devices`` are the GPU ids this task process sees (also its ``CUDA_VISIBLE_DEVICES``),
    empty when the worker was given no ``--gpus``.
    """

    args: argparse.Namespace
    instance_id: str | None = None
    hostname: str = ""
    attempt: int = 1
    task_id: str = ""
    gpu_devices: tuple[str, ...] = ()
    flags: LiveFlags

    uncompared: ClassVar[frozenset[str]] = frozenset({"args", "flags"})
    hidden: ClassVar[frozenset[str]] = frozenset({"flags"})

    def __init__(self, **values: Any) -> None:
        if "args" not in values:
            values["args"] = argparse.Namespace()
        if "flags" not in values:
            values["flags"] = LiveFlags()
        super().__init__(**values)

    @property
    def received_termination_notice(self) -> bool:
        """True once the VM got a spot termination notice (real or simulated)."""
        return self.flags.termination_notice

    @property
    def checkpoint(self) -> Checkpoint:
        """This task's checkpoint under ``--checkpoint-location``: ``save(obj)`` / ``load()``."""
        from cloud_tasks.entrypoints.worker.checkpoint import Checkpoint

        return Checkpoint(self.checkpoint_location, self.task_id)

    @property
    def received_shutdown_request(self) -> bool:
        """True once the worker got SIGINT or SIGTERM and is winding down."""
        return self.flags.shutdown_request


__all__ = ["LiveFlags", "WorkerData"]

"""Which GPUs each task slot of a worker sees (``CUDA_VISIBLE_DEVICES``).

With ``--gpus N`` (exported by the manager from the chosen instance type) every task process
gets its own devices: slot ``i`` of ``--num-simultaneous-tasks`` sees ``--gpus-per-task``
devices of its own (or, when unset, an equal share of the N). A fraction (``0.5``) puts
several slots on one device. The devices are numbered ``0..N-1``, or taken from the worker's
own ``CUDA_VISIBLE_DEVICES`` when that is set. The task sees its devices in
``worker_data.gpu_devices`` and in ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from cloud_tasks.exceptions import ConfigError

if TYPE_CHECKING:
    from cloud_tasks.entrypoints.worker.data import WorkerData
    from cloud_tasks.entrypoints.worker.options import WorkerOptions

ENV = "CUDA_VISIBLE_DEVICES"


def visible_devices(count: int, environ: Mapping[str, str]) -> list[str]:
    """The device ids the worker may hand out: its own ``CUDA_VISIBLE_DEVICES``, else 0..N-1."""
    inherited = [d.strip() for d in environ.get(ENV, "").split(",") if d.strip()]
    if inherited:
        return inherited[:count]
    return [str(index) for index in range(count)]


def slot_devices(
    slot: int, devices: Sequence[str], per_task: float | None, slots: int
) -> tuple[str, ...]:
    """The devices of task slot ``slot`` (0-based) among ``slots`` slots."""
    if not devices:
        return ()
    share = per_task if per_task is not None else len(devices) / max(slots, 1)
    if share >= 1:
        width = math.floor(share + 1e-9)
        start = slot * width
        return tuple(devices[(start + k) % len(devices)] for k in range(width))
    return (devices[math.floor(slot * share + 1e-9) % len(devices)],)


def check_gpu_options(options: WorkerOptions) -> None:
    """Refuse slot and GPU counts that cannot give every slot its devices."""
    per_task = options.gpus_per_task
    if per_task is None:
        return
    slots = options.num_simultaneous_tasks or 1
    if not options.gpus:
        raise ConfigError(
            f"--gpus-per-task {per_task:g}: this worker has no GPUs; give --gpus N "
            "(the manager exports RMS_CLOUD_TASKS_GPUS on GPU instances)"
        )
    needed = slots * per_task
    if needed > options.gpus + 1e-9:
        raise ConfigError(
            f"--num-simultaneous-tasks {slots} x --gpus-per-task {per_task:g} needs "
            f"{needed:g} GPUs but --gpus is {options.gpus}; run fewer tasks at once"
        )


def gpu_assigner(worker_data: WorkerData) -> Callable[[int], None] | None:
    """What a new task process calls with its slot to take its devices; None without GPUs."""
    count = worker_data.gpus
    if not count:
        return None
    devices = visible_devices(count, os.environ)
    slots = worker_data.num_simultaneous_tasks or 1
    table = [slot_devices(s, devices, worker_data.gpus_per_task, slots) for s in range(slots)]

    def assign(slot: int) -> None:
        chosen = table[slot % len(table)]
        os.environ[ENV] = ",".join(chosen)
        object.__setattr__(worker_data, "gpu_devices", chosen)

    return assign


__all__ = ["check_gpu_options", "gpu_assigner", "slot_devices", "visible_devices"]

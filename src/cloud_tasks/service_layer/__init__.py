"""The service layer: what the commands do with the ports (SPEC §6, §12, §13).

``run``, ``manage_pool``, ``status`` and ``simulate`` are built from these pieces.

It drives the ports; the adapters it drives live in ``cloud_tasks.adapters`` (the SQLite task
database in ``adapters.local.taskdb``, the in-memory task store in ``adapters.memory.taskstore``).
The pieces:

- ``PoolManager`` (``pool``): the supervision loop over the ports, on any ``Clock``;
- ``launch_options`` (``plan``): instance types and zones in fallback order, with their scripts;
- ``build_report`` (``report``);
- ``EventDrivenWorkers`` and ``run_on_virtual_time`` (``simworkers``): worker behaviour on
  simulated VMs (with the worker's retry rules) and a virtual-time driver;
- ``simulate`` (``simulation``): ``cloud_tasks simulate``.
"""

from cloud_tasks.service_layer.plan import ZoneChoice, launch_options, startup_script_for
from cloud_tasks.service_layer.pool import (
    JobOutcome,
    LaunchOption,
    PoolManager,
    PoolSettings,
    PoolSnapshot,
)
from cloud_tasks.service_layer.report import JobReport, build_report, format_report
from cloud_tasks.service_layer.simulation import SimulationResult, simulate
from cloud_tasks.service_layer.simworkers import (
    EventDrivenWorkers,
    SimStats,
    run_on_virtual_time,
)

__all__ = [
    "EventDrivenWorkers",
    "JobOutcome",
    "JobReport",
    "LaunchOption",
    "PoolManager",
    "PoolSettings",
    "PoolSnapshot",
    "SimStats",
    "SimulationResult",
    "ZoneChoice",
    "build_report",
    "format_report",
    "launch_options",
    "run_on_virtual_time",
    "simulate",
    "startup_script_for",
]

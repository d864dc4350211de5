"""The job lifecycle: the pool manager, the task database and job reports (SPEC §6, §12, §13).

The pieces ``run``, ``status`` and ``simulate`` are built from:

- ``PoolManager`` (``pool``): the supervision loop over the ports, on any ``Clock``;
- ``launch_options`` (``plan``): instance types and zones in fallback order, with their scripts;
- ``TaskDatabase`` (``taskdb``) and ``build_report`` (``report``);
- ``SimulatedWorkers``, ``EventDrivenWorkers`` and ``run_on_virtual_time`` (``simworkers``):
  worker behaviour on simulated VMs and a virtual-time driver;
- ``TaskStore`` and ``InMemoryTaskStore`` (``taskstore``): what the manager needs from a task
  database, and a store in memory for simulations and dry runs;
- ``simulate`` (``simulation``): ``cloud_tasks simulate``.
"""

from cloud_tasks.manager.plan import ZoneChoice, launch_options, startup_script_for
from cloud_tasks.manager.pool import (
    JobOutcome,
    LaunchOption,
    PoolManager,
    PoolSettings,
    PoolSnapshot,
)
from cloud_tasks.manager.report import JobReport, build_report, format_report
from cloud_tasks.manager.simulation import SimulationResult, simulate
from cloud_tasks.manager.simworkers import (
    EventDrivenWorkers,
    SimStats,
    SimulatedWorkers,
    run_on_virtual_time,
)
from cloud_tasks.manager.taskdb import TaskCounts, TaskDatabase
from cloud_tasks.manager.taskstore import InMemoryTaskStore, TaskStore

__all__ = [
    "EventDrivenWorkers",
    "InMemoryTaskStore",
    "JobOutcome",
    "JobReport",
    "LaunchOption",
    "PoolManager",
    "PoolSettings",
    "PoolSnapshot",
    "SimStats",
    "SimulatedWorkers",
    "SimulationResult",
    "TaskCounts",
    "TaskDatabase",
    "TaskStore",
    "ZoneChoice",
    "build_report",
    "format_report",
    "launch_options",
    "run_on_virtual_time",
    "simulate",
    "startup_script_for",
]

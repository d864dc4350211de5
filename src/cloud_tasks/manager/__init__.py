"""The job lifecycle: the pool manager, the task database and job reports (SPEC §6, §12, §13).

The pieces ``run``, ``status`` and ``simulate`` are built from:

- ``PoolManager`` (``pool``): the supervision loop over the ports, on any ``Clock``;
- ``launch_options`` (``plan``): instance types and zones in fallback order, with their scripts;
- ``TaskDatabase`` (``taskdb``) and ``build_report`` (``report``);
- ``SimulatedWorkers`` and ``run_on_virtual_time`` (``simworkers``): worker behaviour on
  simulated VMs and a virtual-time driver.
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
from cloud_tasks.manager.simworkers import SimStats, SimulatedWorkers, run_on_virtual_time
from cloud_tasks.manager.taskdb import TaskCounts, TaskDatabase

__all__ = [
    "JobOutcome",
    "JobReport",
    "LaunchOption",
    "PoolManager",
    "PoolSettings",
    "PoolSnapshot",
    "SimStats",
    "SimulatedWorkers",
    "TaskCounts",
    "TaskDatabase",
    "ZoneChoice",
    "build_report",
    "format_report",
    "launch_options",
    "run_on_virtual_time",
    "startup_script_for",
]

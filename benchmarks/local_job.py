"""Benchmark: a whole job through ``cloud_tasks run`` on the ``local`` provider.

2,000 tasks of 10 ms each (by default) go through the real path: task-file validation, the
SQLite task database and queue, local instances started from the generated startup script, the
worker's forked task processes, events back through the event queue, teardown. Prints the wall
time, tasks per second and the overhead over the pure work (task time divided by the number of
task slots), and from the recorded events the slot utilisation once every instance is up:
sum of task time / (slots x wall), from the moment the last instance started its first task
to the end of the last task, with the overhead per task in ms. Target on a 2-core machine:
slot utilisation >= 80 %.

The default layout is a user's default instance on this machine: the local instance type is
the machine itself, and the default ``cpus_per_task`` of 1 gives it a task slot per core; the
job runs one of them (``max_instances: 1``: each local instance claims every core, so the
default of ten would put ten slots on each core). Sleeping tasks on more slots than cores (the
former default, 2 instances x 4 slots on 2 cores) measure how the task processes, the workers
and the manager share the CPU, not how well slots are kept busy; that figure follows on a
second line (``--no-second`` skips it). ``--instances``/``--slots`` measure one other layout
instead.

    python benchmarks/local_job.py [--tasks 2000] [--task-ms 10] [--instances N --slots M]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKER = """\
import asyncio, sys, time
from cloud_tasks.worker import Worker

def process_task(task_id, task_data, worker_data):
    time.sleep(task_data["ms"] / 1000.0)
    return True, None

if __name__ == "__main__":
    asyncio.run(Worker(process_task, args=sys.argv[1:]).start())
"""

CONFIG = """\
provider: local
local:
  job_id: bench-local
  startup_script: exec python3 worker.py
  max_instances: {instances}
{layout}  scaling_check_interval: 1
  instance_termination_delay: 2
  keepalive_interval: 1
  keepalive_startup_timeout: 60
  keepalive_timeout: 60
"""


# The second figure: the former default layout, more slots than cores.
SECOND_LAYOUT = (2, 4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--task-ms", type=float, default=10.0)
    parser.add_argument("--instances", type=int, help="local instances (default 1)")
    parser.add_argument("--slots", type=int, help="task slots per instance (default: one per core)")
    parser.add_argument(
        "--no-second", action="store_true", help=f"skip the {_slots(SECOND_LAYOUT)}-slot run"
    )
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    chosen = args.instances is not None or args.slots is not None
    instances = args.instances if args.instances is not None else 1
    slots = args.slots if args.slots is not None else cores
    status = _job(args.tasks, args.task_ms, instances, slots, default=not chosen, full=True)
    if not chosen and not args.no_second and status == 0:
        status = _job(args.tasks, args.task_ms, *SECOND_LAYOUT, default=False, full=False)
    return status


def _slots(layout: tuple[int, int]) -> int:
    return layout[0] * layout[1]


def _job(
    n_tasks: int, task_ms: float, instances: int, slots: int, *, default: bool, full: bool
) -> int:
    """Run one job and print its figures (all of them, or one line); the exit status."""
    cores = os.cpu_count() or 1
    # The default layout leaves the slots to the configuration's defaults (cpus_per_task 1).
    layout = (
        "" if default else f"  cpus_per_task: {cores / slots}\n  max_tasks_per_instance: {slots}\n"
    )
    with tempfile.TemporaryDirectory(prefix="ct-bench-") as tmp:
        work = Path(tmp)
        (work / "worker.py").write_text(WORKER)
        (work / "config.yml").write_text(CONFIG.format(instances=instances, layout=layout))
        tasks = [{"task_id": f"t{i:06d}", "data": {"ms": task_ms}} for i in range(n_tasks)]
        (work / "tasks.json").write_text(json.dumps(tasks))
        env = {**os.environ, "XDG_STATE_HOME": str(work / "state")}
        command = [
            sys.executable,
            "-m",
            "cloud_tasks",
            "run",
            "--config",
            "config.yml",
            "--tasks",
            "tasks.json",
            "-q",
        ]
        started = time.perf_counter()
        cpu_before = _children_cpu_s()
        result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
        wall_s = time.perf_counter() - started
        cpu_s = _children_cpu_s() - cpu_before
        if result.returncode != 0:
            print(result.stdout, result.stderr, sep="\n", file=sys.stderr)
            print(f"cloud_tasks run failed with exit status {result.returncode}", file=sys.stderr)
            return 1
        status = subprocess.run(
            [
                sys.executable,
                "-m",
                "cloud_tasks",
                "status",
                "--config",
                "config.yml",
                "--format",
                "json",
            ],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        counts = json.loads(status.stdout)["tasks"]
        steady = _steady_state(work / "bench-local.db", task_ms / 1000.0)
    total_slots = instances * slots
    pure_s = n_tasks * task_ms / 1000.0 / total_slots
    cpu_ms = cpu_s / n_tasks * 1000
    load = os.getloadavg()[0]
    utilisation_line = "no task ran after every instance was up"
    if steady is not None:
        window_s, in_window, up = steady
        busy_s = in_window * task_ms / 1000.0
        utilisation = busy_s / (total_slots * window_s)
        overhead_ms = (total_slots * window_s - busy_s) / in_window * 1000
        utilisation_line = (
            f"{in_window} tasks in {window_s:.2f} s after all {up} up: slot utilisation "
            f"{utilisation:.1%}, {overhead_ms:.2f} ms of slot time per task beyond its own"
        )
    if not full:
        print(
            f"{total_slots} slots ({instances} x {slots}): {utilisation_line}; "
            f"CPU {cpu_ms:.2f} ms per task; load average {load:.1f}"
        )
        return 0 if counts["completed"] == n_tasks else 1
    print(f"machine:          {cores} cores, load average {load:.1f} at the end")
    print(
        f"job:              {n_tasks} tasks of {task_ms:g} ms, "
        f"{instances} local instance(s) x {slots} slots"
        + (" (the default layout: a slot per core)" if default else "")
    )
    print(f"completed:        {counts['completed']} (failed {counts['failed']})")
    print(f"wall time:        {wall_s:.2f} s (whole 'cloud_tasks run', start to teardown)")
    print(f"throughput:       {n_tasks / wall_s:.1f} tasks/s")
    print(f"pure work:        {pure_s:.2f} s ({total_slots} slots)")
    print(
        f"overhead:         {wall_s - pure_s:.2f} s over the pure work "
        f"({(wall_s - pure_s) / n_tasks * 1000:.2f} ms per task)"
    )
    print(
        f"CPU:              {cpu_s:.2f} s of {cores} cores over the wall time "
        f"({cpu_ms:.2f} ms per task: manager, instances, task processes)"
    )
    print(f"utilisation:      {utilisation_line} (target >= 80 %)")
    return 0 if counts["completed"] == n_tasks else 1


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _steady_state(db_path: Path, task_s: float) -> tuple[float, int, int] | None:
    """(seconds, tasks started, instances) from the moment every instance had started a task
    to the end of the last task, from the completed tasks' events."""
    with sqlite3.connect(db_path) as db:
        bodies = [body for (body,) in db.execute("SELECT body FROM events ORDER BY id")]
    runs: list[tuple[float, float, str]] = []
    for body in bodies:
        event = json.loads(body)
        if event.get("event_type") != "task_completed":
            continue
        end = datetime.datetime.fromisoformat(event["timestamp"]).timestamp()
        runs.append((end - float(event["elapsed_time"]), end, str(event["instance_id"])))
    if not runs:
        return None
    first: dict[str, float] = {}
    for start, _, instance in runs:
        first[instance] = min(start, first.get(instance, start))
    all_up = max(first.values())
    last_end = max(end for _, end, _ in runs)
    started = [run for run in runs if run[0] >= all_up]
    if not started or last_end <= all_up:
        return None
    # The tasks started in the window; the window ends with the last of them.
    return last_end - all_up, len(started), len(first)


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: a whole job through ``cloud_tasks run`` on the ``local`` provider.

2,000 tasks of 10 ms each (by default) go through the real path: task-file validation, the
SQLite task database and queue, local instances started from the generated startup script, the
worker's forked task processes, events back through the event queue, teardown. Prints the wall
time, tasks per second and the overhead over the pure work (task time divided by the number of
task slots), and from the recorded events the slot utilisation once every instance is up:
sum of task time / (slots x wall), from the moment the last instance started its first task
to the end of the last task, with the overhead per task in ms. Target on a 2-core machine:
slot utilisation >= 80 %.

    python benchmarks/local_job.py [--tasks 2000] [--task-ms 10] [--instances 2] [--slots 4]
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
  cpus_per_task: {cpus_per_task}
  max_tasks_per_instance: {slots}
  scaling_check_interval: 1
  instance_termination_delay: 2
  keepalive_interval: 1
  keepalive_startup_timeout: 60
  keepalive_timeout: 60
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--task-ms", type=float, default=10.0)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--slots", type=int, default=4, help="task slots per instance")
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="ct-bench-") as tmp:
        work = Path(tmp)
        (work / "worker.py").write_text(WORKER)
        (work / "config.yml").write_text(
            CONFIG.format(
                instances=args.instances,
                slots=args.slots,
                cpus_per_task=cores / args.slots,
            )
        )
        tasks = [{"task_id": f"t{i:06d}", "data": {"ms": args.task_ms}} for i in range(args.tasks)]
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
        steady = _steady_state(work / "bench-local.db", args.task_ms / 1000.0)
    slots = args.instances * args.slots
    pure_s = args.tasks * args.task_ms / 1000.0 / slots
    print(f"machine:          {cores} cores, load average {os.getloadavg()[0]:.1f} at the end")
    print(
        f"job:              {args.tasks} tasks of {args.task_ms:g} ms, "
        f"{args.instances} local instances x {args.slots} slots"
    )
    print(f"completed:        {counts['completed']} (failed {counts['failed']})")
    print(f"wall time:        {wall_s:.2f} s (whole 'cloud_tasks run', start to teardown)")
    print(f"throughput:       {args.tasks / wall_s:.1f} tasks/s (target >= 150)")
    print(f"pure work:        {pure_s:.2f} s ({slots} slots)")
    print(
        f"overhead:         {wall_s - pure_s:.2f} s over the pure work "
        f"({(wall_s - pure_s) / args.tasks * 1000:.2f} ms per task)"
    )
    print(
        f"CPU:              {cpu_s:.2f} s of {cores} cores over the wall time "
        f"({cpu_s / args.tasks * 1000:.2f} ms per task: manager, instances, task processes)"
    )
    if steady is not None:
        window_s, in_window, instances = steady
        busy_s = in_window * args.task_ms / 1000.0
        utilisation = busy_s / (slots * window_s)
        overhead_ms = (slots * window_s - busy_s) / in_window * 1000
        print(
            f"all {instances} up:         {in_window} tasks in {window_s:.2f} s: slot utilisation "
            f"{utilisation:.1%} (target >= 80 %), {overhead_ms:.2f} ms of slot time per task "
            "beyond its own"
        )
    return 0 if counts["completed"] == args.tasks else 1


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

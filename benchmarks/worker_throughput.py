"""Worker throughput: trivial tasks from a JSON file, each in its own process.

Prints tasks/s for
- our worker in two forms, each run as ``python worker.py --tasks tasks.json
  --num-simultaneous-tasks 2`` (wall time including interpreter start-up): the Quick Start
  guide's form (``asyncio.run(main())`` with ``await worker.start()``, its code as the guide
  writes it) and ``Worker(process_task).run()``,
- a bare fork-per-task loop in this process (the floor cost of per-task process isolation on this
  machine, measured in the same run),
- optionally the reference implementation (``--reference-venv PATH``: a virtualenv with
  ``rms-cloud-tasks==0.5.0`` installed; its worker takes ``--task-file`` and its
  ``process_task`` returns ``(False, result)`` when done),
and the time of ``import cloud_tasks.worker`` in a fresh interpreter.

Targets on a 2-core machine: both forms >= 65% of the fork loop's rate (median of 5 runs) and
<= 1.5x its CPU time per task; import <= 60 ms (median of 10, next to the ``python -c pass``
floor). Other work on the machine moves the rates a lot;
the ratio to the fork loop (measured in alternation with the workers) and the CPU time per task
(all processes) move much less.

    .venv/bin/python benchmarks/worker_throughput.py [--tasks 2000] [--repeat 5]
        [--reference-venv /tmp/refvenv]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

OUR_WORKER = """
from cloud_tasks.worker import Worker


def process_task(task_id, task_data, worker_data):
    return True, {"i": task_data["i"]}


if __name__ == "__main__":
    Worker(process_task).run()
"""

# The Quick Start guide's worker (docs: quickstart), without its type annotations (the guide's
# snippet does not import Dict, Any, Tuple or WorkerData).
QUICK_START_WORKER = """
import asyncio
import sys
from cloud_tasks.worker import Worker

def process_task(task_id, task_data, worker_data):
    return True, {"i": task_data["i"]}

async def main():
    # These command line arguments are used to override environment variables when
    # specifying the behavior of the worker process manager.
    worker = Worker(process_task, args=sys.argv[1:])
    await worker.start()

if __name__ == "__main__":
    asyncio.run(main())
"""

REFERENCE_WORKER = """
import asyncio
import sys

from cloud_tasks.worker import Worker


def process_task(task_id, task_data, worker_data):
    return False, {"i": task_data["i"]}


async def main():
    worker = Worker(process_task, args=sys.argv[1:])
    await worker.start()


if __name__ == "__main__":
    asyncio.run(main())
"""


def _trivial(task_id: str, task_data: dict[str, Any], worker_data: object) -> tuple[bool, Any]:
    return True, {"i": task_data["i"]}


def _cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def bare_fork_loop(tasks: list[dict[str, Any]], simultaneous: int) -> float:
    """Tasks/s of the simplest isolated loop: fork, run, report via exit, wait."""
    return _bare_fork_loop(tasks, simultaneous)[0]


def _bare_fork_loop(tasks: list[dict[str, Any]], simultaneous: int) -> tuple[float, float]:
    """(tasks/s, CPU seconds per task of the loop and its children)."""
    cpu_before = _cpu_s(resource.RUSAGE_SELF) + _cpu_s(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    running: set[int] = set()
    for task in tasks:
        if len(running) >= simultaneous:
            pid, _ = os.wait()
            running.discard(pid)
        pid = os.fork()
        if pid == 0:
            _, result = _trivial(task["task_id"], task["data"], None)
            json.dumps(result)
            os._exit(0)
        running.add(pid)
    while running:
        pid, _ = os.wait()
        running.discard(pid)
    rate = len(tasks) / (time.perf_counter() - started)
    cpu = _cpu_s(resource.RUSAGE_SELF) + _cpu_s(resource.RUSAGE_CHILDREN) - cpu_before
    return rate, cpu / len(tasks)


def run_worker(
    python: str, script: Path, args: list[str], cwd: Path, count: int, timeout_s: float
) -> float | None:
    """Tasks/s of one worker run (wall time including start-up), or None if it failed."""
    measured = _run_worker(python, script, args, cwd, count, timeout_s)
    return None if measured is None else measured[0]


def _run_worker(
    python: str, script: Path, args: list[str], cwd: Path, count: int, timeout_s: float
) -> tuple[float, float] | None:
    """(tasks/s, CPU seconds per task of the worker and all its processes), or None."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RMS_CLOUD_TASKS_")}
    cpu_before = _cpu_s(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            [python, str(script), *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        print(f"  {script.name}: still running after {timeout_s:.0f}s, stopped")
        return None
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        print(f"  {script.name}: exit status {proc.returncode}: {proc.stderr.strip()[-300:]}")
        return None
    return count / elapsed, (_cpu_s(resource.RUSAGE_CHILDREN) - cpu_before) / count


def import_time_ms(python: str, repeat: int = 10) -> tuple[float, float, float]:
    """Medians of ``repeat`` fresh interpreters (ms): ``import cloud_tasks.worker`` as
    ``-X importtime`` reports it, the same import timed in-process, and the wall time of
    ``python -c pass`` (the floor: interpreter start-up, which no import can go below)."""
    code = "import time; t = time.perf_counter(); import cloud_tasks.worker; "
    code += "print(time.perf_counter() - t)"
    reported, timed, floor = [], [], []
    for _ in range(repeat):
        proc = subprocess.run(
            [python, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True
        )
        timed.append(float(proc.stdout) * 1000)
        for line in proc.stderr.splitlines():
            fields = line.split("|")
            if len(fields) == 3 and fields[2].strip() == "cloud_tasks.worker":
                reported.append(int(fields[1]) / 1000)
        started = time.perf_counter()
        subprocess.run([python, "-c", "pass"], check=True)
        floor.append((time.perf_counter() - started) * 1000)
    return statistics.median(reported), statistics.median(timed), statistics.median(floor)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000, help="tasks per run (default 2000)")
    parser.add_argument("--simultaneous", type=int, default=2, help="tasks at once (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the median counts")
    parser.add_argument("--reference-venv", type=Path, help="virtualenv with rms-cloud-tasks 0.5.0")
    parser.add_argument(
        "--reference-tasks", type=int, default=100, help="tasks for the (slow) reference run"
    )
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="worker-bench-") as tmp:
        work = Path(tmp)
        tasks = [{"task_id": f"task-{i}", "data": {"i": i}} for i in range(options.tasks)]
        (work / "tasks.json").write_text(json.dumps(tasks))
        forms = {"Quick Start form": "quickstart.py", "Worker(...).run()": "run.py"}
        (work / "quickstart.py").write_text(QUICK_START_WORKER)
        (work / "run.py").write_text(OUR_WORKER)
        ours_args = ["--tasks", "tasks.json", "--num-simultaneous-tasks", str(options.simultaneous)]

        ours: dict[str, list[tuple[float, float]]] = {name: [] for name in forms}
        floor: list[tuple[float, float]] = []
        for _ in range(options.repeat):
            for name, script in forms.items():
                measured = _run_worker(
                    sys.executable, work / script, ours_args, work, len(tasks), 600
                )
                if measured is not None:
                    ours[name].append(measured)
            floor.append(_bare_fork_loop(tasks, options.simultaneous))
        print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        shape = f"{options.tasks} trivial tasks, {options.simultaneous} at once"
        print(f"{shape}, median of {options.repeat} (CPU: all processes, per task):")
        floor_rate = statistics.median(r for r, _ in floor)
        floor_cpu = statistics.median(c for _, c in floor)
        print(
            f"  bare fork-per-task loop: {floor_rate:8.1f} tasks/s, CPU {1000 * floor_cpu:.2f} ms "
            "(runs: " + ", ".join(f"{r:.0f}" for r, _ in floor) + ")"
        )
        for name, runs in ours.items():
            if not runs:
                continue
            rate = statistics.median(r for r, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            print(
                f"  {name + ':':<24} {rate:8.1f} tasks/s, CPU {1000 * cpu:.2f} ms "
                f"({100 * rate / floor_rate:.0f}% of the fork loop's rate, "
                f"{cpu / floor_cpu:.2f}x its CPU; runs: "
                + ", ".join(f"{r:.0f}" for r, _ in runs)
                + ")"
            )
        if options.reference_venv is not None:
            ref_python = str(options.reference_venv / "bin" / "python")
            ref_tasks = tasks[: options.reference_tasks]
            (work / "ref_tasks.json").write_text(json.dumps(ref_tasks))
            (work / "reference.py").write_text(REFERENCE_WORKER)
            ref_args = ["--task-file", "ref_tasks.json"]
            ref_args += ["--num-simultaneous-tasks", str(options.simultaneous)]
            ref_rate = run_worker(
                ref_python, work / "reference.py", ref_args, work, len(ref_tasks), 900
            )
            if ref_rate is not None:
                print(
                    f"  reference 0.5.0 worker:  {ref_rate:8.1f} tasks/s ({len(ref_tasks)} tasks)"
                )
        reported, timed, start_ms = import_time_ms(sys.executable)
        print(
            f"import cloud_tasks.worker: {reported:.0f} ms (-X importtime; {timed:.0f} ms timed "
            f"in-process); python -c pass: {start_ms:.0f} ms (medians of 10)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

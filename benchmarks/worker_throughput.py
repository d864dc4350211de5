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
floor). Other work on the machine moves the rates a lot, and the CPU time per task too (the
fork loop's own moves by a third between runs), so each repeat runs the fork loop before and
after the two forms (whose order alternates between repeats), each run is compared with the
mean of the two loops around it, and the ratios printed are the medians of these per-repeat
ratios, with their range.

The fork loop runs in this process, which has imported ``threading`` (through ``subprocess``),
so each of its children also runs ``threading``'s fork hook, as a fork loop in a user's program
that imported ``asyncio`` would. For reference the same loop also runs in a fresh interpreter
that imports nothing else (``python -S``); its figures are printed, not used for the targets.

    .venv/bin/python benchmarks/worker_throughput.py [--tasks 2000] [--repeat 5]
        [--reference-venv /tmp/refvenv]
"""

from __future__ import annotations

import argparse
import inspect
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


# The same fork loop (the very functions above, by their source) in a fresh interpreter
# (``python -S``: no site, no threading); it reads the tasks from argv[1] and prints
# "tasks/s CPU-seconds-per-task".
FRESH_FORK_LOOP = "\n\n".join(
    [
        # Annotations stay unevaluated: nothing beyond these modules is imported.
        "from __future__ import annotations\nimport json, os, resource, sys, time",
        *(inspect.getsource(function) for function in (_trivial, _cpu_s, _bare_fork_loop)),
        "with open(sys.argv[1]) as f:\n"
        "    tasks = json.load(f)\n"
        "print(*_bare_fork_loop(tasks, int(sys.argv[2])))\n",
    ]
)


def fresh_fork_loop(python: str, tasks_file: Path, simultaneous: int) -> tuple[float, float]:
    """(tasks/s, CPU seconds per task) of the bare fork loop in a fresh ``python -S``."""
    proc = subprocess.run(
        [python, "-S", "-c", FRESH_FORK_LOOP, str(tasks_file), str(simultaneous)],
        capture_output=True,
        text=True,
        check=True,
    )
    rate, cpu = proc.stdout.split()
    return float(rate), float(cpu)


def paired_ratios(
    runs: list[tuple[int, float, float]], floors: list[tuple[float, float]]
) -> tuple[list[float], list[float]]:
    """Per run ``(repeat, tasks/s, CPU/task)``: its rate and CPU over the mean of the fork
    loops run just before and just after its repeat (``floors[repeat]``, ``floors[repeat+1]``)."""
    rates, cpus = [], []
    for repeat, rate, cpu in runs:
        (rate_a, cpu_a), (rate_b, cpu_b) = floors[repeat], floors[repeat + 1]
        rates.append(rate / ((rate_a + rate_b) / 2))
        cpus.append(cpu / ((cpu_a + cpu_b) / 2))
    return rates, cpus


def _spread(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    """ "median (min-max)" of ``values`` times ``scale``."""
    return (
        f"{scale * statistics.median(values):.{digits}f} "
        f"({scale * min(values):.{digits}f}-{scale * max(values):.{digits}f})"
    )


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

        # Per form: (repeat, tasks/s, CPU/task) of each run that finished.
        ours: dict[str, list[tuple[int, float, float]]] = {name: [] for name in forms}
        # The fork loop before the first repeat and after each one (see paired_ratios).
        floor = [_bare_fork_loop(tasks, options.simultaneous)]
        fresh = [fresh_fork_loop(sys.executable, work / "tasks.json", options.simultaneous)]
        loads = [os.getloadavg()[0]]
        for repeat in range(options.repeat):
            order = list(forms.items())
            if repeat % 2:
                order.reverse()
            for name, script in order:
                measured = _run_worker(
                    sys.executable, work / script, ours_args, work, len(tasks), 600
                )
                if measured is not None:
                    ours[name].append((repeat, *measured))
            floor.append(_bare_fork_loop(tasks, options.simultaneous))
            fresh.append(fresh_fork_loop(sys.executable, work / "tasks.json", options.simultaneous))
            loads.append(os.getloadavg()[0])
        print(
            f"load average: {min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} CPUs "
            "(1-minute, over the run)"
        )
        shape = f"{options.tasks} trivial tasks, {options.simultaneous} at once"
        print(f"{shape}, median of {options.repeat} (CPU: all processes, per task):")
        floor_rate = statistics.median(r for r, _ in floor)
        floor_cpu = statistics.median(c for _, c in floor)
        print(
            f"  bare fork-per-task loop: {floor_rate:8.1f} tasks/s, CPU {1000 * floor_cpu:.2f} ms "
            f"(median of {len(floor)}; runs: " + ", ".join(f"{r:.0f}" for r, _ in floor) + ")"
        )
        for name, runs in ours.items():
            if not runs:
                continue
            rate = statistics.median(r for _, r, _ in runs)
            cpu = statistics.median(c for _, _, c in runs)
            print(
                f"  {name + ':':<24} {rate:8.1f} tasks/s, CPU {1000 * cpu:.2f} ms "
                "(runs: " + ", ".join(f"{r:.0f}" for _, r, _ in runs) + ")"
            )
        print("against the fork loops run just before and after each run, median (range):")
        for name, runs in ours.items():
            if not runs:
                continue
            rate_ratios, cpu_ratios = paired_ratios(runs, floor)
            print(
                f"  {name + ':':<24} {_spread(rate_ratios, 100, 0)} % of the fork loop's rate, "
                f"{_spread(cpu_ratios)}x its CPU per task ({len(runs)} runs)"
            )
        fresh_rate = statistics.median(r for r, _ in fresh)
        fresh_cpu = statistics.median(c for _, c in fresh)
        print(
            f"reference, the fork loop in a fresh python -S: {fresh_rate:.1f} tasks/s, "
            f"CPU {1000 * fresh_cpu:.2f} ms (median of {len(fresh)}); CPU per task against it: "
            + ", ".join(
                f"{name} {statistics.median(c for _, _, c in runs) / fresh_cpu:.2f}x"
                for name, runs in ours.items()
                if runs
            )
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

"""Time and peak memory to read a task file of 1,000,000 tasks (SPEC §3).

Writes a JSON task file into a temporary directory, then reads and fully validates it in a
child process (so the figure is the reader's own peak RSS, not this script's) and prints the
seconds and MB. Target on a 2-core machine: at most 10 s and 300 MB peak RSS.

``run`` is what ``cloud_tasks run`` does with the file: one read that checks every task and
sizes its message into a spool, then the spool read twice (recording, loading).

``--compare-ijson`` also times the same read on ijson's C backend (yajl2_c), with the checks it
can make (duplicate keys refused, task ids unique): the figure that decides between the two.
ijson reports neither the line and column of an error nor of a task, which the error messages
of a bad task file give (tests/taskfile, tests/badinput), so it would need to be faster to
be worth a second pass that finds them. ijson is in the `dev` extra for this comparison only.

    .venv/bin/python benchmarks/task_file.py [--tasks N] [--compare-ijson]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 10.0
TARGET_MB = 300.0

_READER = """
import json, sys, time
from cloud_tasks.taskfile import iter_tasks, validate_task_file
path, mode = sys.argv[1], sys.argv[2]
start = time.perf_counter()
if mode == "validate":
    count = validate_task_file(path)
elif mode == "iterate":
    count = sum(1 for task in iter_tasks(path) if task.data)
elif mode == "run":
    from cloud_tasks.service_layer.taskload import TaskSpool, read_task_file

    with TaskSpool() as spool:
        count = read_task_file(path, max_message_bytes=256 * 1024, spool=spool).total
        for _pass in ("record", "load"):
            if sum(1 for task in spool) != count:
                raise SystemExit("the spool lost tasks")
elif mode == "ijson":
    import ijson
    from cloud_tasks.domain.tasks import Task

    class Unique(dict):
        def __setitem__(self, key, value):
            if key in self:
                raise SystemExit(f"key {key!r} is given twice")
            super().__setitem__(key, value)

    seen = {}
    count = 0
    with open(path, "rb") as stream:
        values = ijson.items(stream, "item", use_float=True, map_type=Unique, buf_size=1 << 20)
        for index, value in enumerate(values):
            task = Task(value["task_id"], value["data"])
            if seen.setdefault(task.task_id, index) != index:
                raise SystemExit(f"duplicate task_id {task.task_id!r}")
            count += 1
else:
    count = 0
print(json.dumps({"count": count, "seconds": time.perf_counter() - start}))
"""


def write_task_file(path: Path, count: int) -> None:
    """A JSON list of ``count`` tasks with small, varied data, one task per line."""
    with path.open("w", encoding="utf-8") as out:
        out.write("[\n")
        batch: list[str] = []
        for index in range(count):
            task = {
                "task_id": f"task-{index:07d}",
                "data": {
                    "input": f"gs://bucket/images/file-{index:07d}.fits",
                    "band": index % 7,
                    "threshold": 0.5 + index % 10 / 10,
                    "flags": ["calibrate", "stack"],
                },
            }
            batch.append(json.dumps(task))
            if len(batch) == 10_000:
                out.write(",\n".join(batch))
                batch = []
                if index + 1 < count:
                    out.write(",\n")
        if batch:
            out.write(",\n".join(batch))
        out.write("\n]\n")


def measure(path: Path, mode: str) -> tuple[int, float, float, float]:
    """Run the reader in a fresh child.

    Returns (tasks, wall seconds of the read, CPU seconds of the child, its peak RSS in MB);
    CPU seconds are the steadier figure on a busy machine.
    """
    with tempfile.TemporaryFile("w+") as output:
        child = subprocess.Popen([sys.executable, "-c", _READER, str(path), mode], stdout=output)
        # wait4 gives this one child's resource usage (RUSAGE_CHILDREN would be a maximum
        # over every child so far).
        _pid, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise SystemExit(f"reader failed with exit status {child.returncode}")
        output.seek(0)
        figures = json.loads(output.read())
    cpu_s = usage.ru_utime + usage.ru_stime
    return int(figures["count"]), float(figures["seconds"]), cpu_s, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000, help="tasks in the file")
    parser.add_argument(
        "--compare-ijson", action="store_true", help="also time a reader on ijson (yajl2_c)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tasks.json"
        start = time.perf_counter()
        write_task_file(path, args.tasks)
        size_mb = path.stat().st_size / 1e6
        print(
            f"wrote {args.tasks:,} tasks ({size_mb:.0f} MB) in {time.perf_counter() - start:.1f} s"
        )
        _, _, base_cpu_s, base_mb = measure(path, "import")
        print(
            f"interpreter + import cloud_tasks.taskfile: {base_cpu_s:.2f} s CPU, "
            f"peak RSS {base_mb:.0f} MB"
        )
        modes = ("validate", "iterate", "run", *(("ijson",) if args.compare_ijson else ()))
        for mode in modes:
            count, seconds, cpu_s, peak_mb = measure(path, mode)
            verdict = "ok" if seconds <= TARGET_S and peak_mb <= TARGET_MB else "OVER TARGET"
            print(
                f"{mode:8s} {count:,} tasks: {seconds:.2f} s ({cpu_s:.2f} s CPU), "
                f"peak RSS {peak_mb:.0f} MB "
                f"(target ≤ {TARGET_S:.0f} s, ≤ {TARGET_MB:.0f} MB): {verdict}"
            )


if __name__ == "__main__":
    main()

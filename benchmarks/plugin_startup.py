"""What the ``cloud_tasks`` pytest plugin adds to pytest start-up, and a 20-task fixture run.

1. Start-up: the time to import the plugin module in a fresh interpreter that has already
   imported pytest (what pytest pays to load it; median of N processes), then
   ``pytest --collect-only`` on a project with one trivial test, alternately with and without
   ``-p no:cloud_tasks`` (fastest of N each; on a busy machine this difference is noise).
   Target: the plugin adds at most 50 ms.
2. A user test of 20 tasks: runs one test that adds 20 tasks and calls
   ``cloud_tasks_sim.run(process_task, num_simultaneous_tasks=4)``, and prints the test's own
   duration as pytest measures it (``--durations``), plus the whole pytest process. Target: the
   test takes at most 2 s.

    .venv/bin/python benchmarks/plugin_startup.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_STARTUP_MS = 50.0
TARGET_RUN_S = 2.0

_IMPORT = """
import time
import pytest
start = time.perf_counter()
import cloud_tasks.entrypoints.pytest_plugin
print(time.perf_counter() - start)
"""
_TRIVIAL = "def test_nothing():\n    pass\n"
_TWENTY = """
def process_task(task_id, task_data, worker_data):
    return True, {"sum": task_data["a"] + task_data["b"]}


def test_twenty(cloud_tasks_sim):
    cloud_tasks_sim.add_tasks([{"task_id": f"t{i}", "data": {"a": i, "b": 1}} for i in range(20)])
    report = cloud_tasks_sim.run(process_task, num_simultaneous_tasks=4)
    assert report.completed == {f"t{i}" for i in range(20)}
"""


def _pytest(project: Path, *args: str) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"pytest failed:\n{done.stdout}\n{done.stderr}")
    return elapsed, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="runs of each start-up variant")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "test_trivial.py").write_text(_TRIVIAL)
        (project / "test_twenty.py").write_text(_TWENTY)
        imports = [
            float(
                subprocess.run(
                    [sys.executable, "-c", _IMPORT], capture_output=True, text=True, check=True
                ).stdout
            )
            for _ in range(options.repeat)
        ]
        print(
            f"importing the plugin after pytest, median of {options.repeat}: "
            f"{statistics.median(imports) * 1000:.1f} ms (target <= {TARGET_STARTUP_MS:g} ms)"
        )
        with_plugin: list[float] = []
        without_plugin: list[float] = []
        _pytest(project, "--collect-only", "test_trivial.py")  # warm the file cache
        for _ in range(options.repeat):
            with_plugin.append(_pytest(project, "--collect-only", "test_trivial.py")[0])
            without_plugin.append(
                _pytest(project, "--collect-only", "-p", "no:cloud_tasks", "test_trivial.py")[0]
            )
        on_ms = min(with_plugin) * 1000
        off_ms = min(without_plugin) * 1000
        print(f"pytest --collect-only, fastest of {options.repeat}:")
        print(f"  with the cloud_tasks plugin:     {on_ms:7.1f} ms")
        print(f"  with -p no:cloud_tasks:          {off_ms:7.1f} ms")
        print(f"  difference:                      {on_ms - off_ms:7.1f} ms")

        durations: list[float] = []
        totals: list[float] = []
        for _ in range(3):
            total, out = _pytest(project, "--durations=1", "--durations-min=0", "test_twenty.py")
            match = re.search(r"([\d.]+)s call\s+test_twenty.py::test_twenty", out)
            if match is None:
                raise SystemExit(f"no duration in pytest output:\n{out}")
            durations.append(float(match.group(1)))
            totals.append(total)
        print("user test of 20 tasks (cloud_tasks_sim.run, 4 at a time), best of 3:")
        print(
            f"  the test itself:                 {min(durations):7.2f} s "
            f"(target <= {TARGET_RUN_S:g} s)"
        )
        print(f"  the whole pytest process:        {min(totals):7.2f} s")


if __name__ == "__main__":
    main()

"""Time ``cloud_tasks results`` on a task database of 1,000,000 tasks (issue: ≤ 30 s).

Builds a task database with the product's own schema (every task completed or failed, with a
small JSON result, an error for the failed ones, an elapsed time and an instance), then runs
``cloud_tasks results`` as a user would (a subprocess, JSON lines and CSV, into a file) and
prints the seconds, the child's peak RSS and the ratio to a floor measured in the same run:
reading the same columns with a bare SQLite cursor and doing nothing with them. Also times the
dashboard's summary of the same database (what one refresh of ``cloud_tasks dashboard`` reads),
which sets how often the dashboard of such a job refreshes.

    .venv/bin/python benchmarks/results_export.py [--tasks N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 30.0


def build_database(path: Path, count: int) -> None:
    """A task database of ``count`` finished tasks (9 in 10 completed)."""
    from cloud_tasks.adapters.local.taskdb import TaskDatabase

    TaskDatabase(path).close()  # the product's schema
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    rows = []
    for index in range(count):
        failed = index % 10 == 9
        rows.append(
            (
                f"task-{index:07d}",
                json.dumps({"n": index}),
                "failed" if failed else "completed",
                1 + index % 3,
                None if failed else json.dumps({"sum": index * 2, "files": [f"out/{index}.fits"]}),
                "ValueError: bad pixel" if failed else None,
                1000.0 + index,
                1000.5 + index,
                round(0.5 + (index % 97) / 10, 3),
                f"i-{index % 50:04d}",
            )
        )
        if len(rows) == 50_000:
            _insert(db, rows)
            rows = []
    _insert(db, rows)
    db.execute("COMMIT")
    db.close()


def _insert(db: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
    db.executemany(
        "INSERT INTO tasks (task_id, data, state, attempts, result, error, started_at, "
        "finished_at, elapsed_s, instance_id) VALUES (?,?,?,?,?,?,?,?,?,?)",
        rows,
    )


def floor_s(path: Path) -> float:
    """Seconds to read the exported columns with a bare cursor (the least any export costs)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    start = time.perf_counter()
    cursor = db.execute(
        "SELECT task_id, state, attempts, result, error, elapsed_s, instance_id FROM tasks "
        "ORDER BY seq"
    )
    while cursor.fetchmany(10_000):
        pass
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def export_s(path: Path, output: Path, output_format: str) -> tuple[float, float]:
    """Seconds and child peak RSS (MB) of ``cloud_tasks results`` into ``output``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "cloud_tasks",
            "results",
            "--db-file",
            str(path),
            "--format",
            output_format,
            "--output",
            str(output),
        ],
        check=True,
        capture_output=True,
    )
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before) / 1024


def dashboard_s(path: Path) -> tuple[float, float]:
    """Seconds of a full dashboard summary (``job_view``) of the database at ``path`` while
    its job runs, and of a cheap refresh (plots reused, counts read again)."""
    import sqlite3

    from cloud_tasks.adapters.local.taskdb_views import TaskDatabaseView
    from cloud_tasks.service_layer.dashboard_data import job_view

    # A running job: the last tenth of the tasks not finished yet.
    db = sqlite3.connect(path)
    db.execute("UPDATE tasks SET state = 'pending', finished_at = NULL WHERE seq % 10 = 0")
    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('started_at', '1000.0')")
    db.commit()
    db.close()
    connection = TaskDatabaseView(path)
    try:
        start = time.perf_counter()
        view = job_view(connection, time.time())
        full = time.perf_counter() - start
        start = time.perf_counter()
        job_view(connection, time.time(), reuse=view)
        return full, time.perf_counter() - start
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        start = time.perf_counter()
        build_database(path, args.tasks)
        print(f"built a task database of {args.tasks} tasks in {time.perf_counter() - start:.1f} s")
        floor = floor_s(path)
        print(f"floor (bare SQLite cursor over the same columns): {floor:.2f} s")
        for output_format in ("jsonl", "csv"):
            output = Path(tmp) / f"results.{output_format}"
            seconds, peak_mb = export_s(path, output, output_format)
            with output.open("rb") as stream:
                lines = sum(1 for _ in stream)
            expected = args.tasks + (1 if output_format == "csv" else 0)
            status = "OK" if seconds <= TARGET_S and lines == expected else "FAIL"
            print(
                f"results --format {output_format}: {seconds:.2f} s for {args.tasks} tasks "
                f"({args.tasks / seconds:,.0f} tasks/s, {os.path.getsize(output) / 1e6:.0f} MB, "
                f"peak RSS {peak_mb:.0f} MB), {seconds / floor:.1f}x the floor; "
                f"target <= {TARGET_S:g} s: {status}"
            )
        from cloud_tasks.entrypoints.dashboard.server import COST_FACTOR, REFRESH_S

        full, cheap = dashboard_s(path)
        print(
            f"dashboard of a running job of {args.tasks} tasks: full summary {full:.2f} s "
            f"({full / floor:.1f}x the floor), so its plots refresh every "
            f"{max(REFRESH_S, COST_FACTOR * full):.0f} s; counts and the rest "
            f"{cheap:.2f} s, refreshed every {REFRESH_S:g} s"
        )


if __name__ == "__main__":
    main()

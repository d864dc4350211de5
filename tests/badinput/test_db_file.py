"""A ``db_file`` that is not this job's task database, or cannot be made, through the real CLI.

``run --force`` deletes the job's old task database; it must never delete or overwrite any
other file that ``db_file`` names: the task file, the configuration, the worker, a binary, an
empty file, another program's SQLite database, another job's task database, a folder. Nor may
``status``, ``status --dump``, ``run --continue`` or ``stop`` write into one. Each refusal is one
line, exit 1, with nothing created (no queue, no lock file) and the file byte for byte as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cloud_tasks.adapters.local.taskdb import TaskDatabase

TASKS = '[{"task_id": "t1", "data": {"n": 1}}]\n'
WORKER = "print('the worker')\n"
CONFIG = """\
provider: local
local:
  job_id: db-job
  startup_script: "exec python3 worker.py"
  db_file: {db_file}
"""


def _foreign_sqlite(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db, db:  # closed, not only committed
        db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO photos (name) VALUES ('cat.jpg')")


def _other_job(path: Path) -> None:
    with TaskDatabase(path) as db:
        db.set_meta(job_id="other-job")


#: db_file → how to make it (None: it is one of the job's own files, made for every case).
TARGETS: dict[str, Callable[[Path], None] | None] = {
    "tasks.json": None,
    "config.yml": None,
    "worker.py": None,
    "blob.bin": lambda p: p.write_bytes(bytes(range(256)) * 4),
    "empty.db": lambda p: p.write_bytes(b""),
    "photos.db": _foreign_sqlite,
    "other-job.db": _other_job,
    "folder.db": lambda p: p.mkdir(),
}
COMMANDS = {
    "run --force": ["run", "--config", "config.yml", "--tasks", "tasks.json", "--force"],
    "run --continue": ["run", "--config", "config.yml", "--continue"],
    "status": ["status", "--config", "config.yml"],
    "status --dump": ["status", "--config", "config.yml", "--dump", "unfinished"],
}


def _fingerprint(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): (
            "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        )
        for p in sorted(directory.rglob("*"))
    }


def _job(directory: Path, db_file: str) -> None:
    directory.mkdir()
    (directory / "tasks.json").write_text(TASKS)
    (directory / "worker.py").write_text(WORKER)
    (directory / "config.yml").write_text(CONFIG.format(db_file=db_file))
    make = TARGETS.get(db_file)
    if make is not None:
        make(directory / db_file)


def _cli(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RMS_CLOUD_TASKS_")}
    env["XDG_STATE_HOME"] = str(directory.parent / f"{directory.name}-state")
    return subprocess.run(
        [sys.executable, "-m", "cloud_tasks", *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("db_file", sorted(TARGETS))
def test_a_db_file_that_is_not_this_jobs_database_is_never_touched(
    db_file: str, tmp_path: Path
) -> None:
    directory = tmp_path / "job"
    _job(directory, db_file)
    before = _fingerprint(directory)
    for label, args in COMMANDS.items():
        result = _cli(directory, *args)
        shown = f"{label}: exit {result.returncode}\n{result.stdout}{result.stderr}"
        assert result.returncode == 1, shown
        assert "Traceback" not in shown
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, shown
        assert db_file in lines[0], shown
        assert (
            "not a Cloud Tasks task database" in lines[0]
            or "task database of job 'other-job'" in lines[0]
        ), shown
        assert _fingerprint(directory) == before, shown  # no byte changed, nothing added
        assert not (tmp_path / "job-state").exists(), shown  # no queue was created
    # stop still stops the job's instances (its local registry is its own), and leaves the
    # file alone.
    result = _cli(directory, "stop", "--config", "config.yml")
    assert result.returncode == 0, result.stderr
    assert "left untouched" in result.stderr
    after = {k: v for k, v in _fingerprint(directory).items() if not k.startswith(".cloud_tasks")}
    assert after == before


@pytest.mark.parametrize(
    "db_file", ["no/such/folder/job.db", "folder.db", "read-only/job.db"], ids=str
)
def test_a_db_file_that_cannot_be_made_is_found_before_any_queue(
    db_file: str, tmp_path: Path
) -> None:
    directory = tmp_path / "job"
    _job(directory, db_file)
    if db_file.startswith("read-only"):
        if os.geteuid() == 0:
            pytest.skip("root may write into read-only folders")
        (directory / "read-only").mkdir()
        (directory / "read-only").chmod(0o500)
    before = _fingerprint(directory)
    try:
        result = _cli(directory, "run", "--config", "config.yml", "--tasks", "tasks.json")
    finally:
        if (directory / "read-only").exists():
            (directory / "read-only").chmod(0o700)
    shown = f"exit {result.returncode}\n{result.stdout}{result.stderr}"
    assert result.returncode == 1, shown
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and db_file in lines[0], shown
    assert "Traceback" not in shown
    assert _fingerprint(directory) == before, shown
    assert not (tmp_path / "job-state").exists(), shown  # checked before any queue


def test_continue_refuses_a_database_whose_run_recorded_nothing(tmp_path: Path) -> None:
    """A run killed between making the task database and naming its task file."""
    directory = tmp_path / "job"
    _job(directory, "db-job.db")
    TaskDatabase(directory / "db-job.db", job_id="db-job").close()
    result = _cli(directory, "run", "--config", "config.yml", "--continue")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "start the job again with --force" in lines[0], result.stderr
    assert (directory / "db-job.db").exists()  # kept, for --force to replace

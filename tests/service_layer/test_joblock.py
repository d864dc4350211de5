"""One manager per job: the advisory lock beside the task database (``manager.joblock``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cloud_tasks.exceptions import CloudTasksError
from cloud_tasks.service_layer.joblock import JobLock, lock_holder, lock_path


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    db = tmp_path / "job.db"
    with JobLock(db, "job"):
        assert lock_holder(db) == os.getpid()
        with pytest.raises(
            CloudTasksError, match=f"already being managed by process {os.getpid()}"
        ):
            JobLock(db, "job").acquire()
    # Released: the file is gone, and the next holder gets it.
    assert not lock_path(db).exists() and lock_holder(db) is None
    with JobLock(db, "job"):
        assert lock_path(db).read_text() == f"cloud_tasks job {os.getpid()}\n"


def test_the_lock_dies_with_its_process(tmp_path: Path) -> None:
    db = tmp_path / "job.db"
    code = (
        "import os, sys; from cloud_tasks.service_layer.joblock import JobLock; "
        f"JobLock({str(db)!r}, 'job').acquire(); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert lock_path(db).exists()  # left by a process that died without releasing it
    assert lock_holder(db) is None
    with JobLock(db, "job"):
        assert lock_holder(db) == os.getpid()


def test_a_file_of_that_name_that_is_not_a_lock_is_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "job.db"
    lock_path(db).write_text("my notes\n")
    with pytest.raises(CloudTasksError, match="not a Cloud Tasks lock file"):
        JobLock(db, "job").acquire()
    assert lock_path(db).read_text() == "my notes\n"
    lock_path(db).unlink()
    lock_path(db).mkdir()
    with pytest.raises(CloudTasksError, match="cannot create the job's lock file"):
        JobLock(db, "job").acquire()


def test_a_symlink_in_place_of_the_lock_is_never_followed(tmp_path: Path) -> None:
    db = tmp_path / "job.db"
    elsewhere = tmp_path / "elsewhere"
    lock_path(db).symlink_to(elsewhere)
    with pytest.raises(CloudTasksError, match="cannot create the job's lock file"):
        JobLock(db, "job").acquire()
    assert not elsewhere.exists()  # nothing was created through the link

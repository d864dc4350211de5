"""One manager per job at a time: an advisory lock file beside the task database.

``run`` (new, ``--force`` or ``--continue``), ``manage_pool`` and ``monitor_event_queue`` hold
``<db_file>.lock`` (``flock``, exclusive) while they run, so a second one for the same task
database is refused at once with one line naming the process that holds it, instead of two
managers launching and stopping instances against each other. The kernel releases the lock
when its process dies, however it dies (``kill -9`` included), so a crashed manager never
blocks ``run --continue``. The file is removed when the holder exits normally; it holds
``cloud_tasks <job id> <pid>`` and a file of that name with other content is never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from cloud_tasks.domain.text import shown
from cloud_tasks.exceptions import CloudTasksError

_MAGIC = b"cloud_tasks "


def lock_path(db_path: str | Path) -> Path:
    return Path(f"{db_path}.lock")


def _read(fd: int) -> bytes:
    return os.pread(fd, 256, 0)


def _holder_pid(content: bytes) -> int | None:
    parts = content.split()
    if len(parts) >= 3 and parts[-1].isdigit():
        return int(parts[-1])
    return None


class JobLock:
    """The lock of the job whose task database is ``db_path`` (a context manager)."""

    def __init__(self, db_path: str | Path, job_id: str) -> None:
        self.path = lock_path(db_path)
        self.job_id = job_id
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``CloudTasksError`` saying who holds it."""
        for _ in range(10):
            try:
                fd = os.open(
                    self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
                )
            except OSError as exc:
                raise CloudTasksError(
                    f"{shown(self.path, 200)}: cannot create the job's lock file "
                    f"({exc.strerror or exc}); db_file must be in a folder you can write to"
                ) from exc
            try:
                content = _read(fd)
                if content and not content.startswith(_MAGIC):
                    raise CloudTasksError(
                        f"{shown(self.path, 200)}: this file is not a Cloud Tasks lock file and "
                        "is left untouched; move it away or choose another db_file"
                    )
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    pid = _holder_pid(_read(fd))
                    who = f"process {pid}" if pid else "another process"
                    raise CloudTasksError(
                        f"job {self.job_id} is already being managed by {who} (lock "
                        f"{shown(self.path, 200)}); wait for it to end, or end it first "
                        "(Ctrl-C in its terminal, or 'cloud_tasks stop')"
                    ) from None
                except OSError as exc:  # a file system without locks (some network mounts)
                    raise CloudTasksError(
                        f"{shown(self.path, 200)}: cannot lock the job's lock file "
                        f"({exc.strerror or exc}); put db_file on a local disk"
                    ) from exc
                try:
                    same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)  # removed by its last holder meanwhile: take the new one
                    continue
                os.ftruncate(fd, 0)
                os.pwrite(fd, _MAGIC + f"{self.job_id} {os.getpid()}\n".encode(), 0)
            except BaseException as exc:
                with contextlib.suppress(OSError):
                    os.close(fd)
                if isinstance(exc, OSError):
                    raise CloudTasksError(
                        f"{shown(self.path, 200)}: cannot write the job's lock file "
                        f"({exc.strerror or exc}); check the free disk space"
                    ) from exc
                raise
            self._fd = fd
            return
        raise CloudTasksError(f"{shown(self.path, 200)}: cannot take the job's lock; try again")

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None

    def __enter__(self) -> JobLock:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def lock_holder(db_path: str | Path) -> int | None:
    """The pid of the process that holds the job's lock now, or None when nobody does."""
    path = lock_path(db_path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        content = _read(fd)
        if not content.startswith(_MAGIC):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder_pid(content) or -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


__all__ = ["JobLock", "lock_holder", "lock_path"]

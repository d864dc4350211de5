"""Opening a user's local file for reading, refusing anything that is not a regular file.

A named pipe blocks ``open`` until something writes to it (so ``run --tasks fifo.json`` would
wait forever), a directory or a device is not a file of tasks or settings at all. Every path a
user names as an input file (task file, configuration, startup script, durations) is opened
here, so each refusal is immediate and says what the path is.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotARegularFileError(OSError):
    """The path exists but is not a regular file; ``strerror`` says what it is."""

    def __init__(self, path: str | os.PathLike[str], kind: str) -> None:
        super().__init__(errno.EINVAL, f"is {kind}, not a regular file", os.fspath(path))
        self.kind = kind


def kind_of(mode: int) -> str:
    """What a file mode describes, for a message (``a named pipe (FIFO)``)."""
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "not a regular file"


def open_regular_file(path: str | os.PathLike[str]) -> BinaryIO:
    """Open ``path`` for binary reading; never blocks on a named pipe.

    Raises:
        NotARegularFileError: the path is a directory, a FIFO, a device or a socket.
        OSError: the path cannot be opened (``FileNotFoundError``, ``PermissionError``...).
    """
    try:
        # O_NONBLOCK: opening a FIFO for reading returns at once instead of waiting for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a Unix socket cannot be opened at all
            mode = os.stat(path).st_mode
            raise NotARegularFileError(path, kind_of(mode)) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFileError(path, kind_of(mode))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular_file(path: str | os.PathLike[str], limit: int | None = None) -> bytes:
    """The bytes of a regular file (at most ``limit``); see ``open_regular_file``."""
    with open_regular_file(Path(path)) as stream:
        return stream.read() if limit is None else stream.read(limit)


__all__ = ["NotARegularFileError", "kind_of", "open_regular_file", "read_regular_file"]

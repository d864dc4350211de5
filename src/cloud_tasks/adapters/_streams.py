"""A remote object's body as a read-only binary stream whose errors are ours.

The ``TaskSource`` adapters for S3, Cloud Storage and HTTP hand back their SDK's body through
``object_stream``, so no SDK exception reaches the task-file reader.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, cast

from cloud_tasks.exceptions import CloudTasksError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


def object_stream(
    read: Callable[[int], bytes],
    close: Callable[[], None],
    translate: Callable[[Exception], CloudTasksError],
    *,
    errors: tuple[type[Exception], ...],
) -> IO[bytes]:
    """Wrap a remote body's ``read``/``close`` as a binary stream (see ``ObjectStream``)."""
    # A RawIOBase is a binary file at run time; typeshed does not declare it an IO[bytes].
    return cast("IO[bytes]", ObjectStream(read, close, translate, errors=errors))


class ObjectStream(io.RawIOBase):
    """A remote object's body as a read-only binary stream whose errors are ours.

    ``read(n)`` is the body's read; an exception of one of the ``errors`` types raised while
    reading becomes ``translate(exc)``, so no SDK exception reaches the task-file reader.
    """

    def __init__(
        self,
        read: Callable[[int], bytes],
        close: Callable[[], None],
        translate: Callable[[Exception], CloudTasksError],
        *,
        errors: tuple[type[Exception], ...],
    ) -> None:
        super().__init__()
        self._read = read
        self._close = close
        self._translate = translate
        self._errors = errors

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._read(len(view))
        except self._errors as exc:
            raise self._translate(exc) from None
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            # Nothing more is read; a failed close must not hide the real outcome.
            with contextlib.suppress(*self._errors):
                self._close()
        super().close()

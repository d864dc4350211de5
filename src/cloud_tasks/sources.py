"""Where a task file lives: a local path, ``s3://bucket/key``, ``gs://bucket/object`` or a URL.

``parse_location`` turns what the user wrote into a ``Location``; ``open_location`` opens it as
a read-only binary stream that is read chunk by chunk, so a remote file of millions of tasks is
never held in memory whole. The cloud SDKs are imported only when a location of theirs is
opened (``cloud_tasks.adapters.aws.s3``, ``cloud_tasks.adapters.gcp.storage``); ``http(s)://``
uses the standard library.

Every failure is a ``TaskFileError`` (or a ``CredentialsError`` when no credentials exist at
all) whose message names the location and says what went wrong: not found, access denied, a
malformed location, or a server that cannot be reached.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Final, cast
from urllib.parse import unquote, urlsplit

import attrs

from cloud_tasks.exceptions import CloudTasksError, TaskFileError
from cloud_tasks.localfile import NotARegularFileError, open_regular_file

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

#: Schemes a task-file location may use besides a plain path.
REMOTE_SCHEMES: Final = ("s3", "gs", "https", "http")
#: Seconds to wait for an HTTP server to answer (and between two reads of a slow body).
HTTP_TIMEOUT_S: Final = 60.0

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_USER_AGENT = "rms-cloud-tasks"


@attrs.frozen
class Location:
    """A parsed task-file location.

    ``scheme`` is ``"file"`` for a local path. ``bucket`` and ``key`` are set for ``s3`` and
    ``gs``; ``url`` is the full text for ``http(s)``. ``display`` is what messages show: the
    location as written, without a query string or password (a presigned URL's signature must
    not end up in logs).
    """

    scheme: str
    text: str
    bucket: str = ""
    key: str = ""

    @property
    def is_remote(self) -> bool:
        return self.scheme != "file"

    @property
    def path(self) -> str:
        """The path part that names the file: the key, the URL path, or the local path."""
        if self.scheme in ("s3", "gs"):
            return self.key
        if self.scheme in ("http", "https"):
            return unquote(urlsplit(self.text).path)
        return self.text

    @property
    def suffix(self) -> str:
        """The file extension, lower-cased, from the path (never from a query string)."""
        if self.is_remote:
            return PurePosixPath(self.path).suffix.lower()
        return Path(self.text).suffix.lower()

    @property
    def display(self) -> str:
        if self.scheme not in ("http", "https"):
            return self.text
        parts = urlsplit(self.text)
        host = parts.netloc.rpartition("@")[2]
        return f"{parts.scheme}://{host}{parts.path}" + ("?…" if parts.query else "")


def is_remote(location: str | Path) -> bool:
    """True when ``location`` is a URL (``s3://``, ``gs://``, ``http(s)://``), not a path."""
    return isinstance(location, str) and _SCHEME.match(location) is not None


def parse_location(location: str | Path) -> Location:
    """Parse a task-file location; a ``Path`` (or text without ``scheme://``) is a local file.

    Raises:
        TaskFileError: the scheme is not supported, or the bucket or key is missing.
    """
    if isinstance(location, Path):
        return Location("file", str(location))
    match = _SCHEME.match(location)
    if match is None:
        return Location("file", location)
    scheme = match.group(1).lower()
    if scheme == "file":
        path = unquote(urlsplit(location).path)
        if not path:
            raise TaskFileError(f"{location}: malformed file URL; write file:///absolute/path")
        return Location("file", path)
    if scheme in ("s3", "gs"):
        bucket, _, key = location[match.end() :].partition("/")
        if not bucket or not key or key.endswith("/"):
            raise TaskFileError(
                f"{location}: malformed {scheme}:// location; write {scheme}://bucket/path/to/"
                "tasks.json (a bucket and an object name)"
            )
        return Location(scheme, location, bucket=bucket, key=key)
    if scheme in ("http", "https"):
        if not urlsplit(location).hostname:
            raise TaskFileError(f"{location}: malformed URL: no host name")
        return Location(scheme, location)
    raise TaskFileError(
        f"{location}: unsupported task file location {scheme + '://'!r}; use a local path, "
        "s3://bucket/key, gs://bucket/object or an https:// URL"
    )


def open_location(location: Location) -> IO[bytes]:
    """Open a task-file location for reading, as a stream.

    Remote objects are fetched lazily: the request is made here (so a missing or forbidden
    object fails at once) and the body is read as the caller reads.

    Raises:
        TaskFileError: the file is missing, forbidden, unreachable or not a file.
        CredentialsError: a cloud location was given but no credentials could be found.
        ProviderError: the SDK for the location's cloud is not installed.
    """
    where = location.display
    if location.scheme == "s3":
        from cloud_tasks.adapters.aws.s3 import open_s3_object

        return open_s3_object(location.bucket, location.key, where)
    if location.scheme == "gs":
        from cloud_tasks.adapters.gcp.storage import open_gcs_object

        return open_gcs_object(location.bucket, location.key, where)
    if location.scheme in ("http", "https"):
        return _open_url(location.text, where)
    return _open_path(Path(location.text), where)


def _open_path(path: Path, where: str) -> IO[bytes]:
    try:
        return open_regular_file(path)
    except FileNotFoundError:
        raise TaskFileError(f"{where}: task file not found") from None
    except NotARegularFileError as exc:
        raise TaskFileError(
            f"{where}: is {exc.kind}, not a task file; give the path of a JSON or YAML file"
        ) from None
    except OSError as exc:
        raise TaskFileError(f"{where}: cannot read task file: {exc.strerror or exc}") from None


def status_error(where: str, status: int, detail: str) -> TaskFileError:
    """The error for a server's answer to a request for a task file (HTTP status semantics)."""
    said = f" ({detail})" if detail else ""
    if status in (404, 410):
        return TaskFileError(f"{where}: task file not found{said}; check the location")
    if status in (401, 403):
        return TaskFileError(
            f"{where}: access denied{said}; check that your credentials may read it"
        )
    return TaskFileError(f"{where}: cannot read task file: the server answered {status}{said}")


def _open_url(url: str, where: str) -> IO[bytes]:
    # Imported here: reading a local task file (the worker's usual case) needs no HTTP client.
    import http.client
    import urllib.error
    import urllib.request

    from cloud_tasks.adapters.retrying import call_with_retries

    # identity: a transparently compressed body would defeat reading it as it arrives.
    request = urllib.request.Request(
        url, headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    )
    try:
        # Throttling, 5xx answers, timeouts and resets are retried with backoff and jitter.
        response: http.client.HTTPResponse = call_with_retries(
            lambda: urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S)
        )
    except urllib.error.HTTPError as exc:
        exc.close()
        raise status_error(where, exc.code, f"HTTP {exc.code} {exc.reason}".strip()) from None
    except urllib.error.URLError as exc:
        raise TaskFileError(
            f"{where}: cannot reach the server ({exc.reason}); check the URL and the network"
        ) from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise TaskFileError(f"{where}: cannot reach the server ({exc})") from None
    declared = response.length or 0

    def read(size: int) -> bytes:
        # read1: whatever has arrived (up to size), so a slow server's first tasks are parsed
        # while the rest is still coming.
        data = response.read1(size)
        # http.client reports a body cut short as a normal end; a truncated task file must not
        # pass for a short one.
        if not data and size and response.length:
            raise TaskFileError(
                f"{where}: the download broke off after {declared - response.length} of "
                f"{declared} bytes; try again"
            )
        return data

    return object_stream(
        read,
        response.close,
        lambda exc: TaskFileError(f"{where}: the download broke off: {exc}"),
        errors=(OSError, http.client.HTTPException),
    )


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

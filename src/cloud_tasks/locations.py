"""Where a task file lives: a local path, ``s3://bucket/key``, ``gs://bucket/object`` or a URL.

``parse_location`` turns what the user wrote into a ``Location``, the value a ``TaskSource``
(``cloud_tasks.ports``) opens; ``cloud_tasks.bootstrap.make_task_source`` picks the adapter for
its scheme. Nothing here does I/O or imports an adapter.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Final
from urllib.parse import unquote, urlsplit

import attrs

from cloud_tasks.exceptions import TaskFileError

#: Schemes a task-file location may use besides a plain path.
REMOTE_SCHEMES: Final = ("s3", "gs", "https", "http")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


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

"""Task files on a web server (``http(s)://``), streamed with the standard library.

The request is made when the file is opened (so a missing or forbidden file fails at once) and
the body is read as the caller reads. Throttling, 5xx answers, timeouts and resets are retried
with backoff and jitter; a body cut short is an error, never a shorter task file.
"""

from __future__ import annotations

from typing import IO, Final

from cloud_tasks.adapters._streams import object_stream
from cloud_tasks.exceptions import TaskFileError
from cloud_tasks.locations import Location

#: Seconds to wait for an HTTP server to answer (and between two reads of a slow body).
HTTP_TIMEOUT_S: Final = 60.0

_USER_AGENT = "rms-cloud-tasks"


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


class HttpTaskSource:
    """Opens ``http(s)://`` task files; ``timeout_s`` bounds each wait for the server."""

    def __init__(self, *, timeout_s: float = HTTP_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    def open(self, location: Location) -> IO[bytes]:
        return open_url(location.text, location.display, timeout_s=self.timeout_s)


def open_url(url: str, where: str, *, timeout_s: float = HTTP_TIMEOUT_S) -> IO[bytes]:
    """Start downloading ``url``; the body streams as the caller reads."""
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
        response: http.client.HTTPResponse = call_with_retries(
            lambda: urllib.request.urlopen(request, timeout=timeout_s)
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

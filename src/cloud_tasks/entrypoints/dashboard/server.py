"""The dashboard's web server: the page, its script and style, and one JSON endpoint.

Standard library only (``http.server``). Every request opens the task database read-only and
closes it again; the page and its assets ship inside the package, and the Content Security
Policy allows nothing but this server, so no request ever leaves the machine. When the server
listens on a loopback address, requests naming another host are refused (a web page elsewhere
cannot reach it through DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloud_tasks import bootstrap
from cloud_tasks.exceptions import CloudTasksError
from cloud_tasks.service_layer.dashboard_data import job_view

if TYPE_CHECKING:
    from cloud_tasks.adapters.local.taskdb_views import TaskDatabaseView

logger = logging.getLogger("cloud_tasks.dashboard")

#: How often the page asks for fresh data, seconds.
REFRESH_S = 2.0
#: The plots of a running job are read again only after this many times the seconds reading
#: them took (a job of millions of tasks takes seconds to summarise: its plots then refresh
#: less often rather than take the machine from the manager; counts, spend, instances,
#: errors and decisions refresh every time, from indexed or small tables).
COST_FACTOR = 5.0
#: An unchanged database is summarised again after this long (spend and ETA move with time).
UNCHANGED_REFRESH_S = 30.0
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765

_ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/static/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/static/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def _asset(name: str) -> bytes:
    package = resources.files("cloud_tasks.entrypoints.dashboard")
    return package.joinpath("static", name).read_bytes()


def _asset_exists(name: str) -> bool:
    package = resources.files("cloud_tasks.entrypoints.dashboard")
    return package.joinpath("static", name).is_file()


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug(format, *args)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in _HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _host_allowed(self) -> bool:
        if not self.server.loopback_only:
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        if host.startswith("["):
            name = host[: host.find("]") + 1] if "]" in host else host
        else:
            name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        return name in _LOOPBACK_NAMES

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if not self._host_allowed():
            self._send(HTTPStatus.FORBIDDEN, b"forbidden host\n", "text/plain; charset=utf-8")
            return
        path = self.path.split("?", 1)[0]
        if path == "/api/job":
            self._send_job()
            return
        asset = _ASSETS.get(path)
        if asset is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")
            return
        name, content_type = asset
        self._send(HTTPStatus.OK, _asset(name), content_type)

    def _send_job(self) -> None:
        try:
            data = self.server.read_job()
        except CloudTasksError as exc:
            data = {"error": str(exc)}
        body = json.dumps(data, allow_nan=False, default=str).encode()
        self._send(HTTPStatus.OK, body, "application/json")


class DashboardServer(ThreadingHTTPServer):
    """Serves the dashboard of the task database at ``db_path`` (read-only)."""

    daemon_threads = True

    def __init__(
        self,
        db_path: str | Path,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        missing = [name for name, _ in _ASSETS.values() if not _asset_exists(name)]
        if missing:
            raise CloudTasksError(
                f"the dashboard's page ({', '.join(sorted(set(missing)))}) is missing from this "
                "installation of cloud_tasks; reinstall rms-cloud-tasks"
            )
        self.db_path = Path(db_path)
        self.clock = clock
        self.loopback_only = _is_loopback(host)
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            super().__init__((host, port), _Handler)
        except OSError as exc:
            raise CloudTasksError(
                f"cannot serve the dashboard on {host}:{port}: {exc.strerror or exc}; "
                "choose another --port (0 picks a free one)"
            ) from None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._db: TaskDatabaseView | None = None
        self._view: dict[str, Any] | None = None
        self._version: int | None = None
        self._inode: int | None = None
        self._computed_at = 0.0
        self._series_next_at = 0.0

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{name}]" if ":" in name else name
        return f"http://{shown}:{port}/"

    def read_job(self) -> dict[str, Any]:
        """The page's data: read again when the database changed (or ``UNCHANGED_REFRESH_S``
        passed), at most twice per ``REFRESH_S``; the plots of a running job at most every
        ``COST_FACTOR`` times what reading them cost."""
        with self._lock:
            now = self.clock()
            if self._view is not None and now - self._computed_at < REFRESH_S / 2:
                return self._view
            try:
                inode = self.db_path.stat().st_ino
            except OSError:
                inode = None
            if self._db is not None and inode != self._inode:
                # The file was replaced ('run --force' starts the job over): read the new one.
                self._db.close()
                self._db, self._view = None, None
            if self._db is None:
                self._db = bootstrap.open_task_database_view(self.db_path)
                self._inode = inode
            try:
                version = self._db.data_version()
                if (
                    self._view is not None
                    and version == self._version
                    and now - self._computed_at < UNCHANGED_REFRESH_S
                ):
                    return self._view
                reuse = self._view if now < self._series_next_at else None
                started = time.perf_counter()
                view = job_view(self._db, now, reuse)
            except CloudTasksError:
                # Read again from a fresh connection next time (the file may have been damaged
                # or swapped between two reads).
                self._db.close()
                self._db = None
                raise
            cost = time.perf_counter() - started
            if view["series_at"] == now:
                self._series_next_at = now + max(REFRESH_S / 2, COST_FACTOR * cost)
            self._view, self._version, self._computed_at = view, version, now
            return view

    def start_background(self) -> None:
        """Serve from a daemon thread (``run --dashboard``); ``stop`` ends it."""
        self._thread = threading.Thread(
            target=self.serve_forever, name="cloud-tasks-dashboard", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def server_close(self) -> None:
        super().server_close()
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "REFRESH_S", "DashboardServer"]

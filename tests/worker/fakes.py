"""Loopback HTTP fakes of the EC2 (IMDSv2) and Compute Engine metadata servers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: Any


class ImdsState:
    """What the fake EC2 metadata server answers; tests flip ``spot_action``."""

    def __init__(self) -> None:
        self.instance_id = "i-0123456789abcdef0"
        self.spot_action: dict[str, str] | None = None
        self.tokens_issued = 0
        self.rejected_without_token = 0


class _ImdsHandler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, code: int, body: str = "") -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:
        state: ImdsState = self.server.state
        if self.path != "/latest/api/token" or not self.headers.get(
            "X-aws-ec2-metadata-token-ttl-seconds"
        ):
            self._send(400)
            return
        state.tokens_issued += 1
        self._send(200, f"token-{state.tokens_issued}")

    def do_GET(self) -> None:
        state: ImdsState = self.server.state
        token = self.headers.get("X-aws-ec2-metadata-token", "")
        if not token.startswith("token-"):
            state.rejected_without_token += 1
            self._send(401)
            return
        if self.path == "/latest/meta-data/instance-id":
            self._send(200, state.instance_id)
        elif self.path == "/latest/meta-data/spot/instance-action" and state.spot_action:
            self._send(200, json.dumps(state.spot_action))
        else:
            self._send(404, "Not Found")


class GceState:
    """What the fake Compute Engine metadata server answers; tests flip ``preempted``."""

    def __init__(self) -> None:
        self.instance_id = "4520339781273349831"
        self.preempted = False
        self.rejected_without_flavor = 0


class _GceHandler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, code: int, body: str = "") -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Metadata-Flavor", "Google")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        state: GceState = self.server.state
        if self.headers.get("Metadata-Flavor") != "Google":
            state.rejected_without_flavor += 1
            self._send(403)
            return
        if self.path == "/computeMetadata/v1/instance/id":
            self._send(200, state.instance_id)
        elif self.path == "/computeMetadata/v1/instance/preempted":
            self._send(200, "TRUE" if state.preempted else "FALSE")
        else:
            self._send(404)


@contextmanager
def _serve(handler: type[BaseHTTPRequestHandler], state: Any) -> Iterator[tuple[str, Any]]:
    server = _Server(("127.0.0.1", 0), handler)
    server.state = state
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        yield f"127.0.0.1:{port}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def imds_server() -> Iterator[tuple[str, ImdsState]]:
    """Yields (``http://host:port``, state) of a fake IMDSv2 endpoint."""
    with _serve(_ImdsHandler, ImdsState()) as (address, state):
        yield f"http://{address}", state


@contextmanager
def gce_metadata_server() -> Iterator[tuple[str, GceState]]:
    """Yields (``host:port`` as GCE_METADATA_HOST takes it, state)."""
    with _serve(_GceHandler, GceState()) as (address, state):
        yield address, state

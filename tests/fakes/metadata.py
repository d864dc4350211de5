"""Loopback fakes of the EC2 (IMDSv2) and Compute Engine metadata servers, on pytest-httpserver.

Each answers only what the real server does for the paths the adapters read: IMDSv2 wants a
session token (``PUT /latest/api/token`` with a TTL header, then the token on every read, else
401); the GCE server wants ``Metadata-Flavor: Google`` (else 403) and sends it back. Paths a
server does not hold answer 404, as both real servers do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

#: The state object answers every path, so unknown ones get the real server's answer too.
_EVERY_PATH = re.compile(r"/.*")


def _started() -> HTTPServer:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    return server


class ImdsState:
    """What the fake EC2 metadata server answers; tests flip ``spot_action``."""

    def __init__(self) -> None:
        self.instance_id = "i-0123456789abcdef0"
        self.spot_action: dict[str, str] | None = None
        self.tokens_issued = 0
        self.rejected_without_token = 0

    def answer(self, request: Request) -> Response:
        if request.path == "/latest/api/token":
            if request.method != "PUT" or not request.headers.get(
                "X-aws-ec2-metadata-token-ttl-seconds"
            ):
                return Response(status=400)
            self.tokens_issued += 1
            return Response(f"token-{self.tokens_issued}")
        if not request.headers.get("X-aws-ec2-metadata-token", "").startswith("token-"):
            self.rejected_without_token += 1
            return Response(status=401)
        if request.path == "/latest/meta-data/instance-id":
            return Response(self.instance_id)
        if request.path == "/latest/meta-data/spot/instance-action" and self.spot_action:
            return Response(json.dumps(self.spot_action))
        return Response("Not Found", status=404)


class GceState:
    """What the fake Compute Engine metadata server answers; tests flip ``preempted``."""

    def __init__(self) -> None:
        self.instance_id = "4520339781273349831"
        self.preempted = False
        self.rejected_without_flavor = 0

    def answer(self, request: Request) -> Response:
        headers = {"Metadata-Flavor": "Google"}
        if request.headers.get("Metadata-Flavor") != "Google":
            self.rejected_without_flavor += 1
            return Response(status=403, headers=headers)
        if request.path == "/computeMetadata/v1/instance/id":
            return Response(self.instance_id, headers=headers)
        if request.path == "/computeMetadata/v1/instance/preempted":
            return Response("TRUE" if self.preempted else "FALSE", headers=headers)
        return Response(status=404, headers=headers)


@contextmanager
def imds_server() -> Iterator[tuple[str, ImdsState]]:
    """Yields (``http://127.0.0.1:port``, state) of a fake IMDSv2 endpoint."""
    state = ImdsState()
    server = _started()
    try:
        server.expect_request(_EVERY_PATH).respond_with_handler(state.answer)
        yield server.url_for("").rstrip("/"), state
    finally:
        server.clear()
        server.stop()


@contextmanager
def gce_metadata_server() -> Iterator[tuple[str, GceState]]:
    """Yields (``127.0.0.1:port`` as GCE_METADATA_HOST takes it, state)."""
    state = GceState()
    server = _started()
    try:
        server.expect_request(_EVERY_PATH).respond_with_handler(state.answer)
        yield f"{server.host}:{server.port}", state
    finally:
        server.clear()
        server.stop()

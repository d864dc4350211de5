"""A fault-injecting HTTP proxy on loopback, in front of moto or a loopback fake.

Point an SDK at ``proxy.url`` instead of the server (``AWS_ENDPOINT_URL``,
``CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE``, ...). For every request ``decide`` returns a fault
or ``None`` (forward it). Faults answer the way the real service does, so the SDKs classify
them as they would in production:

- ``throttle``: AWS ``ThrottlingException`` (JSON protocols) or ``RequestLimitExceeded`` (EC2
  query protocol); Google ``429 RESOURCE_EXHAUSTED``;
- ``500``, ``503``, ``504``: server errors (an empty or service-shaped body);
- ``reset``: the connection is reset before any answer;
- ``html502``: a 502 whose body is a proxy's HTML error page, not the service's format;
- ``deny``: a non-retryable ``AccessDenied``/``UnauthorizedOperation``/``403 PERMISSION_DENIED``;
- ``signature``: AWS ``SignatureDoesNotMatch`` whose message quotes the access key id, as AWS
  does (for the test that credentials never reach our output);
- ``capacity``, ``quota``: EC2's ``InsufficientInstanceCapacity`` (a 500, which botocore would
  retry) and ``VcpuLimitExceeded`` answers to ``RunInstances``.
"""

from __future__ import annotations

import collections
import http.client
import json
import socket
import struct
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

FAULTS = ("throttle", "500", "503", "504", "reset", "deny", "signature", "html502")
_HTML_502 = (
    b'<!DOCTYPE html>\n<html lang="en">\n<head><title>502 Bad Gateway</title></head>\n'
    b"<body><h1>502 Bad Gateway</h1><p>The proxy server received an invalid response from an "
    b"upstream server.</p></body>\n</html>\n"
)
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "content-length",
    "te",
    "trailer",
    "upgrade",
}


@attrs.frozen
class Request:
    """What ``decide`` sees of a request."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def action(self) -> str:
        """The AWS operation (``DescribeInstances``, ``ReceiveMessage``) or the REST path."""
        target = self.headers.get("X-Amz-Target") or self.headers.get("x-amz-target")
        if target:
            return target.rsplit(".", 1)[-1]
        if self.body and b"Action=" in self.body:
            return parse_qs(self.body.decode(errors="replace")).get("Action", [""])[0]
        return self.path

    @property
    def protocol(self) -> str:
        """``json`` (AWS JSON), ``query`` (AWS query/EC2) or ``google`` (REST)."""
        content_type = self.headers.get("Content-Type", "")
        if "amz-json" in content_type:
            return "json"
        if "x-www-form-urlencoded" in content_type or b"Action=" in self.body:
            return "query"
        return "google"

    def access_key(self) -> str:
        auth = self.headers.get("Authorization", "")
        if "Credential=" in auth:
            return auth.split("Credential=", 1)[1].split("/", 1)[0]
        return ""


Decide = Callable[[Request], str | None]


def _aws_error(request: Request, code: str, message: str, status: int) -> tuple[int, str, bytes]:
    if request.protocol == "json":
        body = json.dumps({"__type": code, "message": message}).encode()
        return status, "application/x-amz-json-1.0", body
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
        f"<Code>{code}</Code><Message>{message}</Message></Error></Errors>"
        "<RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
    )
    return status, "text/xml", xml.encode()


def _google_error(code: int, status: str, message: str) -> tuple[int, str, bytes]:
    body = {"error": {"code": code, "message": message, "status": status, "errors": []}}
    return code, "application/json", json.dumps(body).encode()


def fault_response(fault: str, request: Request) -> tuple[int, str, bytes]:
    """(status, content type, body) of an injected fault."""
    google = request.protocol == "google"
    if fault == "throttle":
        if google:
            return _google_error(429, "RESOURCE_EXHAUSTED", "Rate limit exceeded")
        if request.protocol == "json":
            return _aws_error(request, "ThrottlingException", "Rate exceeded", 400)
        return _aws_error(request, "RequestLimitExceeded", "Request limit exceeded.", 503)
    if fault in ("500", "503", "504"):
        status = int(fault)
        if google:
            names = {500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
            return _google_error(status, names[status], "backend error")
        return status, "text/plain", b""
    if fault == "html502":
        return 502, "text/html; charset=utf-8", _HTML_502
    if fault == "deny":
        if google:
            return _google_error(403, "PERMISSION_DENIED", "Required permission is missing")
        code = "AccessDenied" if request.protocol == "json" else "UnauthorizedOperation"
        return _aws_error(request, code, "You are not authorized to perform this operation.", 403)
    if fault == "signature":
        key = request.access_key()
        message = (
            "The request signature we calculated does not match the signature you provided. "
            f"Check your AWS Secret Access Key and signing method. Credential={key}/20250101"
        )
        return _aws_error(request, "SignatureDoesNotMatch", message, 403)
    if fault == "capacity":
        message = (
            "We currently do not have sufficient capacity in the Availability Zone you "
            "requested. Our system will be working on provisioning additional capacity."
        )
        return _aws_error(request, "InsufficientInstanceCapacity", message, 500)
    if fault == "quota":
        message = (
            "You have requested more vCPU capacity than your current vCPU limit of 32 allows "
            "for the instance bucket that the specified instance type belongs to."
        )
        return _aws_error(request, "VcpuLimitExceeded", message, 400)
    raise ValueError(f"unknown fault {fault!r}")


class FaultProxy:
    """Forwards to ``upstream`` (``http://host:port``) unless ``decide`` picks a fault."""

    def __init__(self, upstream: str, decide: Decide) -> None:
        self.upstream = urlsplit(upstream)
        self.decide = decide
        self.injected: collections.Counter[str] = collections.Counter()
        self.forwarded = 0
        self.actions: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(self.command, self.path, dict(self.headers), body)
                fault = outer.decide(request)
                with outer._lock:
                    outer.actions[request.action] += 1
                    if fault is not None:
                        outer.injected[fault] += 1
                    else:
                        outer.forwarded += 1
                if fault == "reset":
                    self._reset()
                    return
                if fault is not None:
                    status, content_type, data = fault_response(fault, request)
                    self._answer(status, {"Content-Type": content_type}, data)
                    return
                status, headers, data = outer._forward(request)
                self._answer(status, headers, data)

            def _answer(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _reset(self) -> None:
                # SO_LINGER 0: close() sends a TCP RST instead of a FIN.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                self.connection.close()

            do_GET = _serve
            do_POST = _serve
            do_PUT = _serve
            do_DELETE = _serve
            do_PATCH = _serve
            do_HEAD = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return

            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()
                except OSError:
                    self.close_connection = True  # after a reset

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _forward(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(
            self.upstream.hostname or "127.0.0.1", self.upstream.port, timeout=120
        )
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
            connection.request(request.method, request.path, body=request.body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            kept = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
            return response.status, kept, data
        finally:
            connection.close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def every_other(
    faults: tuple[str, ...], *, actions: set[str] | None = None, limit: int | None = None
) -> Decide:
    """Fail every second request (of ``actions``, when given), cycling through ``faults``, for
    the first ``limit`` faults (all requests when ``None``).

    Consecutive failures of one call never exceed one, so every call succeeds within its
    retries while every kind of fault is exercised.
    """
    state = {"n": 0, "fault": 0}
    lock = threading.Lock()

    def decide(request: Request) -> str | None:
        if actions is not None and request.action not in actions:
            return None
        with lock:
            if limit is not None and state["fault"] >= limit:
                return None
            state["n"] += 1
            if state["n"] % 2:
                return None
            fault = faults[state["fault"] % len(faults)]
            state["fault"] += 1
            return fault

    return decide

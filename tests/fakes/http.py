"""A JSON API fake on 127.0.0.1, on pytest-httpserver: one handler answers every request."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

#: (method, path, query, json body, headers) -> (status, json payload)
Handler = Callable[[str, str, dict[str, list[str]], Any, dict[str, str]], tuple[int, Any]]


class LoopbackServer:
    """Serves ``handler`` on a free loopback port until ``stop``; records every request."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[tuple[str, str, dict[str, list[str]], Any, dict[str, str]]] = []
        # Threaded: a fake may hold a request (a long operation wait) while others are served.
        self._server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self._server.expect_request(re.compile(r"/.*")).respond_with_handler(self._serve)

    def _serve(self, request: Request) -> Response:
        raw = request.get_data()
        body = json.loads(raw) if raw.strip() else None
        query = parse_qs(request.query_string.decode("latin-1"))
        headers = dict(request.headers)
        self.requests.append((request.method, request.path, query, body, headers))
        try:
            status, payload = self.handler(request.method, request.path, query, body, headers)
        except Exception as exc:  # a bug in a fake should show up as a 500, not a hang
            status, payload = 500, {"error": {"code": 500, "message": repr(exc)}}
        return Response(json.dumps(payload), status=status, content_type="application/json")

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self._server.port}"

    def start(self) -> LoopbackServer:
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving (idempotent: a test may stop a fake to see it unreachable)."""
        if self._server.is_running():
            self._server.clear()
            self._server.stop()

"""A tiny threaded HTTP server on 127.0.0.1 for the loopback fakes."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: (method, path, query, json body, headers) -> (status, json payload)
Handler = Callable[[str, str, dict[str, list[str]], Any, dict[str, str]], tuple[int, Any]]


class LoopbackServer:
    """Serves ``handler`` on a free loopback port until ``stop``; records every request."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[tuple[str, str, dict[str, list[str]], Any, dict[str, str]]] = []
        outer = self

        class _RequestHandler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw.strip() else None
                query = parse_qs(parts.query)
                headers = dict(self.headers)
                outer.requests.append((self.command, parts.path, query, body, headers))
                try:
                    status, payload = outer.handler(self.command, parts.path, query, body, headers)
                except Exception as exc:  # a bug in a fake should show up as a 500, not a hang
                    status, payload = 500, {"error": {"code": 500, "message": repr(exc)}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _serve
            do_POST = _serve
            do_DELETE = _serve
            do_PATCH = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _RequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

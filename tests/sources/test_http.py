"""Task files over HTTP from a loopback server: JSON and YAML, streamed, and every failure."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cloud_tasks.domain.tasks import Task
from cloud_tasks.exceptions import TaskFileError
from cloud_tasks.taskfile import iter_tasks, read_tasks, validate_task_file
from tests.servers import free_port

TASKS = [{"task_id": f"t{i}", "data": {"n": i, "s": "x" * (i % 7)}} for i in range(500)]
JSON_BODY = json.dumps(TASKS).encode()
YAML_BODY = b"# tasks\n- task_id: a\n  data: {n: 1}\n- task_id: b\n  data: {}\n"


class _Site:
    """Routes of the loopback server; ``gate`` holds the slow body until a test releases it."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.routes: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {
            "/tasks.json": lambda h: _send(h, 200, JSON_BODY),
            "/dir/tasks.yaml": lambda h: _send(h, 200, YAML_BODY),
            "/secret.json": lambda h: _send(h, 403, b"<Error><Code>AccessDenied</Code></Error>"),
            "/gone.json": lambda h: _send(h, 410, b"gone"),
            "/broken.json": lambda h: _send(h, 500, b"oops"),
            "/bad.json": lambda h: _send(
                h, 200, b'[{"task_id": "a", "data": {}},\n  {"task_id": 3}]'
            ),
            "/moved.json": self._redirect,
            "/slow.json": self._slow,
            "/cut.json": self._cut,
        }

    def _redirect(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", "/tasks.json")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _slow(self, handler: BaseHTTPRequestHandler) -> None:
        """A chunked body: two tasks at once, the rest only after the test lets it go."""
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        first = b'[{"task_id": "s0", "data": {}},'
        _chunk(handler, first)
        _chunk(handler, b' {"task_id": "s1", "data": {"k": "')
        self.gate.wait(20)
        for piece in (b'v"}}, {"task_id": "s2"', b', "data": {"n": 2}}', b"]"):
            time.sleep(0.05)
            _chunk(handler, piece)
        _chunk(handler, b"")

    def _cut(self, handler: BaseHTTPRequestHandler) -> None:
        """Promises more bytes than it sends, then hangs up."""
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(JSON_BODY)))
        handler.end_headers()
        handler.wfile.write(JSON_BODY[:1000])
        handler.wfile.flush()
        handler.close_connection = True


def _chunk(handler: BaseHTTPRequestHandler, data: bytes) -> None:
    handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    handler.wfile.flush()


def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def site() -> Iterator[tuple[_Site, str]]:
    routes = _Site()

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            routes.requests.append((self.path, dict(self.headers)))
            route = routes.routes.get(path)
            if route is None:
                _send(self, 404, b"not here")
            else:
                route(self)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield routes, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        routes.gate.set()
        server.shutdown()
        server.server_close()


def _error(location: str) -> str:
    with pytest.raises(TaskFileError) as info:
        read_tasks(location)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_json_over_http(site: tuple[_Site, str]) -> None:
    routes, base = site
    tasks = read_tasks(f"{base}/tasks.json")
    assert tasks == [Task(t["task_id"], t["data"]) for t in TASKS]
    assert validate_task_file(f"{base}/tasks.json") == 500
    # Asked for the bytes as stored: a compressed body could not be parsed as it arrives.
    assert routes.requests[0][1].get("Accept-Encoding") == "identity"


def test_yaml_over_http_with_the_extension_from_the_path(site: tuple[_Site, str]) -> None:
    _routes, base = site
    assert read_tasks(f"{base}/dir/tasks.yaml?version=3") == [Task("a", {"n": 1}), Task("b", {})]


def test_a_redirect_is_followed(site: tuple[_Site, str]) -> None:
    _routes, base = site
    assert validate_task_file(f"{base}/moved.json") == 500


def test_a_slow_chunked_body_is_read_as_it_arrives(site: tuple[_Site, str]) -> None:
    routes, base = site
    tasks = iter_tasks(f"{base}/slow.json")
    # The first task is parsed before the server has sent the rest of the file.
    assert next(tasks) == Task("s0", {})
    assert not routes.gate.is_set()
    routes.gate.set()
    assert list(tasks) == [Task("s1", {"k": "v"}), Task("s2", {"n": 2})]


def test_missing(site: tuple[_Site, str]) -> None:
    _routes, base = site
    message = _error(f"{base}/nowhere.json")
    assert message.startswith(f"{base}/nowhere.json: task file not found (HTTP 404")
    assert "not found" in _error(f"{base}/gone.json")


def test_forbidden(site: tuple[_Site, str]) -> None:
    _routes, base = site
    message = _error(f"{base}/secret.json?X-Amz-Signature=s3cr3t")
    assert message.startswith(f"{base}/secret.json?…: access denied (HTTP 403")
    assert "s3cr3t" not in message


def test_a_server_error_is_named(site: tuple[_Site, str]) -> None:
    _routes, base = site
    assert "the server answered 500" in _error(f"{base}/broken.json")


def test_malformed_content_names_the_url_task_and_line(site: tuple[_Site, str]) -> None:
    _routes, base = site
    message = _error(f"{base}/bad.json")
    assert message == (
        f"{base}/bad.json, task index 1 (line 2): missing key 'data' "
        "(use {} for a task without data)"
    )


def test_a_body_cut_short_is_an_error_not_a_short_file(site: tuple[_Site, str]) -> None:
    _routes, base = site
    message = _error(f"{base}/cut.json")
    assert message.startswith(f"{base}/cut.json")
    assert "broke off" in message or "ends before" in message


def test_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}/tasks.json"
    message = _error(url)
    assert message.startswith(f"{url}: cannot reach the server (")
    assert "refused" in message.lower()

"""The backoff helper for urllib calls, and task files fetched from a flaky web server."""

from __future__ import annotations

import collections
import http.server
import json
import socket
import struct
import threading
import urllib.error
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud_tasks.adapters.retrying import Backoff, call_with_retries, is_transient
from cloud_tasks.exceptions import TaskFileError
from cloud_tasks.taskfile import read_tasks


@given(
    st.integers(min_value=0, max_value=40),
    st.floats(min_value=0, max_value=0.999),
    st.floats(min_value=0.01, max_value=5),
    st.floats(min_value=0.1, max_value=60),
)
def test_delays_grow_exponentially_up_to_the_cap_with_full_jitter(
    retry: int, fraction: float, initial: float, maximum: float
) -> None:
    backoff = Backoff(initial_s=initial, maximum_s=maximum, multiplier=2.0)
    cap = min(maximum, initial * 2.0**retry)
    assert 0.0 <= backoff.delay_s(retry, fraction) <= cap
    assert backoff.delay_s(retry, fraction) == pytest.approx(cap * fraction)


def test_retries_counted_for_hours_stay_at_the_cap() -> None:
    """A worker retries a failing queue for as long as it runs: 2**5000 overflows a float."""
    backoff = Backoff(initial_s=0.5, maximum_s=30.0)
    assert backoff.delay_s(5_000, 0.5) == 15.0


def _http_error(code: int, headers: dict[str, str] | None = None) -> urllib.error.HTTPError:
    from email.message import Message

    message = Message()
    for name, value in (headers or {}).items():
        message[name] = value
    return urllib.error.HTTPError("http://x", code, "boom", message, None)


def test_only_transient_failures_are_retried_and_the_last_one_is_raised() -> None:
    waits: list[float] = []
    failures = iter([_http_error(503), ConnectionResetError(), TimeoutError()])

    def flaky() -> str:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return "ok"

    assert call_with_retries(flaky, sleep=waits.append, jitter=lambda: 0.5) == "ok"
    assert waits == [0.1, 0.2, 0.4]  # half of 0.2, 0.4, 0.8 s

    calls = collections.Counter[str]()

    def refused() -> None:
        calls["refused"] += 1
        raise _http_error(404)

    with pytest.raises(urllib.error.HTTPError):
        call_with_retries(refused, sleep=waits.append)
    assert calls["refused"] == 1

    def throttled() -> None:
        calls["throttled"] += 1
        raise _http_error(429, {"Retry-After": "3"})

    waits.clear()
    with pytest.raises(urllib.error.HTTPError):
        call_with_retries(throttled, backoff=Backoff(max_attempts=4), sleep=waits.append)
    assert calls["throttled"] == 4
    assert waits == [3.0, 3.0, 3.0]  # the server's Retry-After, not less
    assert not is_transient(ValueError("not a network problem"))


TASKS = [{"task_id": "a", "data": {"x": 1}}, {"task_id": "b", "data": {}}]


@pytest.fixture
def flaky_server() -> Iterator[tuple[str, collections.Counter[str], list[str]]]:
    """Serves /tasks.json after a 503, a reset and a 429; /missing.json is a 404."""
    script = ["503", "reset", "429"]
    seen: collections.Counter[str] = collections.Counter()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen[self.path] += 1
            if self.path == "/missing.json":
                self.send_error(404)
                return
            fault = script.pop(0) if script else None
            if fault == "reset":
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
                return
            if fault is not None:
                self.send_response(int(fault))
                self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = json.dumps(TASKS).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen, script
    server.shutdown()
    server.server_close()


def test_a_task_file_on_a_flaky_web_server_is_read_after_retries(
    flaky_server: tuple[str, collections.Counter[str], list[str]],
) -> None:
    url, seen, script = flaky_server
    tasks = read_tasks(f"{url}/tasks.json")
    assert [t.task_id for t in tasks] == ["a", "b"]
    assert script == [] and seen["/tasks.json"] == 4
    with pytest.raises(TaskFileError, match="404"):
        read_tasks(f"{url}/missing.json")
    assert seen["/missing.json"] == 1  # not retried


def test_on_retry_is_told_each_retry_with_its_attempt_and_wait() -> None:
    told: list[tuple[int, str, float]] = []
    failures = iter([ConnectionResetError("one"), TimeoutError("two")])

    def flaky() -> int:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return 7

    result = call_with_retries(
        flaky,
        sleep=lambda _s: None,
        jitter=lambda: 1.0,
        on_retry=lambda n, exc, delay: told.append((n, str(exc), delay)),
    )
    assert result == 7
    assert told == [(1, "one", 0.2), (2, "two", 0.4)]

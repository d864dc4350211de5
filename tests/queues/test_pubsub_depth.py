"""Pub/Sub depth from Cloud Monitoring, served by a loopback fake next to the emulator."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cloud_tasks.adapters.gcp.pubsub import PubSubTaskQueue
from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.exceptions import CredentialsError

pytestmark = pytest.mark.filterwarnings("ignore:.*return_immediately:DeprecationWarning")


class FakeMonitoring(ThreadingHTTPServer):
    """Answers timeSeries.list with ``reply`` (status, body) and remembers the queries."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.reply: tuple[int, dict[str, Any]] = (200, {})
        self.queries: list[tuple[str, dict[str, list[str]]]] = []


class _Handler(BaseHTTPRequestHandler):
    server: FakeMonitoring

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        self.server.queries.append((url.path, urllib.parse.parse_qs(url.query)))
        status, body = self.server.reply
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def monitoring(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMonitoring]:
    server = FakeMonitoring()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    monkeypatch.setenv(
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_MONITORING", f"http://{host!s}:{port}/monitoring/v3/"
    )
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def queue(pubsub_emulator: Any) -> Iterator[PubSubTaskQueue]:
    created = PubSubTaskQueue("depth-q", project_id=pubsub_emulator.project_id)
    created.create()
    created.send([Envelope(Task(f"t{i}", {})) for i in range(4)])
    yield created
    created.delete()


def test_depth_is_read_from_cloud_monitoring(
    monitoring: FakeMonitoring, queue: PubSubTaskQueue
) -> None:
    monitoring.reply = (
        200,
        {"timeSeries": [{"points": [{"value": {"int64Value": "1234"}}, {"value": {}}]}]},
    )
    assert queue.depth() == 1234
    path, query = monitoring.queries[-1]
    assert path == f"/v3/projects/{queue.project_id}/timeSeries"
    assert 'resource.labels.subscription_id = "depth-q"' in query["filter"][0]
    assert "num_undelivered_messages" in query["filter"][0]


def test_without_data_points_the_visible_messages_are_counted(
    monitoring: FakeMonitoring, queue: PubSubTaskQueue
) -> None:
    monitoring.reply = (200, {})
    assert queue.depth() == 4
    assert len(monitoring.queries) == 1
    # Counting released them again: all four can still be received.
    assert len(queue.receive(10, 30.0, wait_s=2.0)) == 4


def test_a_refusal_is_a_clear_credentials_error(
    monitoring: FakeMonitoring, queue: PubSubTaskQueue
) -> None:
    monitoring.reply = (403, {"error": {"message": "denied"}})
    with pytest.raises(CredentialsError, match=r"roles/monitoring\.viewer"):
        queue.depth()

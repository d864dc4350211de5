"""Pub/Sub depth from Cloud Monitoring, served by a loopback fake next to the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cloud_tasks.adapters.gcp.pubsub import PubSubTaskQueue
from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.exceptions import CredentialsError
from tests.fakes.http import LoopbackServer

pytestmark = pytest.mark.filterwarnings("ignore:.*return_immediately:DeprecationWarning")


class FakeMonitoring:
    """Answers timeSeries.list with ``reply`` (status, body) and remembers the queries."""

    def __init__(self) -> None:
        self.reply: tuple[int, dict[str, Any]] = (200, {})
        self.server = LoopbackServer(lambda *_request: self.reply)

    @property
    def queries(self) -> list[tuple[str, dict[str, list[str]]]]:
        return [(path, query) for _method, path, query, _body, _h in self.server.requests]


@pytest.fixture
def monitoring(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMonitoring]:
    fake = FakeMonitoring()
    fake.server.start()
    monkeypatch.setenv(
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_MONITORING", f"{fake.server.url}/monitoring/v3/"
    )
    try:
        yield fake
    finally:
        fake.server.stop()


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

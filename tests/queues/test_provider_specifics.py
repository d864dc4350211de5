"""What only one provider does: SQS FIFO deduplication, Pub/Sub exactly-once, error translation."""

from __future__ import annotations

import time
from typing import Any

import pytest

from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.exceptions import CredentialsError, ProviderError, QueueNotFoundError

pytestmark = pytest.mark.filterwarnings("ignore:.*return_immediately:DeprecationWarning")


def test_sqs_fifo_stores_a_task_sent_twice_once_and_requeues_it(moto_server: str) -> None:
    from cloud_tasks.adapters.aws.sqs import SqsTaskQueue

    queue = SqsTaskQueue("fifo-job", region="us-east-1", fifo=True)
    queue.create()
    assert queue.sqs_name == "fifo-job.fifo"
    tasks = [Envelope(Task(f"t{i}", {"i": i})) for i in range(12)]
    queue.send(tasks)
    queue.send(tasks[:5])  # a re-sent load within the deduplication window
    assert queue.depth() == 12
    got = []
    while batch := queue.receive(10, 30.0, wait_s=1.0):
        got.extend(batch)
    assert sorted(m.task_id for m in got) == sorted(f"t{i}" for i in range(12))
    queue.requeue(got[0])  # a new failure count is a new message, not a duplicate
    (again,) = queue.receive(10, 30.0, wait_s=1.0)
    assert again.task_id == got[0].task_id
    assert again.attempt == 2
    queue.delete()


def test_pubsub_exactly_once_ack_and_extend_stay_idempotent(pubsub_emulator: Any) -> None:
    from cloud_tasks.adapters.gcp.pubsub import PubSubTaskQueue

    queue = PubSubTaskQueue("eo-job", project_id=pubsub_emulator.project_id, exactly_once=True)
    queue.create()
    subscription = queue.subscriber.get_subscription(
        request={"subscription": queue.subscription_path}
    )
    assert subscription.enable_exactly_once_delivery
    assert subscription.dead_letter_policy.max_delivery_attempts == 100
    assert subscription.dead_letter_policy.dead_letter_topic.endswith("/topics/eo-job-dead")
    queue.send([Envelope(Task("t1", {}))])
    (message,) = queue.receive(1, 1.0, wait_s=5.0)
    time.sleep(1.5)
    (again,) = queue.receive(1, 30.0, wait_s=5.0)
    assert again.delivery_count == 2
    # The first lease ran out and the message went to someone else: the service refuses the
    # old ack id, and the adapter treats that as nothing to do.
    queue.extend(message.receipt, 30.0)
    queue.release(message.receipt)
    queue.ack(message.receipt)
    queue.ack(again.receipt)
    queue.ack(again.receipt)
    time.sleep(1.2)
    assert queue.receive(1, 30.0, wait_s=0.5) == []
    queue.delete()


def test_sqs_without_credentials_is_a_credentials_error(
    moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cloud_tasks.adapters.aws.sqs import SqsTaskQueue

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(CredentialsError, match="no AWS credentials"):
        SqsTaskQueue("any", region="us-east-1").depth()


def test_aws_errors_become_ours() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError

    from cloud_tasks.adapters.aws.sqs import translate_aws_error

    def client_error(code: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": f"{code} happened"}}, "SendMessage")

    denied = translate_aws_error(client_error("AccessDenied"), "SQS queue 'q'")
    assert isinstance(denied, CredentialsError) and "permission denied" in str(denied)
    rejected = translate_aws_error(client_error("InvalidClientTokenId"), "SQS queue 'q'")
    assert isinstance(rejected, CredentialsError) and "rejected" in str(rejected)
    throttled = translate_aws_error(client_error("RequestThrottled"), "SQS queue 'q'")
    assert type(throttled) is ProviderError and "throttling" in str(throttled)
    offline = translate_aws_error(EndpointConnectionError(endpoint_url="http://x"), "SQS queue 'q'")
    assert type(offline) is ProviderError and "cannot reach SQS" in str(offline)
    for error in (denied, rejected, throttled, offline):
        assert "\n" not in str(error)


def test_google_errors_become_ours() -> None:
    from google.api_core import exceptions as gexc
    from google.auth.exceptions import DefaultCredentialsError

    from cloud_tasks.adapters.gcp.pubsub import translate_google_error

    denied = translate_google_error(gexc.PermissionDenied("no"), "Pub/Sub queue 'q'")
    assert isinstance(denied, CredentialsError) and "roles" in str(denied)
    missing = translate_google_error(DefaultCredentialsError("none"), "Pub/Sub queue 'q'")
    assert isinstance(missing, CredentialsError) and "application-default login" in str(missing)
    throttled = translate_google_error(gexc.ResourceExhausted("slow down"), "Pub/Sub queue 'q'")
    assert type(throttled) is ProviderError and "throttling" in str(throttled)
    down = translate_google_error(gexc.ServiceUnavailable("down"), "Pub/Sub queue 'q'")
    assert type(down) is ProviderError and "cannot reach" in str(down)


def test_pubsub_missing_queue_names_project_and_queue(pubsub_emulator: Any) -> None:
    from cloud_tasks.adapters.gcp.pubsub import PubSubTaskQueue

    queue = PubSubTaskQueue("not-there", project_id=pubsub_emulator.project_id)
    with pytest.raises(QueueNotFoundError, match=pubsub_emulator.project_id):
        queue.receive(1, 10.0)


def test_pubsub_rejects_names_it_cannot_hold() -> None:
    from cloud_tasks.adapters.gcp.pubsub import PubSubTaskQueue

    with pytest.raises(ProviderError, match="3 to 255"):
        PubSubTaskQueue("ab", project_id="p")

"""Task files in S3, read from moto's server: JSON streamed, YAML, missing, forbidden, malformed."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from cloud_tasks.domain.tasks import Task
from cloud_tasks.exceptions import CredentialsError, TaskFileError
from cloud_tasks.taskfile import iter_tasks, read_tasks, validate_task_file

BUCKET = "task-inputs"


def _s3(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture
def s3(moto_server: str) -> Any:
    client = _s3(moto_server)
    client.create_bucket(Bucket=BUCKET)
    return client


def _error(location: str) -> str:
    with pytest.raises(TaskFileError) as info:
        read_tasks(location)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_json_larger_than_one_chunk_is_read_in_order(s3: Any) -> None:
    # Over 2 MiB: the reader needs several chunks, and tasks straddle chunk boundaries.
    tasks = [{"task_id": f"id-{i:06d}", "data": {"pad": "é" * 37, "i": i}} for i in range(30_000)]
    body = json.dumps(tasks).encode()
    assert len(body) > 2 * (1 << 20)
    s3.put_object(Bucket=BUCKET, Key="runs/2024/tasks.json", Body=body)
    read = iter_tasks(f"s3://{BUCKET}/runs/2024/tasks.json")
    assert next(read) == Task("id-000000", {"pad": "é" * 37, "i": 0})
    rest = list(read)
    assert len(rest) == 29_999
    assert rest[-1] == Task("id-029999", {"pad": "é" * 37, "i": 29_999})


def test_yaml(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="t.yml", Body=b"- {task_id: a, data: {x: [1, 2]}}\n")
    assert read_tasks(f"s3://{BUCKET}/t.yml") == [Task("a", {"x": [1, 2]})]


def test_missing_key_and_missing_bucket(s3: Any) -> None:
    message = _error(f"s3://{BUCKET}/nope.json")
    assert message.startswith(
        f"s3://{BUCKET}/nope.json: task file not found (no such object; NoSuchKey"
    )
    message = _error("s3://no-such-bucket-here/tasks.json")
    assert message.startswith(
        "s3://no-such-bucket-here/tasks.json: task file not found (no such bucket; NoSuchBucket"
    )


def test_malformed_content_names_the_url(s3: Any) -> None:
    s3.put_object(
        Bucket=BUCKET,
        Key="bad.json",
        Body=b'[{"task_id": "a", "data": {}}, {"task_id": "a", "data": {}}]',
    )
    assert _error(f"s3://{BUCKET}/bad.json") == (
        f"s3://{BUCKET}/bad.json, task index 1 (line 1): "
        "duplicate task_id 'a' (first used by task index 0)"
    )
    s3.put_object(Bucket=BUCKET, Key="not-a-list.yaml", Body=b"task_id: a\n")
    assert _error(f"s3://{BUCKET}/not-a-list.yaml").startswith(
        f"s3://{BUCKET}/not-a-list.yaml, line 1: expected a list of tasks"
    )


def test_an_archived_object_is_named(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="cold.json", Body=b"[]", StorageClass="GLACIER")
    message = _error(f"s3://{BUCKET}/cold.json")
    assert message.startswith(
        f"s3://{BUCKET}/cold.json: the object is archived (InvalidObjectState"
    )


def _set_auth(endpoint: str, free_actions: str) -> None:
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=free_actions.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},  # a form body would be parsed away
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


@pytest.fixture
def enforced_iam(s3: Any, moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A user who may read only ``allowed.json``; moto checks IAM from here on."""
    import boto3

    iam = boto3.client("iam", endpoint_url=moto_server, region_name="us-east-1")
    iam.create_user(UserName="reader")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{BUCKET}/allowed.json",
            }
        ],
    }
    iam.put_user_policy(UserName="reader", PolicyName="read-one", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    s3.put_object(Bucket=BUCKET, Key="allowed.json", Body=b'[{"task_id": "ok", "data": {}}]')
    s3.put_object(Bucket=BUCKET, Key="secret.json", Body=b"[]")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    _set_auth(moto_server, "0")
    try:
        yield
    finally:
        _set_auth(moto_server, "inf")


@pytest.mark.usefixtures("enforced_iam")
def test_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    assert validate_task_file(f"s3://{BUCKET}/allowed.json") == 1
    message = _error(f"s3://{BUCKET}/secret.json")
    assert message.startswith(f"s3://{BUCKET}/secret.json: access denied (AccessDenied")
    assert "s3:GetObject" in message
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000")
    with pytest.raises(
        CredentialsError,
        match=r"^s3://task-inputs/allowed.json: AWS rejected the credentials \(InvalidAccessKeyId",
    ):
        read_tasks(f"s3://{BUCKET}/allowed.json")


def test_no_credentials_at_all(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    with pytest.raises(CredentialsError, match=r"^s3://b/k\.json: no AWS credentials found"):
        read_tasks("s3://b/k.json")

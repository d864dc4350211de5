"""Task files in Cloud Storage through google-cloud-storage, against a loopback fake of the API."""

from __future__ import annotations

import json

import pytest

from cloud_tasks.adapters.gcp.storage import open_gcs_object
from cloud_tasks.domain.tasks import Task
from cloud_tasks.exceptions import TaskFileError
from cloud_tasks.taskfile import iter_tasks, read_tasks, validate_task_file
from tests.fakes.gcs import FakeGcs

TASKS = [{"task_id": f"g{i}", "data": {"i": i, "name": f"file-{i}.fits"}} for i in range(2000)]


def _error(location: str) -> str:
    with pytest.raises(TaskFileError) as info:
        read_tasks(location)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_json(fake_gcs: FakeGcs) -> None:
    fake_gcs.put("inputs", "jobs/a/tasks.json", json.dumps(TASKS).encode())
    tasks = read_tasks("gs://inputs/jobs/a/tasks.json")
    assert tasks == [Task(t["task_id"], t["data"]) for t in TASKS]
    # Metadata first (the slash in the name encoded), then the bytes.
    paths = [path for _method, path, _query, _headers in fake_gcs.requests]
    assert paths[0] == "/storage/v1/b/inputs/o/jobs%2Fa%2Ftasks.json"
    assert fake_gcs.media_requests()


def test_yaml(fake_gcs: FakeGcs) -> None:
    fake_gcs.put("inputs", "t.yaml", b"- task_id: y\n  data: {when: '2024-01-01'}\n")
    assert read_tasks("gs://inputs/t.yaml") == [Task("y", {"when": "2024-01-01"})]


def test_the_body_is_fetched_in_ranged_chunks_of_one_generation(fake_gcs: FakeGcs) -> None:
    body = json.dumps(TASKS).encode()
    fake_gcs.put("inputs", "big.json", body)
    stream = open_gcs_object("inputs", "big.json", "gs://inputs/big.json", chunk_bytes=4096)
    try:
        first = stream.read(100)
        assert first == body[:100]
        assert len(fake_gcs.media_requests()) == 1  # nothing fetched beyond the first chunk
        rest = b""
        while piece := stream.read(10_000):
            rest += piece
    finally:
        stream.close()
    assert first + rest == body
    ranges = [headers.get("range") for headers in fake_gcs.media_requests()]
    assert len(ranges) >= len(body) // 10_000
    assert all(r and r.startswith("bytes=") for r in ranges)
    generations = {
        q.get("generation", [""])[0] for _m, _p, q, _h in fake_gcs.requests if q.get("alt")
    }
    assert generations == {str(fake_gcs.generations[("inputs", "big.json")])}


def test_missing_object_and_bucket(fake_gcs: FakeGcs) -> None:
    fake_gcs.put("inputs", "other.json", b"[]")
    message = _error("gs://inputs/none.json")
    assert message.startswith("gs://inputs/none.json: task file not found (404: ")
    message = _error("gs://no-bucket/tasks.json")
    assert message.startswith("gs://no-bucket/tasks.json: task file not found (404: ")
    assert "bucket does not exist" in message


def test_forbidden(fake_gcs: FakeGcs) -> None:
    fake_gcs.put("locked", "tasks.json", b"[]")
    fake_gcs.forbidden.add(("locked", None))
    message = _error("gs://locked/tasks.json")
    assert message.startswith("gs://locked/tasks.json: access denied (403: ")
    assert "storage.objects.get" in message


def test_malformed_content_names_the_url_and_line(fake_gcs: FakeGcs) -> None:
    fake_gcs.put(
        "inputs", "bad.json", b'[\n {"task_id": "a", "data": {}},\n {"task_id": "b", "data": []}\n]'
    )
    assert _error("gs://inputs/bad.json") == (
        "gs://inputs/bad.json, task index 1 (line 3): data must be a mapping, got a list"
    )


def test_validate_then_iterate_reads_twice(fake_gcs: FakeGcs) -> None:
    fake_gcs.put("inputs", "t.json", json.dumps(TASKS[:3]).encode())
    assert validate_task_file("gs://inputs/t.json") == 3
    assert [t.task_id for t in iter_tasks("gs://inputs/t.json")] == ["g0", "g1", "g2"]

"""One ``TaskSource`` contract, every adapter: memory, local files, HTTP, S3 on moto's server,
Cloud Storage on the loopback fake.

The bytes come back exactly, in whatever chunks the caller reads; a missing file is a one-line
``TaskFileError`` that names the location as shown; closing is idempotent.
``bootstrap.make_task_source`` picks the adapter of each scheme.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from cloud_tasks.bootstrap import make_task_source
from cloud_tasks.exceptions import TaskFileError
from cloud_tasks.locations import parse_location
from cloud_tasks.ports import TaskSource

BODY = bytes(range(256)) * 12_289  # 3 MiB and change: several chunks of every adapter


@attrs.frozen
class SourceKit:
    """An adapter, how to store a file where it reads, and a location it does not have."""

    source: TaskSource
    put: Callable[[str, bytes], str]
    missing: str


def _memory(_request: pytest.FixtureRequest, _tmp_path: Path) -> SourceKit:
    from cloud_tasks.adapters.memory.tasksource import InMemoryTaskSource

    source = InMemoryTaskSource({})

    def put(name: str, body: bytes) -> str:
        source.files[f"mem/{name}"] = body
        return f"mem/{name}"

    return SourceKit(source, put, "mem/missing.json")


def _local(_request: pytest.FixtureRequest, tmp_path: Path) -> SourceKit:
    def put(name: str, body: bytes) -> str:
        (tmp_path / name).write_bytes(body)
        return str(tmp_path / name)

    return SourceKit(make_task_source(parse_location("x.json")), put, str(tmp_path / "no.json"))


def _http(request: pytest.FixtureRequest, _tmp_path: Path) -> SourceKit:
    server: Any = request.getfixturevalue("httpserver")
    server.expect_request("/missing.json").respond_with_data(b"", status=404)

    def put(name: str, body: bytes) -> str:
        server.expect_request(f"/{name}").respond_with_data(body)
        return str(server.url_for(f"/{name}"))

    missing = str(server.url_for("/missing.json"))
    return SourceKit(make_task_source(parse_location(missing)), put, missing)


def _s3(request: pytest.FixtureRequest, _tmp_path: Path) -> SourceKit:
    import boto3

    endpoint = request.getfixturevalue("moto_server")
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="contract")

    def put(name: str, body: bytes) -> str:
        client.put_object(Bucket="contract", Key=name, Body=body)
        return f"s3://contract/{name}"

    missing = "s3://contract/missing.json"
    return SourceKit(make_task_source(parse_location(missing)), put, missing)


def _gcs(request: pytest.FixtureRequest, _tmp_path: Path) -> SourceKit:
    from cloud_tasks.adapters.gcp.storage import GcsTaskSource

    fake = request.getfixturevalue("fake_gcs")

    def put(name: str, body: bytes) -> str:
        fake.put("contract", name, body)
        return f"gs://contract/{name}"

    missing = "gs://contract/missing.json"
    fake.put("contract", "placeholder", b"")  # the bucket exists; the object does not
    # Small ranged requests, so the body needs many of them.
    return SourceKit(GcsTaskSource(chunk_bytes=256 * 1024), put, missing)


KITS = {"memory": _memory, "local": _local, "http": _http, "s3": _s3, "gcs": _gcs}


@pytest.fixture(params=list(KITS))
def kit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SourceKit]:
    yield KITS[request.param](request, tmp_path)


def test_the_bytes_come_back_exactly_in_any_chunks(kit: SourceKit) -> None:
    location = parse_location(kit.put("tasks.json", BODY))
    stream = kit.source.open(location)
    try:
        assert stream.read(7) == BODY[:7]
        pieces = [BODY[:7]]
        while piece := stream.read(100_003):
            pieces.append(piece)
    finally:
        stream.close()
    stream.close()  # idempotent
    assert b"".join(pieces) == BODY


def test_an_empty_file_is_empty(kit: SourceKit) -> None:
    with kit.source.open(parse_location(kit.put("empty.json", b""))) as stream:
        assert stream.read() == b""


def test_a_missing_file_is_one_line_naming_the_location(kit: SourceKit) -> None:
    location = parse_location(kit.missing)
    with pytest.raises(TaskFileError) as info:
        kit.source.open(location)
    message = str(info.value)
    assert message.startswith(f"{location.display}: task file not found"), message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("location", "adapter"),
    [
        ("tasks.json", "LocalTaskSource"),
        ("file:///data/tasks.json", "LocalTaskSource"),
        ("s3://bucket/tasks.json", "S3TaskSource"),
        ("gs://bucket/tasks.json", "GcsTaskSource"),
        ("https://data.example/tasks.json", "HttpTaskSource"),
        ("HTTP://data.example/tasks.json", "HttpTaskSource"),
    ],
)
def test_the_composition_root_picks_the_adapter_of_each_scheme(location: str, adapter: str) -> None:
    assert type(make_task_source(parse_location(location))).__name__ == adapter

"""Parsing task-file locations: schemes, extensions, what messages show, malformed locations."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_tasks.exceptions import TaskFileError
from cloud_tasks.locations import Location, is_remote, parse_location
from cloud_tasks.taskfile import iter_tasks


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s3://b/dir/tasks.json", Location("s3", "s3://b/dir/tasks.json", "b", "dir/tasks.json")),
        ("gs://b/x/y.YAML", Location("gs", "gs://b/x/y.YAML", "b", "x/y.YAML")),
        ("https://host.test/a/t.yml?sig=1", Location("https", "https://host.test/a/t.yml?sig=1")),
        ("tasks.json", Location("file", "tasks.json")),
        ("file:///tmp/my%20tasks.json", Location("file", "/tmp/my tasks.json")),
    ],
)  # fmt: skip
def test_parse(text: str, expected: Location) -> None:
    assert parse_location(text) == expected


def test_a_path_object_is_always_local() -> None:
    assert parse_location(Path("s3:/odd/name.json")) == Location("file", "s3:/odd/name.json")
    assert not is_remote(Path("x.json"))
    assert is_remote("s3://b/k.json") and is_remote("HTTPS://h/t.json")
    assert not is_remote("dir/t.json")


@pytest.mark.parametrize(
    ("text", "suffix"),
    [
        ("s3://b/tasks.JSON", ".json"),
        ("gs://b/some.dir/tasks.yaml", ".yaml"),
        ("https://h.test/t.yml?X-Amz-Signature=abc.json", ".yml"),
        ("https://h.test/t%2Ejson", ".json"),
        ("https://h.test/", ""),
    ],
)
def test_the_extension_comes_from_the_object_name_or_url_path(text: str, suffix: str) -> None:
    assert parse_location(text).suffix == suffix


def test_display_hides_a_query_string_and_a_password() -> None:
    shown = parse_location("https://user:secret@h.test/t.json?X-Amz-Signature=abc").display
    assert shown == "https://h.test/t.json?…"
    assert "secret" not in shown and "abc" not in shown
    assert parse_location("s3://b/k.json").display == "s3://b/k.json"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s3://bucket-only", "malformed s3:// location"),
        ("s3://bucket/", "malformed s3:// location"),
        ("gs:///object.json", "malformed gs:// location"),
        ("s3://bucket/dir/", "malformed s3:// location"),
        ("https:///t.json", "malformed URL: no host name"),
        ("ftp://h.test/t.json", "unsupported task file location 'ftp://'"),
    ],
)
def test_malformed_locations_are_named(text: str, expected: str) -> None:
    with pytest.raises(TaskFileError) as info:
        list(iter_tasks(text))
    message = str(info.value)
    assert message.startswith(f"{text}: ")
    assert expected in message


def test_an_unsupported_extension_is_caught_before_any_request() -> None:
    # Nothing listens on port 9; the extension check must come first.
    with pytest.raises(TaskFileError, match=r"^http://127\.0\.0\.1:9/tasks\.csv: unsupported"):
        iter_tasks("http://127.0.0.1:9/tasks.csv")

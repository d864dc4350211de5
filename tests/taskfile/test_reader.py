"""The task-file reader: valid forms, streaming across chunks, and every error's location."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from cloud_tasks.domain.tasks import SQS_MAX_MESSAGE_BYTES, Task
from cloud_tasks.exceptions import TaskFileError
from cloud_tasks.taskfile import (
    find_oversized,
    iter_tasks,
    read_tasks,
    validate_task_file,
)


def _write(name: str, text: str) -> str:
    Path(name).write_text(text, encoding="utf-8")
    return name


def _error(name: str, text: str) -> str:
    _write(name, text)
    with pytest.raises(TaskFileError) as info:
        read_tasks(name)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- valid files -------------------------------------------------------------------------


def test_json_quickstart_form() -> None:
    path = _write(
        "t.json",
        '[\n  {\n    "task_id": "task-1",\n    "data": {\n      "key1": "value1",\n'
        '      "key2": "value2"\n    }\n  }\n]\n',
    )
    assert read_tasks(path) == [Task("task-1", {"key1": "value1", "key2": "value2"})]


@pytest.mark.parametrize(
    "text",
    [
        "- task_id: task-1\n  data:\n    key1: value1\n    key2: value2\n",
        "# comment\n---\n- {task_id: task-1, data: {key1: value1, key2: value2}}\n...\n",
        "[{task_id: task-1, data: {key1: value1, key2: value2}}]",
        '- "task_id": "task-1"\n  "data": {"key1": "value1", "key2": "value2"}\n',
    ],
)
def test_yaml_of_any_form(text: str) -> None:
    path = _write("t.yaml", text)
    assert read_tasks(path) == [Task("task-1", {"key1": "value1", "key2": "value2"})]


def test_yml_extension_and_upper_case() -> None:
    assert len(read_tasks(_write("t.YML", "- {task_id: a, data: {}}\n"))) == 1
    assert len(read_tasks(_write("t.JSON", '[{"task_id": "a", "data": {}}]'))) == 1


def test_empty_list_is_zero_tasks() -> None:
    assert validate_task_file(_write("t.json", "[ ]")) == 0
    assert validate_task_file(_write("t.yaml", "[]\n")) == 0


def test_yaml_anchors_are_shared_between_tasks() -> None:
    text = "- task_id: a\n  data: &common {x: 1}\n- task_id: b\n  data: *common\n"
    tasks = read_tasks(_write("t.yaml", text))
    assert [t.data for t in tasks] == [{"x": 1}, {"x": 1}]


def test_utf8_bom_and_crlf_are_accepted() -> None:
    Path("t.json").write_bytes(b'\xef\xbb\xbf[\r\n{"task_id": "\xc3\xa9", "data": {}}\r\n]\r\n')
    assert read_tasks("t.json") == [Task("\u00e9", {})]


def test_streaming_matches_json_load_across_chunk_boundaries() -> None:
    rng = random.Random(7)
    records = []
    for index in range(3000):
        size = rng.choice([0, 10, 100, 2000])
        data = {"s": 'é\\"\n' * size, "n": rng.random() * 10 ** rng.randint(0, 30), "i": index}
        records.append({"task_id": f"t{index}", "data": data})
    # One task larger than two read chunks, and numbers and literals everywhere.
    records.append({"task_id": "huge", "data": {"blob": "x" * (3 << 20), "t": True, "f": None}})
    Path("t.json").write_text(json.dumps(records, indent=rng.choice([None, 1])), "utf-8")
    tasks = read_tasks("t.json")
    assert [(t.task_id, t.data) for t in tasks] == [(r["task_id"], r["data"]) for r in records]


def test_iter_tasks_is_lazy() -> None:
    _write("t.json", '[{"task_id": "a", "data": {}}, {"task_id": "a", "data": {}}]')
    tasks = iter_tasks("t.json")
    assert next(tasks) == Task("a", {})
    with pytest.raises(TaskFileError, match="duplicate"):
        next(tasks)


def test_validate_counts() -> None:
    text = json.dumps([{"task_id": str(i), "data": {}} for i in range(1234)])
    assert validate_task_file(_write("t.json", text)) == 1234


def test_find_oversized_names_the_tasks_in_order() -> None:
    tasks = [
        Task("small", {"a": 1}),
        Task("big", {"a": "x" * SQS_MAX_MESSAGE_BYTES}),
        Task("edge", {}),
    ]
    edge_limit = len('{"task_id":"edge","data":{},"failures":0}')
    assert find_oversized(tasks, SQS_MAX_MESSAGE_BYTES) == ["big"]
    assert find_oversized([tasks[2]], edge_limit) == []
    assert find_oversized([tasks[2]], edge_limit - 1) == ["edge"]


# --- every malformed case names file, task index and line --------------------------------

JSON_CASES = [
    ("", "t.json: the task file is empty; expected a JSON list of tasks"),
    (" \n\t", "t.json: the task file is empty"),
    ('{"task_id": "a"}', "t.json, line 1, column 1: expected a JSON list of tasks at the top"),
    (
        "\n\n  5",
        "t.json, line 3, column 3: expected a JSON list of tasks at the top level, got '5'",
    ),
    (
        '[\n{"task_id": "a", "data": {}},\n{"task_id": "a", "data": {}}\n]',
        "t.json, task index 1 (line 3): duplicate task_id 'a' (first used by task index 0)",
    ),
    ('[\n{"task_id": "a"}]', "t.json, task index 0 (line 2): missing key 'data'"),
    ('[\n{"data": {}}]', "t.json, task index 0 (line 2): missing key 'task_id'"),
    (
        '[{"task_id": "a", "dat": {}}]',
        "t.json, task index 0 (line 1): unknown key 'dat'; did you mean 'data'?",
    ),
    (
        '[{"task_id": "a", "data": {}, "x": 1}]',
        "t.json, task index 0 (line 1): unknown key 'x' (a task has only task_id and data)",
    ),
    (
        '[{"task_id": 5, "data": {}}]',
        "t.json, task index 0 (line 1): task_id must be a string, got the number 5",
    ),
    ('[{"task_id": "", "data": {}}]', "t.json, task index 0 (line 1): task_id must not be empty"),
    (
        '[{"task_id": "a", "data": [1]}]',
        "t.json, task index 0 (line 1): data must be a mapping, got a list",
    ),
    (
        '[{"task_id": "a", "data": null}]',
        "t.json, task index 0 (line 1): data must be a mapping, got null",
    ),
    (
        '[{"task_id": "a", "data": {}},\n "b"]',
        "t.json, task index 1 (line 2): expected a mapping with task_id and data, got the "
        "string 'b'",
    ),
    (
        '[\n{"task_id": "a", "data": {}},\n{"task_id": "b" "data": {}}]',
        "t.json, task index 1 (line 3, column 17): invalid JSON: Expecting ',' delimiter",
    ),
    (
        '[\n{"task_id": "a", "data": {}},\n{"task_id": "b", ',
        "t.json, task index 1 (line 3, column 18): invalid JSON: Expecting property name",
    ),
    (
        '[{"task_id": "a", "data": {}}',
        "t.json, task index 0 (line 1, column 30): the file ends before the closing ']'",
    ),
    (
        '[{"task_id": "a", "data": {}},]',
        "t.json, task index 0 (line 1, column 31): trailing comma before ']'",
    ),
    (
        '[{"task_id": "a", "data": {}} {"task_id": "b", "data": {}}]',
        "t.json, task index 0 (line 1, column 31): expected ',' or ']' after the task, got '{'",
    ),
    (
        '[{"task_id": "a", "data": {}}]\n[]',
        "t.json, line 2, column 1: unexpected text after the closing ']'",
    ),
    (
        '[{"task_id": "a", "data": {"s": "abc',
        "t.json, task index 0 (line 1, column 33): invalid JSON: Unterminated string",
    ),
    ("[" + "[" * 100_000, "t.json, task index 0 (line 1, column 2): invalid JSON: nested too"),
]


@pytest.mark.parametrize(("text", "expected"), JSON_CASES)
def test_bad_json_task_file(text: str, expected: str) -> None:
    assert _error("t.json", text).startswith(expected)


YAML_CASES = [
    ("", "t.yaml: the task file is empty; expected a YAML list of tasks"),
    ("# only a comment\n", "t.yaml: the task file is empty"),
    ("a: 1\n", "t.yaml, line 1: expected a list of tasks at the top level, got a mapping"),
    ("hello\n", "t.yaml, line 1: expected a list of tasks at the top level, got a single value"),
    (
        "- task_id: a\n  data: {}\n- task_id: 12\n  data: {}\n",
        "t.yaml, task index 1 (line 3): task_id must be a string, got the number 12; quote it",
    ),
    (
        "- task_id: a\n  data: {}\n- task_id: a\n  data: {}\n",
        "t.yaml, task index 1 (line 3): duplicate task_id 'a' (first used by task index 0)",
    ),
    ("- task_id: a\n", "t.yaml, task index 0 (line 1): missing key 'data'"),
    ("- task_id: a\n  data:\n", "t.yaml, task index 0 (line 1): data must be a mapping, got null"),
    (
        "- task_id: a\n  data: {when: 2024-01-01}\n",
        "t.yaml, task index 0 (line 1): data.when: 2024-01-01 is a date, which JSON cannot hold",
    ),
    (
        "- task_id: a\n  data: {list: [1, !!binary aGk=]}\n",
        "t.yaml, task index 0 (line 1): data.list[1]: b'hi' is a bytes, which JSON cannot hold",
    ),
    (
        "- task_id: a\n  data: {1: x}\n",
        "t.yaml, task index 0 (line 1): data: key 1 is not a string; quote it",
    ),
    ("- task_id: a\n  data: {\n", "t.yaml, line 3, column 1: invalid YAML: did not find"),
    ("- a\n- b\n---\n- c\n", "t.yaml, line 3, column 1: invalid YAML: but found another document"),
    (
        "- task_id: a\n  data: !!python/object:os.system {}\n",
        "t.yaml, task index 0 (line 1): line 2, column 9: invalid YAML: could not determine",
    ),
]


@pytest.mark.parametrize(("text", "expected"), YAML_CASES)
def test_bad_yaml_task_file(text: str, expected: str) -> None:
    assert _error("t.yaml", text).startswith(expected)


def test_unsupported_extension_is_refused_at_once() -> None:
    _write("t.csv", "task_id,data\n")
    with pytest.raises(TaskFileError, match=r"^t\.csv: unsupported task file extension '\.csv'"):
        iter_tasks("t.csv")
    with pytest.raises(TaskFileError, match=r"^tasks: unsupported task file extension '\(none\)'"):
        iter_tasks("tasks")


def test_missing_file_is_refused_at_once() -> None:
    with pytest.raises(TaskFileError, match=r"^nope\.json: task file not found$"):
        iter_tasks("nope.json")


def test_directory_is_refused() -> None:
    Path("d.json").mkdir()
    with pytest.raises(TaskFileError, match=r"^d\.json: is a directory, not a task file; give "):
        iter_tasks("d.json")


@pytest.mark.parametrize("name", ["t.json", "t.yaml"])
def test_binary_garbage_is_reported_not_crashed(name: str) -> None:
    rng = random.Random(3)
    gzip_like = b"\x1f\x8b\x08\x00" + bytes(rng.randrange(256) for _ in range(4096))
    Path(name).write_bytes(gzip_like)
    with pytest.raises(TaskFileError) as info:
        read_tasks(name)
    message = str(info.value)
    assert message.startswith(name + ": ")
    assert "binary file?" in message or "UTF-8" in message


def test_invalid_utf8_after_valid_tasks_names_the_offset() -> None:
    Path("t.json").write_bytes(b'[{"task_id": "a", "data": {}},\n{"task_id": "\xff", "data": {}}]')
    with pytest.raises(
        TaskFileError, match=r"^t\.json: not UTF-8 text \(bad byte near offset 44\)"
    ):
        read_tasks("t.json")


def test_position_of_an_error_far_into_a_long_single_line() -> None:
    body = ", ".join(f'{{"task_id": "t{i}", "data": {{"x": "{"y" * 50}"}}}}' for i in range(40000))
    message = _error("t.json", f"[{body}, @]")
    column = len(f"[{body}, ") + 1
    assert message == (
        f"t.json, task index 40000 (line 1, column {column}): invalid JSON: Expecting value"
    )

"""docs/task-files.md: every example file loads, the Python example runs, errors are real."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cloud_tasks.exceptions import TaskFileError
from cloud_tasks.taskfile import read_tasks

DOC = Path(__file__).resolve().parents[2] / "docs" / "task-files.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(), re.S | re.M)


def test_json_example_loads() -> None:
    (block,) = _blocks("json")
    Path("tasks.json").write_text(block)
    tasks = read_tasks("tasks.json")
    assert [t.task_id for t in tasks] == ["image-0001", "image-0002", "calibrate"]


def test_yaml_example_loads() -> None:
    (block,) = _blocks("yaml")
    Path("tasks.yaml").write_text(block)
    tasks = read_tasks("tasks.yaml")
    assert [t.task_id for t in tasks] == ["image-0001", "image-0002", "0003"]
    assert tasks[1].data == {"band": 3, "flags": ["calibrate", "stack"]}


def test_python_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    (code,) = _blocks("python")
    Path("tasks.json").write_text(_blocks("json")[0])
    exec(compile(code, str(DOC), "exec"), {})
    assert "calibrate {}" in capsys.readouterr().out


_DIRECTORY = "<a directory>"

# Files that produce each documented message (the table's rows, in order).
_ERROR_FILES = [
    ("tasks.json", '{"task_id": "a"}'),
    (
        "tasks.json",
        '[\n{"task_id": "a", "data": {}},\n{"task_id": "b", "data": {}},\n'
        '{"task_id": "c", "data": {}},\n{"task_id": "d", "data": {}},\n{"task_id": "e"}]',
    ),
    ("tasks.yaml", "- task_id: a\n  dat: {}\n"),
    (
        "tasks.yaml",
        "- {task_id: a, data: {}}\n- {task_id: b, data: {}}\n\n\n- task_id: 12\n  data: {}\n",
    ),
    ("tasks.json", '[\n{"task_id": "a", "data": [1]}]'),
    (
        "tasks.json",
        "[\n"
        + ",\n".join(f'{{"task_id": "image-000{i}", "data": {{}}}}' for i in range(1, 8))
        + ',\n{"task_id": "image-0001", "data": {}}]',
    ),
    ("tasks.json", '[\n{"task_id": "a", "data": {}},\n{"task_id": "b" "data": {}}]'),
    ("tasks.yaml", "- task_id: a\n  data: {\n"),
    ("tasks.json", ""),
    ("tasks.txt", ""),
    (None, None),
    ("tasks.json", None),
    ("tasks.json", '[{"task_id": "a", "data": {"x": NaN}}]'),
    ("tasks.json", '[{"task_id": "a", "data": {"x": 1, "x": 2}}]'),
    ("tasks.json", _DIRECTORY),
]


def test_documented_error_messages_are_real() -> None:
    rows = re.findall(r"^\| [^|]+ \| `(.*)` \|$", DOC.read_text(), re.M)
    assert len(rows) == len(_ERROR_FILES)
    for expected, (name, text) in zip(rows, _ERROR_FILES, strict=True):
        for old in Path().glob("tasks.*"):
            old.unlink()
        if text == _DIRECTORY:
            Path(name or "tasks.json").mkdir()
        elif name is not None and text is not None:
            Path(name).write_text(text)
        elif name is not None:
            Path(name).write_bytes(b"[" + b" " * 1042 + b"\xff]")
        with pytest.raises(TaskFileError) as info:
            read_tasks(name or "tasks.json")
        assert str(info.value) == expected

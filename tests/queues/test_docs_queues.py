"""docs/queues.md: the Python example runs and the local commands work as shown."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from cloud_tasks.entrypoints.cli.main import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "queues.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(), re.S | re.M)


@pytest.fixture(autouse=True)
def _private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RMS_CLOUD_TASKS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("RMS_CLOUD_TASKS_QUEUE_DIR", raising=False)


def test_python_example_prints_what_its_comments_say(capsys: pytest.CaptureFixture[str]) -> None:
    (code,) = _blocks("python")
    exec(compile(code, str(DOC), "exec"), {})
    assert capsys.readouterr().out == "t1 1 1\n0\n"
    expected = re.findall(r"# (.+)$", code, re.M)
    assert expected == ["t1 1 1", "0"]


def test_local_commands_run_as_documented(capsys: pytest.CaptureFixture[str]) -> None:
    tasks = [{"task_id": f"t{i}", "data": {"i": i}} for i in range(3)]
    Path("tasks.json").write_text(json.dumps(tasks), encoding="utf-8")
    commands = [
        shlex.split(line.removeprefix("$ "))
        for block in _blocks("console")
        for line in block.splitlines()
        if line.startswith("$ cloud_tasks") and "--provider local" in line
    ]
    assert len(commands) >= 6
    outputs: dict[str, str] = {}
    for argv in commands:
        try:
            main(argv[1:])
        except SystemExit as exc:
            pytest.fail(f"{shlex.join(argv)} exited {exc.code}: {capsys.readouterr().err}")
        outputs.setdefault(shlex.join(argv), capsys.readouterr().out)
    shown = json.loads(
        outputs["cloud_tasks show_queue --provider local --job-id my-job --format json"]
    )
    assert shown["queue"] == "my-job"
    assert shown["depth"] == 3
    detail = outputs["cloud_tasks show_queue --provider local --job-id my-job --detail"]
    assert '"task_id": "t0"' in detail

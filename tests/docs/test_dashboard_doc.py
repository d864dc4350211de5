"""docs/dashboard.md: its configuration loads, its commands run, its JSON has the real keys."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from cloud_tasks.adapters.local.taskdb import TaskDatabase
from cloud_tasks.config import load_config
from cloud_tasks.domain.notifications import end_notice
from cloud_tasks.domain.tasks import Task
from cloud_tasks.entrypoints.cli.main import cli
from cloud_tasks.service_layer.results import RESULT_KEYS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "dashboard.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_screenshots_are_there_and_are_pngs() -> None:
    for name in ("dashboard.png", "dashboard-spot.png"):
        assert f"](images/{name})" in DOC.read_text()
        assert (ROOT / "docs" / "images" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_yaml_example_loads(tmp_path: Path) -> None:
    blocks = _blocks("yaml")
    assert len(blocks) == 2
    for block in blocks:
        (tmp_path / "myconfig.yml").write_text(block)
        notify = load_config(tmp_path / "myconfig.yml").run.notify
        assert notify is not None and notify.webhook is not None


def test_the_json_examples_have_the_real_keys() -> None:
    record, notification = (json.loads(block) for block in _blocks("json"))
    assert tuple(record) == RESULT_KEYS
    real = end_notice(
        job_id="my-job",
        status="completed",
        message="",
        completed=998,
        failed=2,
        total=1000,
        spent_usd=3.12,
        max_total_cost_usd=50.0,
    ).body
    assert set(notification) == set(real)
    assert notification["text"] == real["text"]


def test_the_results_commands_run(tmp_path: Path) -> None:
    # The test runs in tmp_path (tests/conftest.py): the documented relative paths work.
    Path("myconfig.yml").write_text("local:\n  job_id: my-job\n")
    with TaskDatabase("my-job.db") as db:
        db.add_tasks([Task("t1"), Task("t2")], 0.0)
    commands = [
        line.split(" > ")[0]
        for block in _blocks("bash")
        for line in block.splitlines()
        if line.startswith("cloud_tasks results")
    ]
    assert len(commands) == 3
    for command in commands:
        result = CliRunner().invoke(cli, shlex.split(command)[1:])
        assert result.exit_code == 0, (command, result.output)
    assert (tmp_path / "results.csv").read_text().startswith("task_id,state,")

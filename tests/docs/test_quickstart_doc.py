"""docs/quickstart.md: every code block in it runs as written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from cloud_tasks.config import load_config
from cloud_tasks.entrypoints.cli.main import cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "quickstart.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_worker_block_processes_the_task_file_block(tmp_path: Path) -> None:
    (worker,) = _blocks("python")
    (tasks,) = _blocks("json")
    (tmp_path / "my_worker.py").write_text(worker)
    (tmp_path / "my_tasks.json").write_text(tasks)
    for extra in ([], ["--num-simultaneous-tasks", "10"]):
        log = tmp_path / "events.log"
        log.unlink(missing_ok=True)
        result = subprocess.run(
            [sys.executable, "my_worker.py", "--tasks", "my_tasks.json", *extra],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        events = [json.loads(line) for line in log.read_text().splitlines()]
        results = {e["task_id"]: e["result"] for e in events if e["event_type"] == "task_completed"}
        assert results == {"task-1": {"sum": 2}, "task-2": {"sum": 6}}


def test_config_blocks_load(tmp_path: Path) -> None:
    local, gcp = _blocks("yaml")
    (tmp_path / "startup_script.sh").write_text("#!/bin/bash\npython3 my_worker.py\n")
    (tmp_path / "config.yml").write_text(local)
    (tmp_path / "myconfig.yml").write_text(gcp)
    local_config = load_config(tmp_path / "config.yml")
    assert local_config.provider == "local"
    assert local_config.run.limits.max_instances == 2
    gcp_config = load_config(tmp_path / "myconfig.yml")
    assert gcp_config.provider == "gcp"
    assert gcp_config.run.constraints.instance_types == ("n2-",)


def test_offline_commands_of_step_5(tmp_path: Path) -> None:
    _local, gcp = _blocks("yaml")
    (tmp_path / "startup_script.sh").write_text("#!/bin/bash\npython3 my_worker.py\n")
    (tmp_path / "myconfig.yml").write_text(gcp)
    (tmp_path / "my_tasks.json").write_text(_blocks("json")[0])
    runner = CliRunner()
    listing = runner.invoke(
        cli,
        [
            "list_instance_types",
            "--config",
            str(tmp_path / "myconfig.yml"),
            "--provider",
            "memory",
            "--format",
            "json",
        ],
    )
    assert listing.exit_code == 0, listing.output
    offers = json.loads(listing.output)
    assert offers and all(o["name"].startswith("n2-") and o["vcpus"] <= 8 for o in offers)
    commands = [line for block in _blocks("bash") for line in block.splitlines()]
    assert any("--dry-run" in line for line in commands)
    plan = runner.invoke(
        cli,
        [
            "run",
            "--config",
            str(tmp_path / "myconfig.yml"),
            "--tasks",
            str(tmp_path / "my_tasks.json"),
            "--provider",
            "memory",
            "--dry-run",
            "--task-duration",
            "60",
        ],
    )
    assert plan.exit_code == 0, plan.output
    assert offers[0]["name"] in plan.output

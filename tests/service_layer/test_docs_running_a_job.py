"""The examples in docs/running-a-job.md are the real ones: loaded, compared and checked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from cloud_tasks.adapters.local.taskdb import TaskDatabase
from cloud_tasks.config import load_config
from cloud_tasks.domain.tasks import Task
from cloud_tasks.service_layer.report import build_report

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "running-a-job.md"
EXAMPLE = ROOT / "examples" / "local"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_yaml_example_is_the_example_config_and_loads(tmp_path: Path) -> None:
    (block,) = _blocks("yaml")
    assert yaml.safe_load(block) == yaml.safe_load((EXAMPLE / "config.yml").read_text())
    (tmp_path / "config.yml").write_text(block)
    (tmp_path / "startup_script.sh").write_text((EXAMPLE / "startup_script.sh").read_text())
    config = load_config(tmp_path / "config.yml")
    assert config.provider == "local"
    assert config.provider_options.job_id == "example-local"
    assert config.run.startup_script is not None and "my_worker.py" in config.run.startup_script


def test_startup_script_shown_is_the_example_one() -> None:
    shown = next(b for b in _blocks("bash") if b.startswith("#!/bin/bash"))
    real = [
        line
        for line in (EXAMPLE / "startup_script.sh").read_text().splitlines()
        if line and not line.startswith("# ")
    ]
    assert shown.strip().splitlines() == real


def test_status_json_example_has_the_real_keys(tmp_path: Path) -> None:
    (block,) = _blocks("json")
    shown = json.loads(block)
    with TaskDatabase(tmp_path / "x.db") as db:
        db.add_tasks([Task("a")], now=0.0)
        real = build_report(db, 1.0, job_id="my-job").to_dict()
    assert set(shown) <= set(real)
    assert set(shown["tasks"]) == set(real["tasks"])

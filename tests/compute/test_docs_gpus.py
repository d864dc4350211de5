"""docs/gpus.md: the configuration loads and selects a GPU type, the command runs as written,
and the worker example runs."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from cloud_tasks.config import load_config
from cloud_tasks.domain.selection import select_instance_type
from cloud_tasks.entrypoints.cli.main import cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "gpus.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_yaml_example_selects_a_gpu_type_with_one_slot_per_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (block,) = _blocks("yaml")
    Path("gpu.yml").write_text(block)
    config = load_config("gpu.yml", provider_override="memory", cli_overrides={})
    constraints = config.run.constraints
    assert constraints.gpu_type == ("t4", "l4", "a10g") and constraints.gpus_per_task == 1
    from cloud_tasks.adapters.memory.catalog import bundled_catalog

    offers = [o for _p, o in bundled_catalog("aws").offers if o.region == "us-east-1"]
    chosen = select_instance_type(offers, constraints)
    assert chosen.offer.gpu_type in ("nvidia-t4", "nvidia-l4", "nvidia-a10g")
    assert chosen.tasks_per_instance == chosen.offer.gpus


def test_console_example_runs_and_json_has_the_gpu_keys() -> None:
    (block,) = _blocks("console")
    command = block.strip().removeprefix("$ ")
    args = shlex.split(command)[1:]
    table = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert table.exit_code == 0, table.output
    assert "GPUs" in table.output and "nvidia-t4" in table.output
    result = CliRunner().invoke(cli, [*args, "--format", "json"], catch_exceptions=False)
    records = json.loads(result.output)
    assert len(records) == 3
    for record in records:
        assert record["gpu_type"] == "nvidia-t4" and record["gpus"] >= 1
        assert record["gpu_memory_gib"] == 16.0
        assert record["tasks_per_instance"] == record["gpus"]


def test_python_example_runs() -> None:
    (block,) = _blocks("python")
    exec(compile(block, str(DOC), "exec"), {"__name__": "docs_gpus_example"})

"""docs/running-a-job.md, speculative re-runs: the simulate example runs as written and the
copies shorten the job without raising its cost past the cap."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from cloud_tasks.entrypoints.cli.main import cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "running-a-job.md"


def test_simulate_example_with_and_without_speculation() -> None:
    (block,) = re.findall(r"```console\n(.*?)```", DOC.read_text(), flags=re.S)
    argv = shlex.split(block.strip().removeprefix("$ "))
    assert argv[:2] == ["cloud_tasks", "simulate"]
    shown = CliRunner().invoke(cli, argv[1:], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert "stragglers started again" in shown.output

    as_json = [*argv[1:], "--format", "json"]
    with_copies = json.loads(CliRunner().invoke(cli, as_json, catch_exceptions=False).output)
    i = as_json.index("--speculative-after")
    without = json.loads(
        CliRunner().invoke(cli, as_json[:i] + as_json[i + 2 :], catch_exceptions=False).output
    )
    assert with_copies["completed"] == without["completed"] == 3000
    assert with_copies["speculative_runs"] > 0 and without["speculative_runs"] == 0
    assert with_copies["makespan_s"] < 0.9 * without["makespan_s"]
    assert with_copies["cost_usd"] <= 1.05 * without["cost_usd"]

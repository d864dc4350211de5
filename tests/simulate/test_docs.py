"""docs/simulate.md: the configuration loads, every command runs, the shown output is real."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from cloud_tasks.entrypoints.cli.main import cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "simulate.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(), re.S | re.M)


def test_every_command_runs_and_the_example_output_is_what_it_prints() -> None:
    (config,) = _blocks("yaml")
    Path("myconfig.yml").write_text(config)
    Path("durations.txt").write_text("12.5\n30\n# a comment\n47.25\n")
    (outcomes,) = _blocks("txt")
    Path("outcomes.txt").write_text(outcomes)
    commands = [line for block in _blocks("bash") for line in block.splitlines() if line.strip()]
    assert len(commands) == 4
    outputs = []
    for command in commands:
        argv = shlex.split(command)
        assert argv[:2] == ["cloud_tasks", "simulate"]
        result = CliRunner().invoke(cli, argv[1:], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        outputs.append(result.stdout)
    shown, failures = _blocks("text")
    assert outputs[0] == shown
    assert outputs[3] == failures
    data = json.loads(outputs[1])
    keys = re.search(r"Keys: (.*?)\. Times", DOC.read_text(), re.S)
    assert keys is not None
    documented = re.findall(r"`(\w+)`", keys.group(1))
    assert documented == list(data)
    assert "3 measured durations from durations.txt" in outputs[2]

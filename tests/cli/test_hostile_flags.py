"""Hostile numbers on the command line: one short line, nothing created, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_tasks.entrypoints.cli.main import main

CONFIG = 'provider: local\nlocal:\n  job_id: hostile\n  startup_script: "exec true"\n'


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        # islice() refused it with a traceback.
        (["load_queue", "--start-task", "9" * 27], "--start-task': must be from 0 to"),
        (["load_queue", "--limit", "-1"], "--limit': must not be negative"),
        (["load_queue", "--limit", "9" * 5000], "a number of 5000 digits is out of range"),
        (["run", "--max-instances", "9" * 5000], "a number of 5000 digits is out of range"),
        (["run", "--max-runtime", "x" * 5000], "is not a valid float"),
        (["run", "--max-runtime", "nan"], "--max-runtime: expected a finite number"),
        (["run", "--max-runtime", "2160000"], "--max-runtime: must be greater than 0 and at"),
        (["run", "--cpus-per-task", "1e-300"], "--cpus-per-task: must be from 0.01 to"),
    ],
)
def test_hostile_numbers_are_one_short_line(
    args: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("c.yml").write_text(CONFIG)
    Path("tasks.json").write_text('[{"task_id": "a", "data": {}}]')
    before = sorted(p.name for p in Path().iterdir())
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--config", "c.yml", "--tasks", "tasks.json"])
    assert exit_info.value.code in (1, 2)  # a handled error, or a usage error
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if "Error" in line]
    assert len(errors) == 1 and fragment in errors[0] and len(errors[0]) < 200, stderr
    assert sorted(p.name for p in Path().iterdir()) == before  # nothing created

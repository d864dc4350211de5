"""docs/quickstart.md: every command in it runs exactly as written, on a machine with no cloud
account (no credentials anywhere, metadata services unreachable; see ``tests/accounts.py``).

The files the commands use are the doc's own blocks: the Python block is ``my_worker.py``, the
JSON block ``my_tasks.json``, the YAML blocks ``config.yml`` and ``myconfig.yml``; the startup
script is the one of ``examples/local/``, which the doc points to. ``python3`` and
``cloud_tasks`` resolve to the interpreter running the suite.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cloud_tasks.config import load_config
from tests.accounts import no_account_env

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "quickstart.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def _commands() -> list[str]:
    lines = [line.strip() for block in _blocks("bash") for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _project(directory: Path) -> dict[str, str]:
    """The doc's files in ``directory`` and the environment its commands run in."""
    (worker,) = _blocks("python")
    (tasks,) = _blocks("json")
    local, cloud = _blocks("yaml")
    (directory / "my_worker.py").write_text(worker)
    (directory / "my_tasks.json").write_text(tasks)
    (directory / "config.yml").write_text(local)
    (directory / "myconfig.yml").write_text(cloud)
    shutil.copy(ROOT / "examples" / "local" / "startup_script.sh", directory)
    bin_dir = directory / ".bin"
    bin_dir.mkdir()
    for name, target in (("python3", ""), ("cloud_tasks", " -m cloud_tasks")):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)}{target} "$@"\n')
        shim.chmod(0o755)
    env = no_account_env(directory / ".account")
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
    return env


def _run(line: str, directory: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", line],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_install_lines_name_extras_that_exist() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    installs = [line for line in _commands() if line.startswith("pip install")]
    assert installs
    for line in installs:
        for extra in re.findall(r"\[(\w+)\]", line):
            assert extra in extras, line


def test_every_command_runs_as_written_without_an_account(tmp_path: Path) -> None:
    env = _project(tmp_path)
    commands = [line for line in _commands() if not line.startswith("pip install")]
    assert any("--dry-run" in line for line in commands)
    outputs: dict[str, subprocess.CompletedProcess[str]] = {}
    for line in commands:
        proc = _run(line, tmp_path, env)
        assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{proc.stderr}"
        outputs[line] = proc
    # The worker lines processed the task file (both runs append to events.log).
    events = [json.loads(x) for x in (tmp_path / "events.log").read_text().splitlines()]
    results = {e["task_id"]: e["result"] for e in events if e["event_type"] == "task_completed"}
    assert results == {"task-1": {"sum": 2}, "task-2": {"sum": 6}}
    # The local job ran every task.
    (job,) = (p for line, p in outputs.items() if "config.yml" in line and "myconfig" not in line)
    assert "All 2 tasks completed." in job.stdout
    # The cloud plan came from the bundled catalog, said so in one line, and the listing shows
    # the type the dry run picked first.
    (listing,) = (p for line, p in outputs.items() if "list_instance_types" in line)
    (plan,) = (p for line, p in outputs.items() if "--dry-run" in line)
    for proc in (listing, plan):
        assert len(proc.stderr.splitlines()) == 1 and "catalog" in proc.stderr
    rows = [line.split("│")[1].strip() for line in listing.stdout.splitlines() if "│" in line]
    assert rows and all(name.startswith("n2-") for name in rows)
    picked = re.search(r"instance type:\s+(\S+)", plan.stdout)
    assert picked is not None and picked.group(1) == rows[0]


def test_config_blocks_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _project(tmp_path)
    local_config = load_config(tmp_path / "config.yml")
    assert local_config.provider == "local"
    assert local_config.run.limits.max_instances == 2
    gcp_config = load_config(tmp_path / "myconfig.yml")
    assert gcp_config.provider == "gcp"
    assert gcp_config.run.constraints.instance_types == ("n2-",)

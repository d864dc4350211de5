"""Every malformed configuration and task file of the corpus, through the real commands.

Each case runs as a subprocess (``cloud_tasks run``, ``cloud_tasks load_queue`` and, for task
files, a worker with ``--tasks``) and must give exit status 1, one line on stderr naming the
file, the key path or task index and the problem, no traceback, and leave nothing behind: no
task database, no queue file, no instance, no event log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from tests.badinput.cases import CONFIG_CASES, CORPUS, GENERATED, TASK_CASES, Case, materialize

GOOD_CONFIG = """\
provider: local
local:
  job_id: bad-input
  startup_script: "exec python3 worker.py"
"""
GOOD_TASKS = '[{"task_id": "t1", "data": {"n": 1}}]\n'
REPO = Path(__file__).resolve().parents[2]
WORKER = """\
from cloud_tasks.worker import Worker

def process_task(task_id, task_data, worker_data):
    open("ran-" + task_id, "w").close()
    return True, None

if __name__ == "__main__":
    Worker(process_task).run()
"""


@attrs.frozen
class Outcome:
    """One command of one case: what it printed and which files appeared."""

    label: str
    returncode: int
    stdout: str
    stderr: str
    created: frozenset[str]


def _files(directory: Path) -> frozenset[str]:
    return frozenset(str(p.relative_to(directory)) for p in directory.rglob("*"))


def _commands(case: Case, path: str) -> list[tuple[str, list[str]]]:
    if case.kind == "config":
        return [
            ("run", ["cloud_tasks", "run", "--config", path, "--tasks", "good.json"]),
            ("load_queue", ["cloud_tasks", "load_queue", "--config", path, "--tasks", "good.json"]),
        ]
    common = ["--config", "good.yml", "--provider", "local", "--tasks", path]
    commands = [
        ("run", ["cloud_tasks", "run", *common]),
        ("load_queue", ["cloud_tasks", "load_queue", *common]),
    ]
    if case.worker:
        commands.append(("worker", ["worker.py", "--tasks", path]))
    return commands


def _prepare(case: Case, root: Path) -> tuple[Path, str]:
    directory = root / f"{case.kind}-{case.name}"
    directory.mkdir()
    (directory / "good.yml").write_text(GOOD_CONFIG)
    (directory / "good.json").write_text(GOOD_TASKS)
    (directory / "worker.py").write_text(WORKER)
    (directory / "start.sh").write_text((CORPUS / "config" / "start.sh").read_text())
    target = materialize(case, directory)
    return directory, target.name


def _environment(directory: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("RMS_CLOUD_TASKS_") and key != "PYTHONWARNINGS"
    }
    env["XDG_STATE_HOME"] = str(directory / "state")
    env["XDG_CACHE_HOME"] = str(directory / "cache")
    return env


class _Runner:
    """Sends commands to ``tests.badinput.prefork`` (one fresh forked process per command)."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.badinput.prefork"],
            cwd=REPO,
            # The caller's PYTHONPATH first (a source tree under test), as plain runs see it.
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join(
                    p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p
                ),
            },
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.count = 0

    def run(self, directory: Path, label: str, argv: list[str]) -> Outcome:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.count += 1
        out, err = self.scratch / f"{self.count}.out", self.scratch / f"{self.count}.err"
        before = _files(directory)
        request = {
            "argv": argv,
            "cwd": str(directory),
            "env": _environment(directory),
            "stdout": str(out),
            "stderr": str(err),
        }
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        created = _files(directory) - before
        return Outcome(label, answer["returncode"], out.read_text(), err.read_text(), created)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


def _run_plain(directory: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """The same command as a person types it: a new interpreter."""
    command = [sys.executable, "-m", *argv] if argv[0] == "cloud_tasks" else [sys.executable, *argv]
    return subprocess.run(
        command,
        cwd=directory,
        env=_environment(directory),
        capture_output=True,
        text=True,
        timeout=120,
    )


ALL_CASES = CONFIG_CASES + TASK_CASES
#: Cases also run as plain subprocesses, to show that the forked runs behave the same.
PLAIN_CASES = ("unknown_key.yml", "duplicate_ids.json", "billion_laughs.yaml")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], list[Outcome]]:
    """Every command of every case, each in a fresh process."""
    root = tmp_path_factory.mktemp("badinput")
    scratch = tmp_path_factory.mktemp("badinput-streams")
    runner = _Runner(scratch)
    results: dict[tuple[str, str], list[Outcome]] = {}
    try:
        for case in ALL_CASES:
            directory, path = _prepare(case, root)
            results[(case.kind, case.name)] = [
                runner.run(directory, label, argv) for label, argv in _commands(case, path)
            ]
    finally:
        runner.close()
    return results


def test_forked_runs_match_plain_subprocesses(
    outcomes: dict[tuple[str, str], list[Outcome]], tmp_path: Path
) -> None:
    for case in ALL_CASES:
        if case.name not in PLAIN_CASES:
            continue
        directory, path = _prepare(case, tmp_path)
        for (label, argv), forked in zip(
            _commands(case, path), outcomes[(case.kind, case.name)], strict=True
        ):
            plain = _run_plain(directory, argv)
            assert (plain.returncode, plain.stderr, plain.stdout) == (
                forked.returncode,
                forked.stderr,
                forked.stdout,
            ), label


def test_corpus_is_large_and_every_file_has_a_case() -> None:
    assert len(ALL_CASES) >= 40
    for kind, cases in (("config", CONFIG_CASES), ("tasks", TASK_CASES)):
        listed = {case.name for case in cases}
        on_disk = {p.name for p in (CORPUS / kind).iterdir()} - {"start.sh"}
        assert on_disk - listed == set(), f"corpus files without a case in {kind}"
        assert listed - on_disk - set(GENERATED) == set(), f"cases without a file in {kind}"


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: f"{c.kind}/{c.name}")
def test_bad_input_gives_one_clear_line_and_leaves_nothing(
    case: Case, outcomes: dict[tuple[str, str], list[Outcome]]
) -> None:
    results = outcomes[(case.kind, case.name)]
    assert len(results) == (2 if case.kind == "config" or not case.worker else 3)
    for outcome in results:
        shown = f"{outcome.label}: exit {outcome.returncode}\n{outcome.stdout}{outcome.stderr}"
        assert outcome.returncode == 1, shown
        assert "Traceback" not in outcome.stderr + outcome.stdout, shown
        lines = [line for line in outcome.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, shown
        line = lines[0]
        assert case.name in line, shown
        for fragment in case.fragments:
            assert fragment in line, f"{fragment!r} missing: {shown}"
        assert outcome.stdout.strip() == "", shown
        # Nothing half-done: no task database, queue file, instance registry or event log.
        assert outcome.created == frozenset(), shown

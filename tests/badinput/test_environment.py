"""Bad environments, like bad files: a cloud's client libraries not installed, or no account.

Each case runs a real command as a new interpreter (the libraries are made absent by
``tests/no_sdk``; "no account" is real, see ``tests/accounts.py``) and must give exit status 1,
one line on stderr that says what to do, no traceback, nothing on stdout, and leave nothing
behind in the project folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from tests.accounts import no_account_env, without_modules

CONFIGS = {
    "gcp": "provider: gcp\ngcp:\n  job_id: bad-env\n  project_id: my-project\n"
    "  startup_script: 'exec python3 worker.py'\n  instance_types: 'n2-'\n",
    "aws": "provider: aws\naws:\n  job_id: bad-env\n"
    "  startup_script: 'exec python3 worker.py'\n  instance_types: '^m7i'\n",
}
WORKER = """\
from cloud_tasks.worker import Worker

def process_task(task_id, task_data, worker_data):
    return True, None

if __name__ == "__main__":
    Worker(process_task).run()
"""


@attrs.frozen
class EnvCase:
    """One command in one bad environment, and what its one line must contain."""

    environment: str  # "no-libraries" or "no-account"
    cloud: str
    argv: tuple[str, ...]
    fragment: str

    @property
    def name(self) -> str:
        return f"{self.environment}/{self.cloud}/{' '.join(self.argv[:2])}"


def _cases() -> list[EnvCase]:
    cases = []
    for cloud in ("gcp", "aws"):
        pip = f"pip install 'rms-cloud-tasks[{cloud}]'"
        for argv in (
            ("cloud_tasks", "run", "--config", "c.yml", "--tasks", "t.json"),
            ("cloud_tasks", "load_queue", "--config", "c.yml", "--tasks", "t.json"),
            ("cloud_tasks", "manage_pool", "--config", "c.yml"),
            ("cloud_tasks", "stop", "--config", "c.yml"),
            ("worker.py", "--provider", cloud, "--job-id", "bad-env", "--project-id", "p"),
        ):
            cases.append(EnvCase("no-libraries", cloud, argv, pip))
        for argv in (
            ("cloud_tasks", "run", "--config", "c.yml", "--tasks", "t.json"),
            ("cloud_tasks", "list_running_instances", "--config", "c.yml"),
        ):
            cases.append(EnvCase("no-account", cloud, argv, "credentials"))
    return cases


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c.name)
def test_bad_environment_gives_one_clear_line_and_leaves_nothing(
    case: EnvCase, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "c.yml").write_text(CONFIGS[case.cloud])
    (project / "t.json").write_text(json.dumps([{"task_id": "t1", "data": {}}]))
    (project / "worker.py").write_text(WORKER)
    before = {p.name for p in project.iterdir()}
    env = no_account_env(tmp_path / "account")
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    if case.environment == "no-libraries":
        env = without_modules(env)
    argv = list(case.argv)
    command = [sys.executable, "-m", *argv] if argv[0] == "cloud_tasks" else [sys.executable, *argv]
    proc = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    shown = f"exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    assert proc.returncode == 1, shown
    assert "Traceback" not in proc.stderr + proc.stdout, shown
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, shown
    assert case.fragment in lines[0].lower(), shown
    assert proc.stdout.strip() == "", shown
    assert {p.name for p in project.iterdir()} == before, shown

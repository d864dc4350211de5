"""Secrets never reach logs, events, the task database or ``--format json`` output, and the
files that hold job state are readable by their owner only.

Canaries: a token exported by the startup script (``API_TOKEN``), AWS ``access_key`` and
``secret_key``, and the private key inside a GCP ``credentials_file``. The rule for startup
scripts is in ``cloud_tasks.redact`` and ``docs/reliability.md``.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cloud_tasks import redact
from tests.faults.proxy import FaultProxy

TOKEN = "canary-token-5f2c9e1d7a"
ACCESS_KEY = "AKIACANARY7Q3ZX9W2KL"
SECRET_KEY = "canary/Secret+Key0123456789abcdefghijklmn"
PRIVATE_KEY = "canary-private-key-9d8e7f6a5b4c"

WORKER = """\
import os, sys
from cloud_tasks.worker import Worker

def process_task(task_id, task_data, worker_data):
    # Uses the secret without showing it.
    return True, {"token_length": len(os.environ["API_TOKEN"])}

if __name__ == "__main__":
    Worker(process_task, args=sys.argv[1:]).run()
"""

CONFIG = f"""\
provider: local
local:
  job_id: secret-job
  startup_script: |
    export API_TOKEN={TOKEN}
    export RMS_CLOUD_TASKS_VISIBILITY_TIMEOUT=5
    exec python3 worker.py
  max_instances: 1
  cpus_per_task: 0.5
  max_tasks_per_instance: 2
  scaling_check_interval: 1
  instance_termination_delay: 1
  keepalive_interval: 1
"""


def _cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloud_tasks", *args],
        cwd=cwd,
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=180,
        umask=0o022,  # a permissive umask: owner-only must not depend on it
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_startup_script_rule() -> None:
    script = (
        "#!/bin/bash\n"
        f"export API_TOKEN={TOKEN}\n"
        "DB_PASSWORD='quoted secret'\n"
        "export REGION=us-east-1\n"
        "export MY_SETTING=hidden-value  # cloud_tasks: secret\n"
        "echo $API_TOKEN\n"
    )
    shown = redact.redact_startup_script(script)
    assert TOKEN not in shown and "quoted secret" not in shown and "hidden-value" not in shown
    assert "export API_TOKEN=***\n" in shown and "DB_PASSWORD=***\n" in shown
    assert "export MY_SETTING=***  # cloud_tasks: secret\n" in shown
    assert "export REGION=us-east-1\n" in shown and "echo $API_TOKEN\n" in shown
    assert redact.secret_assignments(script) == {
        "API_TOKEN": TOKEN,
        "DB_PASSWORD": "quoted secret",
        "MY_SETTING": "hidden-value",
    }
    redact.register_startup_script(script)
    assert redact.redact(f"failed with {TOKEN} and quoted secret") == "failed with *** and ***"


@pytest.mark.slow
def test_a_local_job_keeps_its_secrets_and_its_files_private(tmp_path: Path) -> None:
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "config.yml").write_text(CONFIG)
    (tmp_path / "tasks.json").write_text(
        json.dumps([{"task_id": f"t{i}", "data": {}} for i in range(4)])
    )
    dry = _cli(tmp_path, "run", "--config", "config.yml", "--tasks", "tasks.json", "--dry-run")
    dry_json = _cli(
        tmp_path,
        "run",
        "--config",
        "config.yml",
        "--tasks",
        "tasks.json",
        "--dry-run",
        "--format",
        "json",
    )
    assert dry.returncode == 0 and dry_json.returncode == 0, dry.stderr + dry_json.stderr
    assert "export API_TOKEN=***" in dry.stdout
    assert "export API_TOKEN=***" in json.loads(dry_json.stdout)["startup_script"]

    run = _cli(tmp_path, "run", "-v", "--config", "config.yml", "--tasks", "tasks.json")
    assert run.returncode == 0, run.stdout + run.stderr
    status = _cli(tmp_path, "status", "--config", "config.yml", "--format", "json")
    listed = _cli(tmp_path, "list_running_instances", "--config", "config.yml", "--format", "json")
    dumped = _cli(tmp_path, "status", "--config", "config.yml", "--dump", "all")
    assert json.loads(status.stdout)["tasks"]["completed"] == 4
    outputs = {
        "dry run": dry.stdout + dry.stderr,
        "dry run json": dry_json.stdout + dry_json.stderr,
        "run": run.stdout + run.stderr,
        "status json": status.stdout + status.stderr,
        "list json": listed.stdout + listed.stderr,
        "dump": dumped.stdout + dumped.stderr,
    }
    for name, text in outputs.items():
        assert TOKEN not in text, name
    state = tmp_path / ".cloud_tasks" / "secret-job"
    # The task database (with its events) and the instance logs never hold the secret.
    for path in [*tmp_path.glob("secret-job.db*"), *state.rglob("*.log")]:
        assert TOKEN.encode() not in path.read_bytes(), path

    # Owner-only: the task database and everything of the local instances (their scripts hold
    # the secret, necessarily). The queue file lived in the same folder and went with the job
    # (its modes: tests/queues/test_queue_cli.py::test_queue_files_are_owner_only).
    assert _mode(tmp_path / "secret-job.db") == 0o600
    assert not list(state.glob("secret-job.sqlite3*"))
    assert _mode(state) == 0o700 and _mode(state / "local-instances") == 0o700
    scripts = list((state / "local-instances").glob("*.sh"))
    assert scripts and TOKEN in scripts[0].read_text()
    for path in state.rglob("*"):
        if path.is_file() and not path.name.endswith(".lock"):
            assert _mode(path) == 0o600, path


@pytest.mark.slow
def test_aws_keys_stay_out_of_output_even_in_aws_error_messages(
    moto_server: str, tmp_path: Path
) -> None:
    config = tmp_path / "aws.yml"
    config.write_text(
        "provider: aws\naws:\n  job_id: key-job\n  region: us-east-1\n"
        f"  access_key: {ACCESS_KEY}\n  secret_key: {SECRET_KEY}\n"
        "  startup_script: echo hi\n"
    )
    ok = _cli(tmp_path, "list_running_instances", "--config", str(config), "--format", "json")
    assert ok.returncode == 0, ok.stderr
    # AWS quotes the access key id when it rejects a signature.
    proxy = FaultProxy(moto_server, lambda request: "signature").start()
    try:
        env = {**os.environ, "AWS_ENDPOINT_URL": proxy.url}
        refused = _cli(tmp_path, "list_running_instances", "--config", str(config), env=env)
        queue = _cli(tmp_path, "show_queue", "--config", str(config), env=env)
    finally:
        proxy.stop()
    assert proxy.injected["signature"] >= 2
    for result in (ok, refused, queue):
        text = result.stdout + result.stderr
        assert ACCESS_KEY not in text and SECRET_KEY not in text, text
    assert refused.returncode == 1 and "***" in refused.stderr, refused.stderr


def test_a_gcp_credentials_file_is_never_shown(tmp_path: Path) -> None:
    credentials = tmp_path / "key.json"
    credentials.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "p",
                "private_key_id": "k",
                "private_key": f"-----BEGIN PRIVATE KEY-----\n{PRIVATE_KEY}\n-----END "
                "PRIVATE KEY-----\n",
                "client_email": "x@p.iam.gserviceaccount.com",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    config = tmp_path / "gcp.yml"
    config.write_text(
        "provider: gcp\ngcp:\n  job_id: key-job\n  project_id: p\n  region: us-central1\n"
        f"  credentials_file: {credentials}\n  startup_script: echo hi\n"
    )
    result = _cli(tmp_path, "list_running_instances", "--config", str(config))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "credentials_file" in lines[0], result.stderr
    assert PRIVATE_KEY not in result.stdout + result.stderr

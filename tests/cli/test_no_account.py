"""Without a cloud's client libraries, or without an account: one line, never a traceback, and
plans (``run --dry-run``, ``list_instance_types``) from the bundled catalog.

The libraries are made absent for real: the subprocesses start with ``tests/no_sdk`` first on
``PYTHONPATH``, whose ``sitecustomize`` makes ``google``, ``grpc``, ``boto3`` and ``botocore``
unimportable, as in a plain ``pip install rms-cloud-tasks``. "No account" is real too (see
``tests/accounts.py``): no keys, empty credential files, no ADC, metadata on a closed port.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cloud_tasks.entrypoints.cli.main import cli, main
from tests.accounts import no_account_env, without_account, without_modules
from tests.config.test_quickstart import step5_config

# The user's guide's Step 5 configuration (shared/seed/quickstart.rst), as written.
GCP_CONFIG = step5_config()

AWS_CONFIG = """\
provider: aws
aws:
  job_id: my-processing-job
  startup_script_file: startup_script.sh
  max-instances: 5
  max-cpu: 8
  instance-types: "^m7i"
"""

CONFIGS = {"gcp": GCP_CONFIG, "aws": AWS_CONFIG}

# Every command that reaches the provider, each with what it needs besides --config.
CLOUD_COMMANDS: list[list[str]] = [
    ["run", "--tasks", "my_tasks.json"],
    ["manage_pool"],
    ["stop"],
    ["stop", "--delete-queues"],
    ["monitor_event_queue", "--once"],
    ["load_queue", "--tasks", "my_tasks.json"],
    ["show_queue"],
    ["purge_queue", "--force"],
    ["delete_queue", "--force"],
    ["list_images"],
    ["list_regions"],
    ["list_running_instances"],
    ["list_running_instances", "--all"],
]

# Runs each argv through the CLI's real entry point in one interpreter (a process per command
# would take minutes); records exit status, stdout and stderr, and any escaping traceback.
_DRIVER = """
import contextlib, io, json, sys, traceback
from cloud_tasks.entrypoints.cli.main import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc(file=err)
            code = -1
    results.append({"argv": argv, "code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
print(json.dumps(results))
"""


def _catalog_date(cloud: str) -> str:
    text = (
        resources.files("cloud_tasks.adapters.memory")
        .joinpath(f"catalog/{cloud}.json")
        .read_text("utf-8")
    )
    return str(json.loads(text)["snapshot_date"])


def _project(directory: Path, cloud: str) -> None:
    (directory / "startup_script.sh").write_text("#!/bin/bash\npython3 my_worker.py\n")
    (directory / "myconfig.yml").write_text(CONFIGS[cloud])
    tasks = [{"task_id": f"task-{i}", "data": {"num1": i, "num2": i}} for i in range(1, 51)]
    (directory / "my_tasks.json").write_text(json.dumps(tasks))


def _without_libraries(tmp_path: Path) -> dict[str, str]:
    return without_modules(no_account_env(tmp_path / "account"))


@pytest.mark.parametrize("cloud", ["gcp", "aws"])
def test_every_cloud_command_is_one_line_without_the_libraries(tmp_path: Path, cloud: str) -> None:
    _project(tmp_path, cloud)
    argvs = [[*argv, "--config", "myconfig.yml"] for argv in CLOUD_COMMANDS]
    proc = subprocess.run(
        [sys.executable, "-c", _DRIVER, json.dumps(argvs)],
        cwd=tmp_path,
        env=_without_libraries(tmp_path),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for result in json.loads(proc.stdout):
        lines = result["stderr"].splitlines()
        assert result["code"] == 1, result
        assert len(lines) == 1 and "Traceback" not in result["stderr"], result
        assert f"pip install 'rms-cloud-tasks[{cloud}]'" in lines[0], result
    # Nothing was half-done: no task database, no queue file, no journal.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "account",
        "my_tasks.json",
        "myconfig.yml",
        "startup_script.sh",
    ]


@pytest.mark.parametrize("cloud", ["gcp", "aws"])
def test_the_worker_in_queue_mode_is_one_line_without_the_libraries(
    tmp_path: Path, cloud: str
) -> None:
    worker = Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "my_worker.py"
    proc = subprocess.run(
        [sys.executable, str(worker), "--provider", cloud, "--job-id", "job-a"],
        cwd=tmp_path,
        env=_without_libraries(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"pip install 'rms-cloud-tasks[{cloud}]'" in lines[0]


def test_the_worker_in_file_mode_needs_no_cloud_library(tmp_path: Path) -> None:
    worker = Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "my_worker.py"
    _project(tmp_path, "gcp")
    proc = subprocess.run(
        [sys.executable, str(worker), "--tasks", "my_tasks.json"],
        cwd=tmp_path,
        env=_without_libraries(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in (tmp_path / "events.log").read_text().splitlines()]
    assert sum(e["event_type"] == "task_completed" for e in events) == 50


@pytest.mark.parametrize("cloud", ["gcp", "aws"])
def test_dry_run_without_the_libraries_plans_from_the_bundled_catalog(
    tmp_path: Path, cloud: str
) -> None:
    _project(tmp_path, cloud)
    args = ["--config", "myconfig.yml", "--format", "json"]
    plan, listing = (
        subprocess.run(
            [sys.executable, "-m", "cloud_tasks", *command, *args],
            cwd=tmp_path,
            env=_without_libraries(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        for command in (
            ["run", "--tasks", "my_tasks.json", "--dry-run", "--task-duration", "60"],
            ["list_instance_types"],
        )
    )
    for proc in (plan, listing):
        assert proc.returncode == 0, proc.stderr
        (notice,) = proc.stderr.splitlines()
        assert _catalog_date(cloud) in notice
        assert f"rms-cloud-tasks[{cloud}]" in notice
    data = json.loads(plan.stdout)
    offers = json.loads(listing.stdout)
    assert data["provider"] == cloud and data["prices"] == "catalog"
    assert data["instance_type"] == offers[0]["name"]
    assert data["estimate"]["total_cost_usd"] > 0
    assert f"RMS_CLOUD_TASKS_PROVIDER={cloud}" in data["startup_script"]
    # Nothing was created.
    assert not (tmp_path / "my-processing-job.db").exists()


def _invoke(args: list[str]) -> Any:
    return CliRunner().invoke(cli, args, catch_exceptions=False)


@pytest.mark.parametrize("cloud", ["gcp", "aws"])
def test_without_credentials_the_plan_is_the_catalog_plan_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cloud: str
) -> None:
    without_account(monkeypatch, tmp_path / "account")
    _project(tmp_path, cloud)
    base = ["--config", "myconfig.yml", "--format", "json"]
    dry_run = ["run", "--tasks", "my_tasks.json", "--dry-run", "--task-duration", "60", *base]
    plan = _invoke(dry_run)
    assert plan.exit_code == 0, plan.output
    assert plan.stderr.count("\n") == 1
    assert _catalog_date(cloud) in plan.stderr
    data = json.loads(plan.stdout)
    assert data["prices"] == "catalog"
    # The same plan as the memory provider standing in for that cloud (SPEC §9).
    stand_in = _invoke([*dry_run, "--provider", "memory"])
    assert stand_in.exit_code == 0, stand_in.output
    expected = json.loads(stand_in.stdout)
    for key in ("instance_type", "instances", "price_per_hour_usd", "region", "estimate"):
        assert data[key] == expected[key], key
    listing = _invoke(["list_instance_types", *base])
    assert listing.exit_code == 0, listing.output
    assert _catalog_date(cloud) in listing.stderr
    assert json.loads(listing.stdout)[0]["name"] == data["instance_type"]


def test_without_credentials_other_commands_still_stop_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only plans fall back to the catalog: a command that needs the account says what to do."""
    without_account(monkeypatch, tmp_path / "account")
    _project(tmp_path, "aws")
    with pytest.raises(SystemExit) as stopped:
        main(["list_running_instances", "--config", "myconfig.yml"])
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert "credentials" in err.lower() and err.count("\n") == 1

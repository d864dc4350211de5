"""The generated startup script: export block placement, quoting, completeness, size."""

from __future__ import annotations

import subprocess

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_tasks.domain.startup import (
    AWS_USER_DATA_LIMIT_BYTES,
    DEFAULT_SHEBANG,
    WorkerSettings,
    build_startup_script,
    check_startup_script_size,
    worker_environment,
)
from cloud_tasks.exceptions import ConfigError

SETTINGS = WorkerSettings(
    provider="aws",
    job_id="my-job",
    queue_name="my-queue",
    instance_type="c7a.large",
    num_cpus=2,
    memory_gib=4.0,
    num_tasks_per_instance=2,
    project_id="proj",
    region="us-east-1",
    zone="us-east-1a",
    local_ssd_gb=0,
    boot_disk_gb=20,
    is_spot=True,
    price_per_hour_usd=0.0312,
    max_runtime_s=600,
    retry_on_exit=True,
    retry_on_exception=False,
    retry_on_timeout=True,
    max_attempts=3,
    max_memory_allowed_per_task_gb=1.5,
    keepalive_interval_s=30,
    exactly_once_queue=True,
)


def _run_and_dump(script: str) -> dict[str, str]:
    """Run ``script`` with bash after appending an env dump; return the RMS variables."""
    out = subprocess.run(
        ["bash", "-c", script + "\nprintf '\\0'; env -0\n"],
        capture_output=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    ).stdout.decode()
    pairs = (item.split("=", 1) for item in out.split("\0") if "=" in item)
    return {k: v for k, v in pairs if k.startswith("RMS_CLOUD_TASKS_")}


def test_every_worker_option_is_exported() -> None:
    env = worker_environment(SETTINGS)
    expected = {
        "PROVIDER": "aws",
        "PROJECT_ID": "proj",
        "REGION": "us-east-1",
        "ZONE": "us-east-1a",
        "JOB_ID": "my-job",
        "QUEUE_NAME": "my-queue",
        "EXACTLY_ONCE_QUEUE": "true",
        "INSTANCE_TYPE": "c7a.large",
        "NUM_CPUS": "2",
        "MEMORY": "4",
        "LOCAL_SSD": "0",
        "BOOT_DISK": "20",
        "IS_SPOT": "true",
        "PRICE": "0.0312",
        "NUM_TASKS_PER_INSTANCE": "2",
        "MAX_RUNTIME": "600",
        "RETRY_ON_EXIT": "true",
        "RETRY_ON_EXCEPTION": "false",
        "RETRY_ON_TIMEOUT": "true",
        "MAX_ATTEMPTS": "3",
        "MAX_PREEMPTIONS": "20",
        "MAX_MEMORY_ALLOWED_PER_TASK": "1.5",
        "KEEPALIVE_INTERVAL": "30",
        "EVENT_LOG_TO_QUEUE": "true",
    }
    assert env == {"RMS_CLOUD_TASKS_" + k: v for k, v in expected.items()}


def test_unknown_values_are_left_out_not_exported_empty() -> None:
    env = worker_environment(
        attrs.evolve(SETTINGS, project_id=None, max_memory_allowed_per_task_gb=None)
    )
    assert "RMS_CLOUD_TASKS_PROJECT_ID" not in env
    assert "RMS_CLOUD_TASKS_MAX_MEMORY_ALLOWED_PER_TASK" not in env


def test_block_goes_after_bash_shebang() -> None:
    script = build_startup_script("#!/usr/bin/env bash\necho hi\n", {"RMS_CLOUD_TASKS_A": "1"})
    lines = script.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "export RMS_CLOUD_TASKS_A=1" in lines
    assert lines[-1] == "echo hi"
    assert lines.index("export RMS_CLOUD_TASKS_A=1") < lines.index("echo hi")


def test_shebang_prepended_when_missing() -> None:
    script = build_startup_script("apt-get update -y\n", {"RMS_CLOUD_TASKS_A": "1"})
    assert script.splitlines()[0] == DEFAULT_SHEBANG
    assert script.splitlines()[-1] == "apt-get update -y"


def test_non_shell_shebang_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a bash shebang"):
        build_startup_script("#!/usr/bin/env python3\nprint(1)\n", {})


def test_script_runs_and_exports_exact_values() -> None:
    env = worker_environment(attrs.evolve(SETTINGS, job_id='it\'s a "job" $HOME `x`'))
    script = build_startup_script("echo started", env)
    assert _run_and_dump(script) == env


@settings(max_examples=30, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0")))
def test_any_value_survives_quoting(value: str) -> None:
    script = build_startup_script("", {"RMS_CLOUD_TASKS_X": value})
    assert _run_and_dump(script)["RMS_CLOUD_TASKS_X"] == value


def test_size_limit_is_checked() -> None:
    script = build_startup_script("x" * AWS_USER_DATA_LIMIT_BYTES, {})
    with pytest.raises(ConfigError, match="exceeds the AWS user data limit of 16384 bytes"):
        check_startup_script_size(script, AWS_USER_DATA_LIMIT_BYTES, where="AWS user data")
    check_startup_script_size("#!/bin/bash\n", AWS_USER_DATA_LIMIT_BYTES, where="AWS user data")

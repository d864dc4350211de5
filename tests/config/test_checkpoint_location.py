"""``run.checkpoint_location``: checked at load, exported by the startup script, read by the
worker as its ``--checkpoint-location``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cloud_tasks.config import load_config
from cloud_tasks.domain.option_schema import ENV_PREFIX
from cloud_tasks.domain.options import JobConfig
from cloud_tasks.entrypoints.worker.options import parse_worker_options
from cloud_tasks.exceptions import ConfigError
from cloud_tasks.service_layer.plan import startup_script_for
from tests.domain.strategies import _candidate

CONFIG = "provider: gcp\ngcp:\n  job_id: job-a\n  project_id: p\n  zone: us-central1-a\n"


def _load(tmp_path: Path, location: str) -> JobConfig:
    path = tmp_path / "config.yml"
    path.write_text(CONFIG + f"run:\n  checkpoint_location: {location!r}\n")
    return load_config(path)


def _exported(script: str) -> dict[str, str]:
    """The ``RMS_CLOUD_TASKS_*`` variables the script gives the program it runs."""
    ran = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={"PATH": os.environ["PATH"]},
    )
    pairs = (line.split("=", 1) for line in ran.stdout.splitlines() if "=" in line)
    return {name: value for name, value in pairs if name.startswith(ENV_PREFIX)}


@pytest.mark.parametrize(
    "location", ["s3://bucket/job-a/checkpoints", "gs://bucket/prefix", "/var/tmp/ckpt"]
)
def test_the_configured_location_reaches_the_worker(tmp_path: Path, location: str) -> None:
    config = _load(tmp_path, location)
    assert config.run.checkpoint_location == location
    script = startup_script_for(config, "env\n", _candidate(4, 1.0, 0.2, True), "us-central1-a")
    environment = _exported(script)
    assert environment[ENV_PREFIX + "CHECKPOINT_LOCATION"] == location
    options, _, _ = parse_worker_options([], environment, prog="worker")
    assert options.checkpoint_location == location


def test_unset_exports_nothing_and_the_worker_has_no_location(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(CONFIG)
    config = load_config(path)
    assert config.run.checkpoint_location is None
    script = startup_script_for(config, "env\n", _candidate(4, 1.0, 0.2, True), "us-central1-a")
    environment = _exported(script)
    assert ENV_PREFIX + "CHECKPOINT_LOCATION" not in environment
    options, _, _ = parse_worker_options([], environment, prog="worker")
    assert options.checkpoint_location is None


@pytest.mark.parametrize(
    ("location", "problem"),
    [
        ("http://example.invalid/x", "unknown scheme 'http'"),
        ("s3:///prefix", "no bucket"),
        ("gs://", "no bucket"),
        ("", "must not be empty"),
    ],
)
def test_a_bad_location_is_one_line_naming_the_key(
    tmp_path: Path, location: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, location)
    message = str(caught.value)
    assert message.startswith("run.checkpoint_location: ")
    assert problem in message
    assert "config.yml" in message
    assert "\n" not in message


def test_the_flag_comes_from_the_option_table() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, cli_overrides={"checkpoint_location": "ftp://x/y"})
    assert str(caught.value).startswith("--checkpoint-location: unknown scheme 'ftp'")
    config = load_config(None, cli_overrides={"checkpoint_location": "gs://b/p"})
    assert config.run.checkpoint_location == "gs://b/p"

"""``run`` with ``notify``: a real local job posts to a loopback webhook, and a dead webhook
never stops the job."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.job import environment, write_job
from tests.fakes.http import LoopbackServer

pytestmark = pytest.mark.slow


def _run(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloud_tasks", "run", "--config", "config.yml", *args],
        cwd=directory,
        env=environment(directory),
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_a_job_notifies_its_end_and_its_failure_rate(tmp_path: Path) -> None:
    receiver = LoopbackServer(lambda *_request: (200, {"ok": True})).start()
    try:
        write_job(tmp_path, 24)
        config = tmp_path / "config.yml"
        config.write_text(
            config.read_text()
            + f"  notify:\n    webhook: {receiver.url}/slack\n    failure_rate: 0.05\n"
        )
        result = _run(tmp_path, "--tasks", "tasks.json")
        assert result.returncode == 0, result.stdout + result.stderr
        bodies: list[dict[str, Any]] = [r[3] for r in receiver.requests]
        # Once more: a resumed finished job fires nothing twice.
        again = _run(tmp_path, "--continue")
        assert again.returncode == 0, again.stdout + again.stderr
    finally:
        receiver.stop()
    events = [body["event"] for body in bodies]
    assert sorted(events) == ["failure_rate", "job_done"]
    assert all("dash-job" in body["text"] for body in bodies)
    done = next(body for body in bodies if body["event"] == "job_done")
    assert done["tasks"]["total"] == 24
    assert done["tasks"]["completed"] + done["tasks"]["failed"] == 24
    assert len(receiver.requests) == 2
    assert receiver.url not in result.stdout + result.stderr


def test_a_dead_webhook_is_logged_and_the_job_finishes(tmp_path: Path) -> None:
    write_job(tmp_path, 6)
    config = tmp_path / "config.yml"
    secret = "http://127.0.0.1:9/services/T000/B000/very-secret-token"
    config.write_text(config.read_text() + f"  notify: {secret}\n")
    result = _run(tmp_path, "--tasks", "tasks.json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "notify: the job_done notification's webhook failed" in result.stderr
    assert "very-secret-token" not in result.stdout + result.stderr

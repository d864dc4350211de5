"""The plugin must stay cheap to load: no cloud SDK, no worker runtime until the fixture is used."""

from __future__ import annotations

import json
import subprocess
import sys

_CHECK = """
import json, sys
import cloud_tasks.entrypoints.pytest_plugin
after_plugin = sorted(sys.modules)
from cloud_tasks.testing import simulate

def process_task(task_id, task_data, worker_data):
    return True, None

with simulate() as sim:
    sim.add_tasks([{"task_id": "a", "data": {}}])
    completed = sorted(sim.run(process_task).completed)
print(json.dumps({"after_plugin": after_plugin, "after_run": sorted(sys.modules),
                  "completed": completed}))
"""

_SDKS = ("boto3", "botocore", "google", "grpc", "s3transfer")


def _top(names: list[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


def test_plugin_and_a_simulated_run_import_no_cloud_sdk() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CHECK], capture_output=True, text=True, timeout=60, check=True
    )
    modules = json.loads(done.stdout.strip().splitlines()[-1])
    assert modules["completed"] == ["a"]
    for stage in ("after_plugin", "after_run"):
        assert not _top(modules[stage]) & set(_SDKS), stage
    loaded = set(modules["after_plugin"])
    assert "cloud_tasks.worker" not in loaded
    assert "cloud_tasks.testing" not in loaded
    assert "cloud_tasks.entrypoints.worker.runtime" not in loaded

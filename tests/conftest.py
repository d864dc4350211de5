"""Suite-wide safety: no test may reach a real cloud or a real metadata server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Set before any SDK is imported by a test module.
_SAFE_ENV = {
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "GCE_METADATA_HOST": "127.0.0.1:1",
    "GCE_METADATA_IP": "127.0.0.1:1",
    "GOOGLE_CLOUD_PROJECT": "test-project",
    "NO_GCE_CHECK": "true",
}
for _key, _value in _SAFE_ENV.items():
    os.environ[_key] = _value
for _key in list(os.environ):
    if _key.startswith("RMS_CLOUD_TASKS_") or _key == "GOOGLE_APPLICATION_CREDENTIALS":
        del os.environ[_key]

pytest_plugins = ["tests.servers"]


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in its own directory, with its own state and cache folders, so event
    logs, databases, local queues and price caches never collide or reach the user's home."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / ".state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / ".cache"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the tests marked slow first, so that on several workers (pytest-xdist) no long test
    begins last and leaves the other workers idle at the end of the run."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)

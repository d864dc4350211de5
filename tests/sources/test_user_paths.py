"""Per-user folders come from platformdirs and stay where they were on Linux (XDG)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cloud_tasks.adapters.local.sqlite_queue import default_state_dir
from cloud_tasks.adapters.price_cache import default_cache_dir

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="XDG folders are Linux's")


def test_xdg_variables_are_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("RMS_CLOUD_TASKS_STATE_DIR", raising=False)
    assert default_cache_dir() == tmp_path / "cache" / "cloud_tasks"
    assert default_state_dir() == tmp_path / "state" / "cloud_tasks"


@pytest.mark.parametrize("unset", ["", None])
def test_without_xdg_variables_the_home_folders_are_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unset: str | None
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RMS_CLOUD_TASKS_STATE_DIR", raising=False)
    for name in ("XDG_CACHE_HOME", "XDG_STATE_HOME"):
        if unset is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, unset)
    assert default_cache_dir() == tmp_path / ".cache" / "cloud_tasks"
    assert default_state_dir() == tmp_path / ".local" / "state" / "cloud_tasks"


def test_the_explicit_state_folder_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("RMS_CLOUD_TASKS_STATE_DIR", str(tmp_path / "mine"))
    assert default_state_dir() == tmp_path / "mine"

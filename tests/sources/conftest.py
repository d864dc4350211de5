"""Fixtures for task-file locations: the Cloud Storage fake."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.gcs import FakeGcs


@pytest.fixture
def fake_gcs(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGcs]:
    """A running Cloud Storage fake; STORAGE_EMULATOR_HOST points google-cloud-storage at it."""
    server = FakeGcs().start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
    try:
        yield server
    finally:
        server.stop()

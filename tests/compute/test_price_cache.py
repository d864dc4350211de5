"""The on-disk price cache: lifetime, refresh, atomic replacement, damage tolerance."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_tasks.adapters.price_cache import PriceCache, default_cache_dir
from cloud_tasks.domain.offers import BootDiskOption, InstanceOffer

OFFER = InstanceOffer(
    "m7i.large",
    2,
    8.0,
    "x86_64",
    "us-east-1",
    "us-east-1a",
    "Intel",
    7,
    0.0,
    (BootDiskOption("gp3", 0.0001),),
    0.1008,
    0.04,
)


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> list[InstanceOffer]:
        self.calls += 1
        return [OFFER]


def test_cache_lives_24_hours_and_refresh_bypasses_it(tmp_path: Path) -> None:
    now = [1000.0]
    cache = PriceCache(tmp_path, now=lambda: now[0])
    fetch = Counter()
    assert cache.get_or_fetch("aws", "us-east-1", fetch) == [OFFER]
    assert cache.get_or_fetch("aws", "us-east-1", fetch) == [OFFER]
    assert fetch.calls == 1
    cache.get_or_fetch("aws", "us-east-1", fetch, refresh=True)
    assert fetch.calls == 2
    now[0] += 24 * 3600 - 1
    cache.get_or_fetch("aws", "us-east-1", fetch)
    assert fetch.calls == 2
    now[0] += 2
    cache.get_or_fetch("aws", "us-east-1", fetch)
    assert fetch.calls == 3
    # Another region or provider is another file.
    cache.get_or_fetch("gcp", "us-east-1", fetch)
    assert fetch.calls == 4


def test_writes_are_atomic_and_damage_means_refetch(tmp_path: Path) -> None:
    cache = PriceCache(tmp_path)
    cache.store("aws", "us-east-1", [OFFER])
    path = cache.path("aws", "us-east-1")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind
    path.write_text("{not json")
    assert cache.load("aws", "us-east-1") is None
    fetch = Counter()
    assert cache.get_or_fetch("aws", "us-east-1", fetch) == [OFFER] and fetch.calls == 1


def test_default_directory_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "cloud_tasks"

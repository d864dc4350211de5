"""An on-disk cache of offers per provider and region, so listing prices is fast and offline.

Files live under ``$XDG_CACHE_HOME/cloud_tasks/prices`` (``~/.cache/cloud_tasks/prices`` when
unset), one per provider and region, and are replaced atomically (temporary file in the same
directory, then ``os.replace``) so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import platformdirs

from cloud_tasks.adapters.offer_records import offer_from_record, offer_to_record
from cloud_tasks.domain.offers import InstanceOffer

DEFAULT_LIFETIME_S = 24 * 3600.0
_FORMAT = 1


def default_cache_dir() -> Path:
    """The per-user cache folder (platformdirs): ``$XDG_CACHE_HOME/cloud_tasks`` or
    ``~/.cache/cloud_tasks`` on Linux."""
    return Path(platformdirs.user_cache_dir("cloud_tasks", appauthor=False))


class PriceCache:
    """Offers of one provider/region, kept for ``lifetime_s`` (24 h by default)."""

    def __init__(
        self,
        directory: Path | None = None,
        *,
        lifetime_s: float = DEFAULT_LIFETIME_S,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.directory = (directory or default_cache_dir()) / "prices"
        self.lifetime_s = lifetime_s
        self._now = now

    def path(self, provider: str, region: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{provider}-{region}")
        return self.directory / f"{safe}.json"

    def load(self, provider: str, region: str) -> list[InstanceOffer] | None:
        """The cached offers, or ``None`` when missing, expired or unreadable."""
        try:
            data = json.loads(self.path(provider, region).read_text(encoding="utf-8"))
            if data.get("format") != _FORMAT:
                return None
            if self._now() - float(data["fetched_at"]) > self.lifetime_s:
                return None
            return [offer_from_record(r, provider)[1] for r in data["offers"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            # A damaged cache is only a cache: fetch again.
            return None

    def store(self, provider: str, region: str, offers: list[InstanceOffer]) -> None:
        """Write the offers atomically; failing to write the cache is not an error."""
        payload = {
            "format": _FORMAT,
            "provider": provider,
            "region": region,
            "fetched_at": self._now(),
            "offers": [offer_to_record(o, provider) for o in offers],
        }
        target = self.path(provider, region)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(payload, handle)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError:
            return

    def get_or_fetch(
        self,
        provider: str,
        region: str,
        fetch: Callable[[], list[InstanceOffer]],
        *,
        refresh: bool = False,
    ) -> list[InstanceOffer]:
        """Cached offers when fresh (and ``refresh`` is false), else ``fetch()`` and store."""
        if not refresh:
            cached = self.load(provider, region)
            if cached is not None:
                return cached
        offers = fetch()
        self.store(provider, region, offers)
        return offers


def cached_offers(
    cache: PriceCache | None,
    provider: str,
    region: str,
    fetch: Callable[[], list[InstanceOffer]],
    *,
    refresh: bool = False,
) -> list[InstanceOffer]:
    """``cache.get_or_fetch(...)``, or ``fetch()`` every time when there is no cache."""
    if cache is None:
        return fetch()
    return cache.get_or_fetch(provider, region, fetch, refresh=refresh)

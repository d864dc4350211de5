"""The offline catalog of the ``memory`` provider (SPEC §9) and the pricing it serves.

The bundled snapshot (``catalog/aws.json``, ``catalog/gcp.json``) holds approximate list prices
of common AWS and GCP types as of the date written in each file. A user's own snapshot, saved
with ``cloud_tasks list_instance_types --format json``, loads the same way.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

from cloud_tasks.adapters.offer_records import (
    Catalog,
    catalog_from_json,
    load_catalog,
    merge_catalogs,
)
from cloud_tasks.domain.offers import InstanceOffer
from cloud_tasks.exceptions import ConfigError

BUNDLED_PROVIDERS: tuple[str, ...] = ("aws", "gcp")
CATALOG_CHOICES: tuple[str, ...] = ("aws", "gcp", "all")


@functools.cache
def bundled_catalog(provider: str) -> Catalog:
    """The bundled snapshot of ``provider`` (``aws``, ``gcp``) or of both (``all``)."""
    if provider == "all":
        return merge_catalogs(bundled_catalog(p) for p in BUNDLED_PROVIDERS)
    if provider not in BUNDLED_PROVIDERS:
        raise ConfigError(
            f"catalog: unknown bundled catalog {provider!r}; use aws, gcp, all or a file path"
        )
    text = resources.files(__package__).joinpath(f"catalog/{provider}.json").read_text("utf-8")
    return catalog_from_json(json.loads(text), f"bundled {provider} catalog", provider)


def resolve_catalog(choice: str | None = None, catalog_file: str | None = None) -> Catalog:
    """The catalog named by the ``catalog``/``catalog_file`` options.

    ``catalog_file`` wins; ``choice`` is ``aws``, ``gcp``, ``all`` (default) or a path.
    """
    if catalog_file:
        return load_catalog(catalog_file)
    name = (choice or "all").strip()
    if name.lower() in CATALOG_CHOICES:
        return bundled_catalog(name.lower())
    return load_catalog(name)


class MemoryPricing:
    """Serves offers from a catalog; nothing is fetched, so ``refresh`` changes nothing.

    ``home_region`` is the region used when none is configured (standing in for a cloud, that
    cloud's default); else the catalog's first region.
    """

    provider = "memory"

    def __init__(self, catalog: Catalog | None = None, *, home_region: str | None = None) -> None:
        self.catalog = catalog if catalog is not None else bundled_catalog("all")
        self.home_region = home_region

    def regions(self) -> list[str]:
        return self.catalog.region_names()

    def default_region(self) -> str:
        """``home_region``, else the first region of the catalog."""
        if self.home_region:
            return self.home_region
        names = self.catalog.region_names()
        if not names:
            raise ConfigError("the instance catalog is empty; give a catalog file with offers")
        return names[0]

    def offers(self, region: str, *, refresh: bool = False) -> list[InstanceOffer]:
        offers = [o for _p, o in self.catalog.offers if o.region == region]
        if not offers:
            known = ", ".join(self.catalog.region_names()) or "none"
            raise ConfigError(
                f"region {region!r} is not in the instance catalog (regions: {known})"
            )
        return offers

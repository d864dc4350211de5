"""``GcpPricing``: machine types priced from the Cloud Billing Catalog."""

from __future__ import annotations

from typing import Any

from cloud_tasks.adapters.gcp.compute_clients import as_dict
from cloud_tasks.adapters.gcp.errors import gcp_errors
from cloud_tasks.adapters.gcp.translate import (
    COMPUTE_SERVICE_ID,
    MachineTypeInfo,
    build_offers,
    machine_type_info,
    region_rates,
)
from cloud_tasks.adapters.price_cache import PriceCache, cached_offers
from cloud_tasks.domain.offers import InstanceOffer
from cloud_tasks.exceptions import ConfigError


def zone_region(zone: str) -> str:
    return zone.rsplit("-", 1)[0]


class GcpPricing:
    """Offers for a region: machine types (aggregated list) priced by Compute Engine SKUs.

    GCP prices a type by its family's vCPU and RAM rates (plus bundled local SSD); spot prices
    are per region, so offers carry no zone.

    Args:
        machine_types: a ``compute_v1.MachineTypesClient``.
        catalog: a ``billing_v1.CloudCatalogClient``.
        project: the project whose machine types are listed.
        cache: the on-disk price cache; ``None`` fetches every time.
        default_region: the region of a job that configures none.
    """

    provider = "gcp"

    def __init__(
        self,
        machine_types: Any,
        catalog: Any,
        *,
        project: str,
        cache: PriceCache | None = None,
        default_region: str = "us-central1",
    ) -> None:
        self._machine_types = machine_types
        self._catalog = catalog
        self._project = project
        self._cache = cache
        self._default_region = default_region

    def default_region(self) -> str:
        return self._default_region

    def offers(self, region: str, *, refresh: bool = False) -> list[InstanceOffer]:
        return cached_offers(
            self._cache, self.provider, region, lambda: self.fetch_offers(region), refresh=refresh
        )

    def fetch_offers(self, region: str) -> list[InstanceOffer]:
        """Ask GCP now, bypassing the cache."""
        types = self.machine_types(region)
        if not types:
            raise ConfigError(
                f"GCP region {region!r} has no machine types for project {self._project}; "
                "check the region name (cloud_tasks list_regions --provider gcp)"
            )
        with gcp_errors("listing Cloud Billing SKUs"):
            skus = [
                as_dict(s) for s in self._catalog.list_skus(parent=f"services/{COMPUTE_SERVICE_ID}")
            ]
        return build_offers(types, region_rates(skus, region), region)

    def machine_types(self, region: str) -> list[MachineTypeInfo]:
        """Each machine type available in some zone of ``region``, once."""
        found: dict[str, MachineTypeInfo] = {}
        with gcp_errors("listing machine types"):
            for scope, scoped in self._machine_types.aggregated_list(project=self._project):
                zone = scope.rsplit("/", 1)[-1]
                if zone_region(zone) != region:
                    continue
                for item in scoped.machine_types:
                    info = machine_type_info(as_dict(item))
                    found.setdefault(info.name, info)
        return sorted(found.values(), key=lambda i: i.name)

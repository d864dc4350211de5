"""``AwsPricing``: EC2 instance types with on-demand (Pricing API) and spot prices."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from cloud_tasks.adapters.aws.errors import aws_errors
from cloud_tasks.adapters.aws.translate import (
    BOOT_DISK_TYPES,
    TypeInfo,
    build_offers,
    latest_spot_prices,
    on_demand_prices,
    storage_prices,
    type_info,
)
from cloud_tasks.adapters.price_cache import PriceCache, cached_offers
from cloud_tasks.domain.offers import InstanceOffer

#: The Pricing API is served from a few regions only; us-east-1 has every region's prices.
PRICING_REGION = "us-east-1"

_INSTANCE_FILTERS = {
    "operatingSystem": "Linux",
    "tenancy": "Shared",
    "preInstalledSw": "NA",
    "capacitystatus": "Used",
    "licenseModel": "No License required",
}


def _filters(**fields: str) -> list[dict[str, str]]:
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in fields.items()]


class AwsPricing:
    """Offers for a region from ``describe_instance_types``, the Pricing API and spot history.

    Args:
        ec2_for_region: returns an EC2 client for a region.
        pricing: a Pricing API client (its endpoint region is ``us-east-1``).
        cache: the on-disk price cache; ``None`` fetches every time.
        default_region: the region of a job that configures none (the session's).
    """

    provider = "aws"

    def __init__(
        self,
        ec2_for_region: Callable[[str], Any],
        pricing: Any,
        *,
        cache: PriceCache | None = None,
        default_region: str = "us-east-1",
    ) -> None:
        self._ec2_for_region = ec2_for_region
        self._pricing = pricing
        self._cache = cache
        self._default_region = default_region

    def default_region(self) -> str:
        return self._default_region

    def offers(self, region: str, *, refresh: bool = False) -> list[InstanceOffer]:
        return cached_offers(
            self._cache, self.provider, region, lambda: self.fetch_offers(region), refresh=refresh
        )

    def fetch_offers(self, region: str) -> list[InstanceOffer]:
        """Ask AWS now, bypassing the cache."""
        on_demand = on_demand_prices(
            self._products(_filters(regionCode=region, **_INSTANCE_FILTERS))
        )
        disks: dict[str, float] = {}
        for volume in BOOT_DISK_TYPES:
            disks.update(
                storage_prices(
                    self._products(
                        _filters(regionCode=region, productFamily="Storage", volumeApiName=volume)
                    )
                )
            )
        ec2 = self._ec2_for_region(region)
        types = self.instance_types(ec2)
        spot = latest_spot_prices(self._spot_history(ec2))
        return build_offers(types, on_demand, spot, disks, region)

    def instance_types(self, ec2: Any) -> list[TypeInfo]:
        """Every instance type the region offers that runs x86_64 or arm64 images."""
        infos = []
        with aws_errors("describe_instance_types"):
            for page in ec2.get_paginator("describe_instance_types").paginate():
                for item in page.get("InstanceTypes", []):
                    info = type_info(item)
                    if info is not None:
                        infos.append(info)
        return infos

    def _products(self, filters: list[dict[str, str]]) -> Iterator[str]:
        with aws_errors("pricing get_products"):
            token: str | None = None
            while True:
                kwargs: dict[str, Any] = {
                    "ServiceCode": "AmazonEC2",
                    "Filters": filters,
                    "FormatVersion": "aws_v1",
                    "MaxResults": 100,
                }
                if token:
                    kwargs["NextToken"] = token
                page = self._pricing.get_products(**kwargs)
                yield from page.get("PriceList", [])
                token = page.get("NextToken")
                if not token:
                    return

    def _spot_history(self, ec2: Any) -> Iterator[dict[str, Any]]:
        # A StartTime of "now" returns exactly the current price of every type and zone.
        with aws_errors("describe_spot_price_history"):
            paginator = ec2.get_paginator("describe_spot_price_history")
            for page in paginator.paginate(
                StartTime=datetime.now(UTC), ProductDescriptions=["Linux/UNIX"]
            ):
                yield from page.get("SpotPriceHistory", [])

"""The ``Pricing`` contract (ports.Pricing), run against every adapter.

memory: ``MemoryPricing`` on the bundled catalog; local: ``LocalPricing``; aws: ``AwsPricing``
on moto's EC2 (types, spot price history) and the loopback Price List API fake; gcp:
``GcpPricing`` on the loopback Compute Engine (machine types) and Cloud Billing fakes. The
cloud adapters keep their offers in a ``PriceCache``, as the commands do.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from cloud_tasks.domain.offers import ARCHITECTURES, InstanceOffer
from cloud_tasks.ports import Pricing

ADAPTERS = ["memory", "local", "aws", "gcp"]
GCP_PROJECT = "contract-project"
AMERICAS = ["us-central1", "us-east1"]


@attrs.frozen
class PricingKit:
    kind: str
    pricing: Pricing
    region: str
    #: The zones of ``region``: a zonal offer names one of them.
    zones: frozenset[str]


def _memory_kit() -> PricingKit:
    from cloud_tasks.adapters.memory.catalog import MemoryPricing, bundled_catalog

    catalog = bundled_catalog("all")
    region = catalog.region_names()[0]
    return PricingKit("memory", MemoryPricing(catalog), region, frozenset(catalog.zones(region)))


def _local_kit() -> PricingKit:
    from cloud_tasks.adapters.local.compute import LOCAL_REGION, LOCAL_ZONE, LocalPricing

    return PricingKit("local", LocalPricing(), LOCAL_REGION, frozenset({LOCAL_ZONE}))


def _aws_kit(moto_server: str, cache_dir: Path) -> Iterator[PricingKit]:
    import boto3

    from cloud_tasks.adapters.aws.pricing import AwsPricing
    from cloud_tasks.adapters.price_cache import PriceCache
    from tests.fakes.aws_pricing import FakePricingApi, compute_product, storage_product

    region = "us-east-1"
    api = FakePricingApi(
        [
            compute_product("m7i.large", region, 0.1008),
            compute_product("m7g.large", region, 0.0816),
            compute_product("c7i.xlarge", region, 0.1785),
            compute_product("m7i.large", "eu-west-1", 0.112),
            storage_product("gp3", region, 0.08),
            storage_product("gp2", region, 0.10),
        ]
    )
    api.server.start()
    try:

        def ec2(name: str) -> Any:
            return boto3.client("ec2", region_name=name, endpoint_url=moto_server)

        zones = ec2(region).describe_availability_zones()["AvailabilityZones"]
        pricing = AwsPricing(
            ec2,
            boto3.client("pricing", region_name="us-east-1", endpoint_url=api.url),
            cache=PriceCache(cache_dir),
        )
        yield PricingKit("aws", pricing, region, frozenset(z["ZoneName"] for z in zones))
    finally:
        api.server.stop()


def _gcp_kit(monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> Iterator[PricingKit]:
    from cloud_tasks.adapters.gcp.billing import GcpPricing
    from cloud_tasks.adapters.gcp.compute_clients import catalog_client, compute_clients
    from cloud_tasks.adapters.price_cache import PriceCache
    from tests.fakes.gce import FakeBilling, FakeComputeEngine, machine_type, sku

    compute = FakeComputeEngine(GCP_PROJECT)
    zones = ["us-central1-a", "us-central1-b"]
    compute.regions = {"us-central1": zones}
    compute.machine_types = {
        zone: [
            machine_type("n2-standard-4", zone, 4, 16),
            machine_type("t2a-standard-2", zone, 2, 8, arch="ARM64"),
        ]
        for zone in zones
    }
    billing = FakeBilling(
        [
            sku("N2 Instance Core running in Americas", AMERICAS, "OnDemand", "h", 0, 31611000),
            sku("N2 Instance Ram running in Americas", AMERICAS, "OnDemand", "GiBy.h", 0, 4237000),
            sku(
                "Spot Preemptible N2 Instance Core running in Americas",
                AMERICAS,
                "Preemptible",
                "h",
                0,
                7650000,
            ),
            sku(
                "Spot Preemptible N2 Instance Ram running in Americas",
                AMERICAS,
                "Preemptible",
                "GiBy.h",
                0,
                1025000,
            ),
            sku(
                "T2A Arm Instance Core running in Americas", AMERICAS, "OnDemand", "h", 0, 22000000
            ),
            sku(
                "T2A Arm Instance Ram running in Americas",
                AMERICAS,
                "OnDemand",
                "GiBy.h",
                0,
                4120000,
            ),
            sku("Balanced PD Capacity", AMERICAS, "OnDemand", "GiBy.mo", 0, 100000000),
        ]
    )
    compute.server.start()
    billing.server.start()
    try:
        monkeypatch.setenv(
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE", f"{compute.server.url}/compute/v1/"
        )
        monkeypatch.setenv("CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDBILLING", billing.server.url)
        pricing = GcpPricing(
            compute_clients()["machine_types"],
            catalog_client(),
            project=GCP_PROJECT,
            cache=PriceCache(cache_dir),
        )
        yield PricingKit("gcp", pricing, "us-central1", frozenset(zones))
    finally:
        billing.server.stop()
        compute.server.stop()


@pytest.fixture(params=ADAPTERS)
def kit(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PricingKit]:
    kind: str = request.param
    if kind == "memory":
        yield _memory_kit()
    elif kind == "local":
        yield _local_kit()
    elif kind == "aws":
        yield from _aws_kit(request.getfixturevalue("moto_server"), tmp_path / "prices")
    else:
        yield from _gcp_kit(monkeypatch, tmp_path / "prices")


def _check(offer: InstanceOffer, kit: PricingKit) -> list[str]:
    """What is wrong with ``offer`` (nothing, for a good one)."""
    problems = []
    if not offer.name:
        problems.append("no name")
    if offer.region != kit.region:
        problems.append(f"region {offer.region!r}")
    if offer.zone is not None and offer.zone not in kit.zones:
        problems.append(f"zone {offer.zone!r} not in the region")
    if offer.vcpus < 1 or offer.memory_gib <= 0:
        problems.append(f"{offer.vcpus} vCPUs, {offer.memory_gib} GiB")
    if offer.architecture not in ARCHITECTURES:
        problems.append(f"architecture {offer.architecture!r}")
    if offer.price_per_hour_usd is None or offer.price_per_hour_usd < 0:
        problems.append(f"on-demand price {offer.price_per_hour_usd!r}")
    if offer.spot_price_per_hour_usd is not None and offer.spot_price_per_hour_usd < 0:
        problems.append(f"spot price {offer.spot_price_per_hour_usd!r}")
    if offer.gpus < 0 or bool(offer.gpus) != bool(offer.gpu_type):
        problems.append(f"{offer.gpus} GPUs of type {offer.gpu_type!r}")
    if offer.gpu_memory_gib < 0 or offer.local_ssd_gib < 0:
        problems.append("negative GPU memory or local SSD")
    if offer.attach_gpus and not offer.gpus:
        problems.append("attach_gpus without GPUs")
    disks = offer.boot_disk_types
    if len(set(disks)) != len(disks) or any(d.price_per_gib_hour_usd < 0 for d in offer.boot_disks):
        problems.append(f"boot disks {offer.boot_disks!r}")
    return [f"{offer.name} ({offer.zone or offer.region}): {p}" for p in problems]


def test_every_offer_satisfies_the_invariants(kit: PricingKit) -> None:
    offers = kit.pricing.offers(kit.region)
    assert offers
    assert [p for offer in offers for p in _check(offer, kit)] == []


def test_an_offer_is_listed_once_per_type_and_zone(kit: PricingKit) -> None:
    keys = [(o.name, o.zone) for o in kit.pricing.offers(kit.region)]
    assert len(keys) == len(set(keys))
    # Where a type has per-zone offers, it has no region-wide one as well.
    zonal = {name for name, zone in keys if zone is not None}
    assert not [name for name, zone in keys if zone is None and name in zonal]


def test_asking_again_or_refreshing_gives_the_same_offers(kit: PricingKit) -> None:
    first = kit.pricing.offers(kit.region)
    assert kit.pricing.offers(kit.region) == first
    assert sorted(kit.pricing.offers(kit.region, refresh=True), key=repr) == sorted(first, key=repr)

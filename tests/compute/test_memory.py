"""The memory provider: bundled catalog, user catalogs, simulated VMs on a virtual clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloud_tasks.adapters.memory.catalog import MemoryPricing, bundled_catalog, resolve_catalog
from cloud_tasks.adapters.memory.clock import VirtualClock
from cloud_tasks.adapters.memory.compute import InMemoryCompute
from cloud_tasks.exceptions import CapacityError, ConfigError, ProviderError, QuotaError
from cloud_tasks.ports import InstanceSpec, InstanceState


@pytest.mark.parametrize("provider", ["aws", "gcp"])
def test_bundled_catalog_covers_common_types(provider: str) -> None:
    catalog = bundled_catalog(provider)
    offers = [o for _p, o in catalog.offers]
    names = {o.name for o in offers}
    assert len(names) >= 60
    assert {o.architecture for o in offers} == {"x86_64", "arm64"}
    assert 2 <= len(catalog.regions) <= 3
    assert catalog.snapshot_date and "pproximate" in catalog.note
    assert all(o.price_per_hour_usd and o.spot_price_per_hour_usd for o in offers)
    assert all(o.spot_price_per_hour_usd < o.price_per_hour_usd for o in offers)  # type: ignore[operator]
    ratios = {round(o.memory_gib / o.vcpus) for o in offers}
    assert {2, 4, 8} <= ratios or {1, 4, 8} <= ratios  # compute, general, memory optimized
    wanted = {
        "aws": ("m7i.", "m7g.", "c7i.", "c7g.", "r7i.", "r7g.", "m6i.", "c6i.", "t3."),
        "gcp": ("n2-standard", "n2-highcpu", "n2-highmem", "n2d-", "c3-", "e2-", "t2a-", "c4a-"),
    }
    for prefix in wanted[provider]:
        assert any(n.startswith(prefix) for n in names), prefix


def test_user_catalog_and_its_errors(tmp_path: Path) -> None:
    good = tmp_path / "cat.json"
    good.write_text(
        json.dumps(
            [
                {
                    "name": "x1",
                    "vcpus": 2,
                    "memory_gib": 4,
                    "architecture": "x86_64",
                    "region": "r1",
                    "zone": "r1-a",
                    "price_per_hour": 0.1,
                }
            ]
        )
    )
    pricing = MemoryPricing(resolve_catalog(str(good)))
    assert [o.name for o in pricing.offers("r1")] == ["x1"]
    assert pricing.default_region() == "r1"
    with pytest.raises(ConfigError, match="not in the instance catalog"):
        pricing.offers("r2")
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            [{"name": "x1", "vcpus": 2.5, "memory_gib": 4, "architecture": "x86_64", "region": "r"}]
        )
    )
    with pytest.raises(
        ConfigError, match=r"bad\.json: offer 0: 'vcpus': expected an integer, got 2\.5"
    ):
        resolve_catalog(str(bad))
    with pytest.raises(ConfigError, match="cannot read"):
        resolve_catalog(None, str(tmp_path / "missing.json"))


def _spec(**changes: object) -> InstanceSpec:
    values: dict[str, object] = dict(
        job_id="job",
        instance_type="n2-standard-4",
        zone="us-central1-a",
        image="ubuntu-24.04-x86_64",
        startup_script="#!/bin/bash\n",
        use_spot=True,
        boot_disk_gb=10,
    )
    values.update(changes)
    return InstanceSpec(**values)  # type: ignore[arg-type]


def test_vms_boot_after_the_delay_and_can_be_preempted() -> None:
    clock = VirtualClock(100.0)
    compute = InMemoryCompute(bundled_catalog("gcp"), clock=clock, boot_delay_s=30)
    vm = compute.create_instance(_spec())
    assert vm.state is InstanceState.PENDING and vm.launched_at == 100.0
    assert vm.price_per_hour_usd > 0  # the catalog's spot price
    clock.advance(30)
    assert compute.list_instances("job")[0].state is InstanceState.RUNNING
    compute.preempt([vm.instance_id])
    assert compute.list_instances("job")[0].state is InstanceState.PREEMPTED
    compute.terminate([vm.instance_id])
    compute.terminate([vm.instance_id])
    assert compute.list_instances(None) == []


def test_random_preemption_follows_the_rate_and_the_seed() -> None:
    def lifetimes(seed: int) -> int:
        clock = VirtualClock()
        compute = InMemoryCompute(
            bundled_catalog("gcp"),
            clock=clock,
            boot_delay_s=0,
            preemption_rate_per_hour=1.0,
            seed=seed,
        )
        for _ in range(200):
            compute.create_instance(_spec())
        clock.advance(3600)
        return sum(i.state is InstanceState.PREEMPTED for i in compute.list_instances(None))

    preempted = lifetimes(1)
    assert 100 < preempted < 155  # 1 - e^-1 ≈ 63 % of 200
    assert lifetimes(1) == preempted


def test_injected_capacity_and_quota_errors() -> None:
    compute = InMemoryCompute(bundled_catalog("gcp"), clock=VirtualClock())
    compute.inject_capacity_error(instance_type="^n2-", zone="us-central1-a", times=1)
    with pytest.raises(CapacityError) as caught:
        compute.create_instance(_spec())
    assert (caught.value.instance_type, caught.value.zone) == ("n2-standard-4", "us-central1-a")
    compute.create_instance(_spec())  # the injected failure was used up
    compute.create_instance(_spec(zone="us-central1-b"))
    compute.inject_capacity_error(quota=True)
    with pytest.raises(QuotaError):
        compute.create_instance(_spec(instance_type="c3-standard-4"))
    compute.clear_capacity_errors()
    with pytest.raises(ProviderError, match="not in the instance catalog"):
        compute.create_instance(_spec(zone="mars-1a"))
    assert len(compute.launched) == 2
    assert compute.default_image("arm64") == "ubuntu-24.04-arm64"

"""The ``Compute`` contract (ports.Compute), run against every adapter.

memory: ``InMemoryCompute`` on its bundled catalog; local: ``LocalCompute`` (process groups);
ec2: ``Ec2Compute`` on moto's server, behind a proxy that answers ``RunInstances`` with EC2's
capacity and quota errors when a test asks; gce: ``GceCompute`` on the loopback Compute Engine
fake, which fails inserts as the real API does when a test asks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from cloud_tasks.exceptions import CapacityError, QuotaError
from cloud_tasks.ports import Compute, InstanceSpec, InstanceState

ADAPTERS = ["memory", "local", "ec2", "gce"]
LIVE = (InstanceState.PENDING, InstanceState.RUNNING)
GCE_PROJECT = "contract-project"
MOTO_ACCOUNT = "123456789012"


@attrs.frozen
class ComputeKit:
    """One adapter, a spec it can launch, and how to make its next launches fail."""

    kind: str
    compute: Compute
    spec: InstanceSpec
    #: Make launches of ``spec`` fail for lack of capacity (None: the provider never does).
    no_capacity: Callable[[], None] | None = None
    #: Make launches of ``spec`` fail on a quota (None: the provider has none).
    no_quota: Callable[[], None] | None = None
    #: Leave room for only this many more instances of ``spec`` (None: the provider starts
    #: a batch whole or not at all, like EC2 with MinCount = MaxCount, or has no limit).
    room_for: Callable[[int], None] | None = None
    #: The architecture of the spec's instance type.
    architecture: str = "x86_64"

    def for_job(self, job_id: str, **changes: Any) -> InstanceSpec:
        return attrs.evolve(self.spec, job_id=job_id, **changes)


def _memory_kit() -> ComputeKit:
    from cloud_tasks.adapters.memory.catalog import bundled_catalog
    from cloud_tasks.adapters.memory.compute import InMemoryCompute

    catalog = bundled_catalog("aws")
    offer = next(
        o for _p, o in catalog.offers if o.spot_price_per_hour_usd and o.architecture == "x86_64"
    )
    zone = offer.zone or catalog.zones(offer.region)[0]
    compute = InMemoryCompute(catalog, boot_delay_s=0.0)
    spec = InstanceSpec(
        "job-a",
        offer.name,
        zone,
        compute.default_image("x86_64"),
        "#!/bin/bash\n",
        True,
        10,
        price_per_hour_usd=0.0421,
    )
    return ComputeKit(
        "memory",
        compute,
        spec,
        no_capacity=lambda: compute.inject_capacity_error(instance_type=offer.name, zone=zone),
        no_quota=lambda: compute.inject_capacity_error(
            instance_type=offer.name, zone=zone, quota=True
        ),
        room_for=lambda n: compute.limit_capacity(n, instance_type=offer.name, zone=zone),
    )


def _local_kit(state_dir: Path) -> Iterator[ComputeKit]:
    from cloud_tasks.adapters.local.compute import (
        LOCAL_IMAGE,
        LOCAL_INSTANCE_TYPE,
        LOCAL_ZONE,
        LocalCompute,
        machine_architecture,
    )

    compute = LocalCompute(state_dir, workdir=state_dir, terminate_wait_s=10.0)
    # exec: the instance's process group is one sleep, which SIGTERM ends at once.
    spec = InstanceSpec(
        "job-a",
        LOCAL_INSTANCE_TYPE,
        LOCAL_ZONE,
        LOCAL_IMAGE,
        "exec sleep 120\n",
        True,
        10,
        price_per_hour_usd=0.0421,
    )
    try:
        yield ComputeKit("local", compute, spec, architecture=machine_architecture())
    finally:
        compute.terminate([i.instance_id for i in compute.list_instances(None)])


def _ec2_kit(moto_server: str) -> Iterator[ComputeKit]:
    import boto3
    from botocore.config import Config

    from cloud_tasks.adapters.aws.ec2 import Ec2Compute
    from tests.faults.proxy import FaultProxy, Request

    faults: dict[str, str] = {}

    def decide(request: Request) -> str | None:
        return faults.get(request.action)

    proxy = FaultProxy(moto_server, decide).start()
    try:
        # Few retries keep the test short (Ec2Compute never retries a capacity error).
        config = Config(retries={"mode": "standard", "max_attempts": 2})
        ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=proxy.url, config=config)
        image = ec2.register_image(
            Name="ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250101",
            Architecture="x86_64",
            RootDeviceName="/dev/sda1",
        )["ImageId"]
        compute = Ec2Compute(ec2, region="us-east-1", image_owner=MOTO_ACCOUNT)
        spec = InstanceSpec(
            "job-a",
            "m7i.large",
            "us-east-1b",
            image,
            "#!/bin/bash\n",
            True,
            10,
            price_per_hour_usd=0.0421,
        )
        yield ComputeKit(
            "ec2",
            compute,
            spec,
            no_capacity=lambda: faults.update(RunInstances="capacity"),
            no_quota=lambda: faults.update(RunInstances="quota"),
        )
    finally:
        proxy.stop()


def _gce_kit(monkeypatch: pytest.MonkeyPatch) -> Iterator[ComputeKit]:
    from cloud_tasks.adapters.gcp.compute import GceCompute
    from cloud_tasks.adapters.gcp.compute_clients import compute_clients
    from tests.fakes.gce import FakeComputeEngine, machine_type

    fake = FakeComputeEngine(GCE_PROJECT)
    zone = "us-central1-a"
    fake.regions = {"us-central1": [zone, "us-central1-b"]}
    fake.machine_types = {zone: [machine_type("n2-standard-4", zone, 4, 16)]}
    fake.images = [
        {
            "name": "ubuntu-2404-noble-amd64-v20250501",
            "family": "ubuntu-2404-lts-amd64",
            "creationTimestamp": "2025-05-01T00:00:00.000-08:00",
            "description": "Canonical, Ubuntu, 24.04 LTS",
        }
    ]
    fake.server.start()
    try:
        monkeypatch.setenv(
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE", f"{fake.server.url}/compute/v1/"
        )
        clients = compute_clients()
        compute = GceCompute(
            instances=clients["instances"],
            zone_operations=clients["zone_operations"],
            regions=clients["regions"],
            images=clients["images"],
            project=GCE_PROJECT,
        )
        spec = InstanceSpec(
            "job-a",
            "n2-standard-4",
            zone,
            "projects/ubuntu-os-cloud/global/images/ubuntu-2404-noble-amd64-v20250501",
            "#!/bin/bash\n",
            True,
            10,
            price_per_hour_usd=0.0421,
        )

        def no_quota() -> None:
            fake.quota_exceeded = True

        yield ComputeKit(
            "gce",
            compute,
            spec,
            no_capacity=lambda: fake.insert_failures.update({zone: "ZONE_RESOURCE_POOL_EXHAUSTED"}),
            no_quota=no_quota,
            room_for=lambda n: fake.zone_capacity.update({zone: n}),
        )
    finally:
        fake.server.stop()


@pytest.fixture(params=ADAPTERS)
def kit(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ComputeKit]:
    kind: str = request.param
    if kind == "memory":
        yield _memory_kit()
    elif kind == "local":
        yield from _local_kit(tmp_path / "state")
    elif kind == "ec2":
        yield from _ec2_kit(request.getfixturevalue("moto_server"))
    else:
        yield from _gce_kit(monkeypatch)


def ids(instances: Any) -> set[str]:
    return {i.instance_id for i in instances}


def test_a_launched_instance_is_what_the_spec_asked_and_its_job_lists_it(
    kit: ComputeKit,
) -> None:
    spec = kit.for_job("job-a")
    created = kit.compute.create_instance(spec)
    assert created.instance_id
    assert (created.job_id, created.instance_type, created.zone) == (
        "job-a",
        spec.instance_type,
        spec.zone,
    )
    assert created.is_spot is spec.use_spot
    assert created.state in LIVE
    (listed,) = kit.compute.list_instances("job-a")
    assert listed.instance_id == created.instance_id
    assert (listed.job_id, listed.instance_type, listed.zone) == (
        "job-a",
        spec.instance_type,
        spec.zone,
    )
    assert listed.state in LIVE
    # The expected price given at launch is recorded on the instance and listed.
    assert listed.price_per_hour_usd == pytest.approx(0.0421)


def test_launching_n_at_once_gives_n_distinct_instances_of_the_job(kit: ComputeKit) -> None:
    created = kit.compute.create_instances(kit.for_job("job-a"), 3)
    assert len(created) == 3
    assert len(ids(created)) == 3
    assert {i.job_id for i in created} == {"job-a"}
    assert ids(kit.compute.list_instances("job-a")) == ids(created)


@pytest.mark.parametrize("count", [0, -1])
def test_launching_fewer_than_one_is_a_value_error(kit: ComputeKit, count: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        kit.compute.create_instances(kit.for_job("job-a"), count)
    assert kit.compute.list_instances("job-a") == []


def test_listing_is_scoped_by_job(kit: ComputeKit) -> None:
    a = kit.compute.create_instance(kit.for_job("job-a"))
    b = kit.compute.create_instances(kit.for_job("job-b", use_spot=False), 2)
    assert ids(kit.compute.list_instances("job-a")) == {a.instance_id}
    assert ids(kit.compute.list_instances("job-b")) == ids(b)
    assert ids(kit.compute.list_instances("job-c")) == set()
    assert ids(kit.compute.list_instances(None)) == {a.instance_id} | ids(b)
    assert all(not i.is_spot for i in kit.compute.list_instances("job-b"))


def test_terminate_makes_instances_go_and_is_idempotent(kit: ComputeKit) -> None:
    doomed = kit.compute.create_instances(kit.for_job("job-a"), 2)
    kept = kit.compute.create_instance(kit.for_job("job-b"))
    kit.compute.terminate([i.instance_id for i in doomed])
    kit.compute.terminate([i.instance_id for i in doomed])
    kit.compute.terminate([])
    assert kit.compute.list_instances("job-a") == []
    assert ids(kit.compute.list_instances(None)) == {kept.instance_id}
    assert kit.compute.list_instances("job-b")[0].state in LIVE


def test_a_zone_without_capacity_raises_capacity_error_naming_type_and_zone(
    kit: ComputeKit,
) -> None:
    if kit.no_capacity is None:
        pytest.skip(f"the {kit.kind} provider never runs out of capacity")
    kit.no_capacity()
    spec = kit.for_job("job-a")
    for launch in (
        lambda: kit.compute.create_instance(spec),
        lambda: kit.compute.create_instances(spec, 3),
    ):
        with pytest.raises(CapacityError) as caught:
            launch()
        assert not isinstance(caught.value, QuotaError)
        assert (caught.value.instance_type, caught.value.zone) == (spec.instance_type, spec.zone)
        assert "\n" not in str(caught.value)
    assert kit.compute.list_instances("job-a") == []


def test_an_exhausted_quota_raises_quota_error(kit: ComputeKit) -> None:
    if kit.no_quota is None:
        pytest.skip(f"the {kit.kind} provider has no quotas")
    kit.no_quota()
    spec = kit.for_job("job-a")
    for launch in (
        lambda: kit.compute.create_instance(spec),
        lambda: kit.compute.create_instances(spec, 3),
    ):
        with pytest.raises(QuotaError) as caught:
            launch()
        assert "\n" not in str(caught.value)
    assert kit.compute.list_instances("job-a") == []


def test_a_zone_with_room_for_fewer_starts_fewer_and_never_none(kit: ComputeKit) -> None:
    if kit.room_for is None:
        whole = f"the {kit.kind} provider starts a batch whole or not at all"
        pytest.skip("the local provider has no capacity limit" if kit.kind == "local" else whole)
    kit.room_for(2)
    spec = kit.for_job("job-a")
    started = kit.compute.create_instances(spec, 4)
    assert len(started) == 2
    assert ids(kit.compute.list_instances("job-a")) == ids(started)
    with pytest.raises(CapacityError):
        kit.compute.create_instances(spec, 4)
    assert ids(kit.compute.list_instances("job-a")) == ids(started)


def test_the_spec_zone_is_listed_and_the_default_image_is_one_of_the_images(
    kit: ComputeKit,
) -> None:
    zones = {zone for region in kit.compute.list_regions() for zone in region.zones}
    assert kit.spec.zone in zones
    images = kit.compute.list_images(kit.architecture)
    assert images
    assert {i.architecture for i in images} == {kit.architecture}
    assert kit.compute.default_image(kit.architecture) in {i.name for i in images}

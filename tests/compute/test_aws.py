"""EC2 and pricing adapters over real HTTP: moto's server for EC2, a loopback Pricing fake."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import boto3
import pytest

from cloud_tasks.adapters.aws.ec2 import MAX_USER_DATA_BYTES, Ec2Compute
from cloud_tasks.adapters.aws.pricing import AwsPricing
from cloud_tasks.adapters.price_cache import PriceCache
from cloud_tasks.exceptions import ConfigError, CredentialsError, RejectedError
from cloud_tasks.ports import InstanceSpec, InstanceState
from tests.fakes.aws_pricing import FakePricingApi, compute_product, storage_product

REGION = "us-east-1"
MOTO_ACCOUNT = "123456789012"


@pytest.fixture
def pricing_api() -> Iterator[FakePricingApi]:
    api = FakePricingApi(
        [
            compute_product("m7i.large", REGION, 0.1008),
            compute_product("m7g.large", REGION, 0.0816),
            compute_product("c7i.xlarge", REGION, 0.1785),
            compute_product("m7i.large", "eu-west-1", 0.112),
            # Distractors the filters must exclude.
            compute_product("m7i.large", REGION, 0.1928, operating_system="Windows"),
            compute_product("m7i.large", REGION, 0.90, tenancy="Dedicated"),
            compute_product("m7i.large", REGION, 0.50, pre_installed_sw="SQL Web"),
            compute_product("m7i.large", REGION, 0.0, capacitystatus="UnusedCapacityReservation"),
            storage_product("gp3", REGION, 0.08),
            storage_product("gp2", REGION, 0.10),
            storage_product("io2", REGION, 0.125),
        ],
        page_size=2,
    )
    api.server.start()
    yield api
    api.server.stop()


def _ec2(endpoint: str, region: str = REGION) -> Any:
    return boto3.client("ec2", region_name=region, endpoint_url=endpoint)


def test_offers_join_types_on_demand_spot_and_disk_prices_and_are_cached(
    moto_server: str, pricing_api: FakePricingApi, tmp_path: Path
) -> None:
    pricing = AwsPricing(
        lambda region: _ec2(moto_server, region),
        boto3.client("pricing", region_name="us-east-1", endpoint_url=pricing_api.url),
        cache=PriceCache(tmp_path),
    )
    offers = pricing.offers(REGION)
    by_name: dict[str, list[Any]] = {}
    for offer in offers:
        by_name.setdefault(offer.name, []).append(offer)
    # Only types with a Linux/shared/no-software on-demand price in the region are offered.
    assert set(by_name) == {"m7i.large", "m7g.large", "c7i.xlarge"}
    m7i = by_name["m7i.large"]
    assert {o.price_per_hour_usd for o in m7i} == {0.1008}
    assert all(o.vcpus == 2 and o.memory_gib == 8.0 for o in m7i)
    assert by_name["m7g.large"][0].architecture == "arm64"
    # moto reports spot prices per zone: one offer per zone, each with its spot price.
    zones = {o.zone for o in m7i}
    assert len(zones) >= 2 and all(z and z.startswith(REGION) for z in zones)
    assert all(o.spot_price_per_hour_usd == pytest.approx(0.00001) for o in m7i)
    disks = {d.disk_type: d.price_per_gib_hour_usd for d in m7i[0].boot_disks}
    assert disks == {"gp3": pytest.approx(0.08 / 730), "gp2": pytest.approx(0.10 / 730)}
    # Filters went to the API; pagination followed NextToken (page size 2).
    bodies = [r[3] for r in pricing_api.server.requests]
    assert any(
        {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"} in b["Filters"]
        for b in bodies
    )
    assert any(b.get("NextToken") for b in bodies)

    # A second call is served from the cache (refresh is covered in test_price_cache.py).
    calls = len(pricing_api.server.requests)
    assert pricing.offers(REGION) == offers
    assert len(pricing_api.server.requests) == calls


def test_rejected_credentials_become_a_credentials_error(pricing_api: FakePricingApi) -> None:
    pricing_api.server.handler = lambda *_args: (
        400,
        {"__type": "UnrecognizedClientException", "message": "The security token is invalid."},
    )
    pricing = AwsPricing(
        lambda region: pytest.fail("EC2 is not asked once the Pricing API refused"),
        boto3.client("pricing", region_name="us-east-1", endpoint_url=pricing_api.url),
    )
    with pytest.raises(CredentialsError, match=r"docs/providers\.md"):
        pricing.fetch_offers(REGION)


def _ubuntu_image(ec2: Any, arch: str, date: str) -> str:
    name_arch = {"x86_64": "amd64", "arm64": "arm64"}[arch]
    return str(
        ec2.register_image(
            Name=f"ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{name_arch}-server-{date}",
            Architecture=arch,
            RootDeviceName="/dev/sda1",
        )["ImageId"]
    )


def test_default_image_is_the_newest_ubuntu_for_the_architecture(moto_server: str) -> None:
    ec2 = _ec2(moto_server)
    older = _ubuntu_image(ec2, "x86_64", "20250101")
    arm = _ubuntu_image(ec2, "arm64", "20250301")
    compute = Ec2Compute(ec2, region=REGION, image_owner=MOTO_ACCOUNT)
    images = compute.list_images("x86_64")
    assert [i.name for i in images] == [older]
    assert compute.default_image("arm64") == arm


def test_create_list_and_terminate_a_tagged_spot_instance(moto_server: str) -> None:
    ec2 = _ec2(moto_server)
    image = _ubuntu_image(ec2, "x86_64", "20250101")
    compute = Ec2Compute(ec2, region=REGION, image_owner=MOTO_ACCOUNT)
    spec = InstanceSpec(
        job_id="job-a",
        instance_type="m7i.large",
        zone="us-east-1b",
        image=image,
        startup_script="#!/bin/bash\necho hello\n",
        use_spot=True,
        boot_disk_gb=40,
        boot_disk_type="gp3",
        price_per_hour_usd=0.04,
    )
    created = compute.create_instance(spec)
    other = compute.create_instance(
        InstanceSpec("job-b", "m7i.large", "us-east-1a", image, "#!/bin/bash\n", False, 10)
    )
    assert created.job_id == "job-a" and created.zone == "us-east-1b"
    assert created.name.startswith("job-a-") and created.is_spot

    raw = ec2.describe_instances(InstanceIds=[created.instance_id])["Reservations"][0]["Instances"][
        0
    ]
    tags = {t["Key"]: t["Value"] for t in raw["Tags"]}
    assert tags["rms-cloud-tasks-job-id"] == "job-a"
    assert tags["rms-cloud-tasks-managed"] == "true"
    assert raw["InstanceLifecycle"] == "spot"
    user_data = ec2.describe_instance_attribute(
        InstanceId=created.instance_id, Attribute="userData"
    )
    assert base64.b64decode(user_data["UserData"]["Value"]).decode() == spec.startup_script
    volume_id = raw["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    assert (volume["Size"], volume["VolumeType"]) == (40, "gp3")

    listed = compute.list_instances("job-a")
    assert [i.instance_id for i in listed] == [created.instance_id]
    assert listed[0].price_per_hour_usd == pytest.approx(0.04)
    assert listed[0].state in (InstanceState.PENDING, InstanceState.RUNNING)
    assert {i.instance_id for i in compute.list_instances(None)} == {
        created.instance_id,
        other.instance_id,
    }

    compute.terminate([created.instance_id])
    compute.terminate([created.instance_id])  # idempotent
    assert compute.list_instances("job-a") == []
    assert [i.instance_id for i in compute.list_instances(None)] == [other.instance_id]


def test_user_data_over_16_kb_is_refused_before_launch(moto_server: str) -> None:
    ec2 = _ec2(moto_server)
    compute = Ec2Compute(ec2, region=REGION)
    spec = InstanceSpec(
        "job-a",
        "m7i.large",
        "us-east-1a",
        "ami-12c6146b",
        "#" * (MAX_USER_DATA_BYTES + 1),
        False,
        10,
    )
    with pytest.raises(ConfigError, match="16384 bytes"):
        compute.create_instance(spec)
    assert compute.list_instances(None) == []


def test_regions_list_their_zones(moto_server: str) -> None:
    compute = Ec2Compute(
        _ec2(moto_server), region=REGION, ec2_for_region=lambda r: _ec2(moto_server, r)
    )
    regions = {r.name: r for r in compute.list_regions()}
    assert "us-east-1a" in regions[REGION].zones
    assert "eu-west-1b" in regions["eu-west-1"].zones


def test_gpu_types_carry_their_gpus_from_describe_instance_types(
    moto_server: str, tmp_path: Path
) -> None:
    api = FakePricingApi(
        [
            compute_product("g4dn.12xlarge", REGION, 3.912),
            compute_product("p4d.24xlarge", REGION, 32.7726),
            compute_product("m7i.large", REGION, 0.1008),
            storage_product("gp3", REGION, 0.08),
        ]
    )
    api.server.start()
    try:
        pricing = AwsPricing(
            lambda region: _ec2(moto_server, region),
            boto3.client("pricing", region_name="us-east-1", endpoint_url=api.url),
        )
        offers = {o.name: o for o in pricing.fetch_offers(REGION)}
    finally:
        api.server.stop()
    g4dn, p4d, m7i = offers["g4dn.12xlarge"], offers["p4d.24xlarge"], offers["m7i.large"]
    assert (g4dn.gpu_type, g4dn.gpus, g4dn.gpu_memory_gib) == ("nvidia-t4", 4, 16.0)
    assert (p4d.gpu_type, p4d.gpus, p4d.gpu_memory_gib) == ("nvidia-a100", 8, 40.0)
    assert (m7i.gpu_type, m7i.gpus) == ("", 0)
    assert not g4dn.attach_gpus  # built in: nothing to attach at launch


def test_a_batch_is_one_run_instances_call_and_a_missing_image_is_rejected(
    moto_server: str,
) -> None:
    from tests.faults.proxy import FaultProxy

    proxy = FaultProxy(moto_server, lambda request: None).start()
    try:
        ec2 = _ec2(proxy.url)
        image = _ubuntu_image(ec2, "x86_64", "20250101")
        compute = Ec2Compute(ec2, region=REGION, image_owner=MOTO_ACCOUNT)
        spec = InstanceSpec("job-a", "m7i.large", "us-east-1a", image, "#!/bin/bash\n", True, 10)
        created = compute.create_instances(spec, 7)
        calls = proxy.actions["RunInstances"]
        with pytest.raises(RejectedError) as caught:
            compute.create_instances(attrs.evolve(spec, image="ami-00000000"), 3)
    finally:
        proxy.stop()
    assert len({i.instance_id for i in created}) == 7 and calls == 1
    assert {i.job_id for i in created} == {"job-a"} and all(i.is_spot for i in created)
    assert caught.value.setting == "image" and "\n" not in str(caught.value)


def test_service_account_names_the_instance_profile_of_the_workers(moto_server: str) -> None:
    ec2 = _ec2(moto_server)
    iam = boto3.client("iam", region_name=REGION, endpoint_url=moto_server)
    iam.create_instance_profile(InstanceProfileName="cloud-tasks-worker")
    image = _ubuntu_image(ec2, "x86_64", "20250101")
    compute = Ec2Compute(ec2, region=REGION, image_owner=MOTO_ACCOUNT)
    spec = InstanceSpec(
        "job-a",
        "m7i.large",
        "us-east-1a",
        image,
        "#!/bin/bash\n",
        False,
        10,
        service_account="cloud-tasks-worker",
    )
    created = compute.create_instances(spec, 2)
    raw = ec2.describe_instances(InstanceIds=[i.instance_id for i in created])["Reservations"]
    # moto associates the profile with the first instance of a reservation only.
    profiles = {i["IamInstanceProfile"]["Arn"] for r in raw for i in r["Instances"][:1]}
    assert profiles == {f"arn:aws:iam::{MOTO_ACCOUNT}:instance-profile/cloud-tasks-worker"}
    with pytest.raises(RejectedError) as caught:
        compute.create_instances(attrs.evolve(spec, service_account="no-such-profile"), 1)
    assert caught.value.setting == "service_account", caught.value


def test_other_regions_get_the_copy_of_the_image_and_are_listed_and_stopped(
    moto_server: str,
) -> None:
    from cloud_tasks.adapters.aws.regions import MultiRegionEc2Compute

    east, west = _ec2(moto_server), _ec2(moto_server, "us-west-2")
    name = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250101"
    east_image = east.register_image(Name=name, Architecture="x86_64")["ImageId"]
    west_image = west.register_image(Name=name, Architecture="x86_64")["ImageId"]
    compute = MultiRegionEc2Compute(
        Ec2Compute(east, region=REGION),
        lambda region: Ec2Compute(_ec2(moto_server, region), region=region),
        ["us-west-2", "eu-west-1"],
    )
    spec = InstanceSpec("job-r", "m7i.large", "us-west-2a", east_image, "#!/bin/bash\n", True, 10)
    there = compute.create_instances(spec, 2)
    here = compute.create_instances(attrs.evolve(spec, zone="us-east-1a"), 1)
    raw = west.describe_instances(InstanceIds=[i.instance_id for i in there])["Reservations"]
    assert {i["ImageId"] for r in raw for i in r["Instances"]} == {west_image}
    listed = {i.instance_id: i.zone for i in compute.list_instances("job-r")}
    assert set(listed) == {i.instance_id for i in (*there, *here)}
    with pytest.raises(RejectedError) as caught:
        compute.create_instances(attrs.evolve(spec, zone="eu-west-1a"), 1)
    assert caught.value.setting == "image"
    compute.terminate(list(listed))
    states = {i.state for i in compute.list_instances("job-r")}
    assert states <= {InstanceState.STOPPING, InstanceState.TERMINATED}

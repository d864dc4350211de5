"""Translators from recorded-shape API payloads to offers, instances and errors (no HTTP)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from cloud_tasks.adapters.aws import translate as aws
from cloud_tasks.adapters.gcp import translate as gcp
from cloud_tasks.exceptions import (
    CapacityError,
    CredentialsError,
    ProviderError,
    QuotaError,
    RejectedError,
)
from cloud_tasks.ports import InstanceState
from tests.fakes.aws_pricing import compute_product, storage_product
from tests.fakes.gce import machine_type, sku

M7GD = {
    "InstanceType": "m7gd.xlarge",
    "VCpuInfo": {"DefaultVCpus": 4},
    "MemoryInfo": {"SizeInMiB": 16384},
    "ProcessorInfo": {"SupportedArchitectures": ["arm64"], "Manufacturer": "AWS"},
    "InstanceStorageInfo": {
        "TotalSizeInGB": 237,
        "Disks": [{"SizeInGB": 237, "Count": 1, "Type": "ssd"}],
    },
    "SupportedUsageClasses": ["on-demand", "spot"],
}


def test_aws_type_info_reads_cpu_memory_arch_ssd_and_spot() -> None:
    info = aws.type_info(M7GD)
    assert info is not None
    assert (info.vcpus, info.memory_gib, info.architecture, info.local_ssd_gib) == (
        4,
        16.0,
        "arm64",
        237.0,
    )
    assert info.spot_supported and info.cpu_family == "AWS Graviton3" and info.cpu_rank == 7
    hdd = dict(M7GD, InstanceStorageInfo={"TotalSizeInGB": 2000, "Disks": [{"Type": "hdd"}]})
    assert aws.type_info(hdd).local_ssd_gib == 0  # type: ignore[union-attr]
    mac = dict(M7GD, ProcessorInfo={"SupportedArchitectures": ["x86_64_mac"]})
    assert aws.type_info(mac) is None


def test_aws_prices_parse_price_list_strings_and_keep_the_latest_spot() -> None:
    products = [json.dumps(compute_product("m7i.large", "us-east-1", 0.1008))]
    assert aws.on_demand_prices(products) == {"m7i.large": 0.1008}
    assert aws.storage_prices([json.dumps(storage_product("gp3", "us-east-1", 0.08))]) == {
        "gp3": pytest.approx(0.08 / 730)
    }
    history = [
        {
            "InstanceType": "m7i.large",
            "AvailabilityZone": "us-east-1a",
            "SpotPrice": "0.05",
            "Timestamp": datetime(2025, 1, 1, tzinfo=UTC),
        },
        {
            "InstanceType": "m7i.large",
            "AvailabilityZone": "us-east-1a",
            "SpotPrice": "0.04",
            "Timestamp": datetime(2025, 1, 2, tzinfo=UTC),
        },
        {
            "InstanceType": "m7i.large",
            "AvailabilityZone": "us-east-1b",
            "SpotPrice": "0.06",
            "Timestamp": datetime(2025, 1, 1, tzinfo=UTC),
        },
    ]
    spot = aws.latest_spot_prices(history)
    assert spot == {("m7i.large", "us-east-1a"): 0.04, ("m7i.large", "us-east-1b"): 0.06}
    info = aws.type_info(dict(M7GD, InstanceType="m7i.large"))
    assert info is not None
    offers = aws.build_offers([info], {"m7i.large": 0.1008}, spot, {"gp3": 0.0001}, "us-east-1")
    assert [(o.zone, o.spot_price_per_hour_usd) for o in offers] == [
        ("us-east-1a", 0.04),
        ("us-east-1b", 0.06),
    ]
    # Without spot history the type is offered once for the region, on-demand only.
    alone = aws.build_offers([info], {"m7i.large": 0.1008}, {}, {}, "us-east-1")
    assert [(o.zone, o.spot_price_per_hour_usd) for o in alone] == [(None, None)]


def test_aws_instances_and_errors() -> None:
    item = {
        "InstanceId": "i-1",
        "InstanceType": "m7i.large",
        "State": {"Name": "shutting-down"},
        "StateReason": {"Code": "Server.SpotInstanceTermination"},
        "InstanceLifecycle": "spot",
        "Placement": {"AvailabilityZone": "us-east-1a"},
        "Tags": [
            {"Key": "rms-cloud-tasks-job-id", "Value": "j"},
            {"Key": "rms-cloud-tasks-price-per-hour", "Value": "0.04"},
        ],
    }
    instance = aws.instance_from_ec2(item)
    assert (instance.state, instance.job_id, instance.price_per_hour_usd) == (
        InstanceState.PREEMPTED,
        "j",
        0.04,
    )
    capacity = aws.translate_error(
        "InsufficientInstanceCapacity",
        "none",
        "run_instances",
        instance_type="m7i.large",
        zone="us-east-1a",
    )
    assert type(capacity) is CapacityError and capacity.zone == "us-east-1a"
    assert isinstance(aws.translate_error("VcpuLimitExceeded", "x", "run_instances"), QuotaError)
    assert isinstance(aws.translate_error("AuthFailure", "x", "run_instances"), CredentialsError)
    assert type(aws.translate_error("InternalError", "x", "run_instances")) is ProviderError


@pytest.mark.parametrize(
    ("code", "message", "setting"),
    [
        ("InvalidAMIID.NotFound", "The image id '[ami-00000000]' does not exist", "image"),
        ("InvalidAMIID.Malformed", 'Invalid id: "ami-x"', "image"),
        ("InvalidParameterValue", "Invalid value 'm9.huge' for InstanceType.", "instance_types"),
        (
            "InvalidParameterValue",
            "Value (nope) for parameter iamInstanceProfile.name is invalid. Invalid IAM "
            "Instance Profile name",
            "service_account",
        ),
        ("InvalidSubnetID.NotFound", "The subnet ID 'subnet-1' does not exist", "subnet"),
        ("InvalidGroup.NotFound", "The security group 'sg-1' does not exist", "security group"),
        ("InvalidUserData.Malformed", "Invalid BASE64 encoding of user data.", "startup_script"),
    ],
)
def test_aws_errors_no_retry_can_fix_name_the_setting_on_one_line(
    code: str, message: str, setting: str
) -> None:
    error = aws.translate_error(code, "\n" + message + "\n", "run_instances")
    assert isinstance(error, RejectedError) and error.setting == setting
    assert "\n" not in str(error) and code in str(error)


@pytest.mark.parametrize(
    ("text", "status", "setting"),
    [
        ("The resource 'projects/ubuntu-os-cloud/global/images/nope' was not found", 404, "image"),
        (
            "Invalid value for field 'resource.machineType': 'zones/z/machineTypes/x'. Machine "
            "type with name 'x' does not exist in zone 'z'.",
            400,
            "instance_types",
        ),
        (
            "RESOURCE_NOT_FOUND: The resource 'projects/p/global/networks/n' was not found",
            0,
            "network",
        ),
        (
            "Invalid value for field 'resource.serviceAccounts[0].email': 'x'.",
            400,
            "service_account",
        ),
    ],
)
def test_gcp_errors_no_retry_can_fix_name_the_setting_on_one_line(
    text: str, status: int, setting: str
) -> None:
    error = gcp.translate_error(text.replace(" ", "\n", 1), "creating an instance", status=status)
    assert isinstance(error, RejectedError) and error.setting == setting
    assert "\n" not in str(error)


def test_gcp_money_counts_units_and_nanos() -> None:
    assert gcp.money({"units": "2", "nanos": 500000000}) == 2.5
    assert gcp.money({"nanos": 31611000}) == pytest.approx(0.031611)
    assert gcp.money({}) == 0


def test_gcp_rates_pick_family_region_and_usage() -> None:
    skus = [
        sku(
            "N2D AMD Instance Core running in Americas",
            ["us-central1"],
            "OnDemand",
            "h",
            0,
            27502000,
        ),
        sku(
            "Spot Preemptible N2D AMD Instance Ram running in Americas",
            ["us-central1"],
            "Preemptible",
            "GiBy.h",
            0,
            900000,
        ),
        sku(
            "N2D AMD Instance Core running in EMEA", ["europe-west4"], "OnDemand", "h", 0, 30000000
        ),
        sku(
            "Commitment v1: N2D AMD Cpu in Americas for 1 Year",
            ["us-central1"],
            "Commit1Yr",
            "h",
            0,
            17000000,
        ),
        sku(
            "SSD backed Local Storage attached to Spot Preemptible VMs",
            ["us-central1"],
            "Preemptible",
            "GiBy.mo",
            0,
            48000000,
        ),
    ]
    rates = gcp.region_rates(skus, "us-central1")
    assert rates.cores == {("n2d", False): pytest.approx(0.027502)}
    assert rates.ram == {("n2d", True): pytest.approx(0.0009)}
    assert rates.local_ssd == {True: pytest.approx(0.048 / 730)}


def test_gcp_machine_types_and_instances() -> None:
    info = gcp.machine_type_info(
        machine_type("c4a-standard-8-lssd", "us-central1-a", 8, 32, arch="ARM64", lssd=2)
    )
    assert (info.architecture, info.local_ssd_gib, info.memory_gib) == ("arm64", 750.0, 32.0)
    item = {
        "name": "job-a-1f2e3d",
        "status": "TERMINATED",
        "labels": {"rms-cloud-tasks-job-id": "job-a"},
        "scheduling": {"provisioningModel": "SPOT"},
        "machineType": "https://x/zones/us-central1-a/machineTypes/n2-standard-4",
        "zone": "https://x/zones/us-central1-a",
        "creationTimestamp": "2025-06-01T12:00:00.000-07:00",
    }
    instance = gcp.instance_from_gce(item)
    assert (instance.state, instance.instance_type, instance.zone) == (
        InstanceState.PREEMPTED,
        "n2-standard-4",
        "us-central1-a",
    )
    assert instance.launched_at == datetime(2025, 6, 1, 19, tzinfo=UTC).timestamp()
    assert type(gcp.translate_error("ZONE_RESOURCE_POOL_EXHAUSTED: no", "insert")) is CapacityError
    assert isinstance(gcp.translate_error("QUOTA_EXCEEDED: CPUS", "insert"), QuotaError)
    assert isinstance(gcp.translate_error("denied", "insert", status=403), CredentialsError)
    assert (
        gcp.operation_error_text({"error": {"errors": [{"code": "A", "message": "b"}]}}) == "A: b"
    )
    assert gcp.operation_error_text({"status": "DONE"}) is None

"""Compute Engine and Cloud Billing adapters over real HTTP against loopback fakes.

The google clients are built exactly as in production (REST transport, gcloud's endpoint
override variables, anonymous credentials for an http:// override).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from cloud_tasks.adapters.gcp.billing import GcpPricing
from cloud_tasks.adapters.gcp.compute import GceCompute
from cloud_tasks.adapters.gcp.compute_clients import catalog_client, compute_clients
from cloud_tasks.adapters.gcp.preflight import (
    PERMISSIONS,
    RESOURCE_MANAGER_OVERRIDE,
    GcpPreflight,
)
from cloud_tasks.exceptions import CapacityError, QuotaError, RejectedError
from cloud_tasks.ports import InstanceSpec, InstanceState, PreflightRequest
from tests.fakes.gce import (
    FakeBilling,
    FakeComputeEngine,
    FakeResourceManager,
    machine_type,
    sku,
)

PROJECT = "test-project"
AMERICAS = ["us-central1", "us-east1"]


@pytest.fixture
def gce(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeComputeEngine]:
    fake = FakeComputeEngine(PROJECT)
    fake.regions = {
        "us-central1": ["us-central1-a", "us-central1-b"],
        "europe-west4": ["europe-west4-a"],
    }
    fake.machine_types = {
        "us-central1-a": [
            machine_type("n2-standard-4", "us-central1-a", 4, 16),
            machine_type("e2-micro", "us-central1-a", 2, 1),
            machine_type("c3-standard-4-lssd", "us-central1-a", 4, 16, lssd=1),
            machine_type("t2a-standard-2", "us-central1-a", 2, 8, arch="ARM64"),
            machine_type("x9-unknown-2", "us-central1-a", 2, 8),
        ],
        "us-central1-b": [machine_type("n2-standard-4", "us-central1-b", 4, 16)],
        "europe-west4-a": [machine_type("n2-standard-8", "europe-west4-a", 8, 32)],
    }
    fake.images = [
        {
            "name": "ubuntu-2404-noble-amd64-v20250101",
            "family": "ubuntu-2404-lts-amd64",
            "creationTimestamp": "2025-01-01T00:00:00.000-08:00",
            "description": "Canonical, Ubuntu, 24.04 LTS",
        },
        {
            "name": "ubuntu-2404-noble-amd64-v20250501",
            "family": "ubuntu-2404-lts-amd64",
            "creationTimestamp": "2025-05-01T00:00:00.000-08:00",
            "description": "Canonical, Ubuntu, 24.04 LTS",
        },
        {
            "name": "ubuntu-2404-noble-arm64-v20250501",
            "family": "ubuntu-2404-lts-arm64",
            "creationTimestamp": "2025-05-01T00:00:00.000-08:00",
            "description": "Canonical, Ubuntu, 24.04 LTS",
        },
        {
            "name": "ubuntu-2204-jammy-v20250101",
            "family": "ubuntu-2204-lts",
            "creationTimestamp": "2025-01-01T00:00:00.000-08:00",
            "description": "22.04",
        },
    ]
    fake.server.start()
    monkeypatch.setenv("CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE", f"{fake.server.url}/compute/v1/")
    yield fake
    fake.server.stop()


@pytest.fixture
def billing(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBilling]:
    fake = FakeBilling(
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
                "N2 Custom Instance Core running in Americas",
                AMERICAS,
                "OnDemand",
                "h",
                0,
                33191000,
            ),
            sku(
                "Commitment v1: N2 Cpu in Americas for 1 Year",
                AMERICAS,
                "Commit1Yr",
                "h",
                0,
                19915000,
            ),
            sku(
                "N2 Instance Core running in Paris", ["europe-west9"], "OnDemand", "h", 0, 38000000
            ),
            sku("C3 Instance Core running in Americas", AMERICAS, "OnDemand", "h", 0, 33980000),
            sku("C3 Instance Ram running in Americas", AMERICAS, "OnDemand", "GiBy.h", 0, 4560000),
            sku("SSD backed Local Storage", AMERICAS, "OnDemand", "GiBy.mo", 0, 80000000),
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
            sku("SSD backed PD Capacity", AMERICAS, "OnDemand", "GiBy.mo", 0, 170000000),
            sku("Storage PD Capacity", AMERICAS, "OnDemand", "GiBy.mo", 0, 40000000),
            # units and nanos both count: 1.5 USD per hour.
            sku("E2 Instance Core running in Americas", AMERICAS, "OnDemand", "h", 1, 500000000),
        ]
    )
    fake.server.start()
    monkeypatch.setenv("CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDBILLING", fake.server.url)
    yield fake
    fake.server.stop()


def _compute(clients: dict[str, Any]) -> GceCompute:
    return GceCompute(
        instances=clients["instances"],
        zone_operations=clients["zone_operations"],
        regions=clients["regions"],
        images=clients["images"],
        project=PROJECT,
    )


def test_offers_price_machine_types_from_core_and_ram_skus(
    gce: FakeComputeEngine, billing: FakeBilling
) -> None:
    pricing = GcpPricing(compute_clients()["machine_types"], catalog_client(), project=PROJECT)
    offers = {o.name: o for o in pricing.offers("us-central1")}
    # Shared-core types, types without core+RAM SKUs and other regions' types are left out.
    assert set(offers) == {"n2-standard-4", "c3-standard-4-lssd", "t2a-standard-2"}
    n2 = offers["n2-standard-4"]
    assert n2.price_per_hour_usd == pytest.approx(4 * 0.031611 + 16 * 0.004237)
    assert n2.spot_price_per_hour_usd == pytest.approx(4 * 0.00765 + 16 * 0.001025)
    assert n2.zone is None and n2.region == "us-central1"
    assert {d.disk_type: d.price_per_gib_hour_usd for d in n2.boot_disks} == {
        "pd-balanced": pytest.approx(0.10 / 730),
        "pd-ssd": pytest.approx(0.17 / 730),
        "pd-standard": pytest.approx(0.04 / 730),
    }
    lssd = offers["c3-standard-4-lssd"]
    assert lssd.local_ssd_gib == 375
    assert lssd.price_per_hour_usd == pytest.approx(4 * 0.03398 + 16 * 0.00456 + 375 * 0.08 / 730)
    assert lssd.spot_price_per_hour_usd is None  # no spot SKUs for C3 in this catalog
    assert offers["t2a-standard-2"].architecture == "arm64"
    # The catalog was read page by page.
    assert len(billing.server.requests) > 1


def test_create_list_and_delete_a_labelled_spot_vm(gce: FakeComputeEngine) -> None:
    compute = _compute(compute_clients())
    image = compute.default_image("x86_64")
    assert image == "projects/ubuntu-os-cloud/global/images/ubuntu-2404-noble-amd64-v20250501"
    spec = InstanceSpec(
        job_id="job-a",
        instance_type="n2-standard-4",
        zone="us-central1-a",
        image=image,
        startup_script="#!/bin/bash\necho hi\n",
        use_spot=True,
        boot_disk_gb=30,
        boot_disk_type="pd-ssd",
        service_account="worker@test-project.iam.gserviceaccount.com",
        price_per_hour_usd=0.05,
    )
    created = compute.create_instance(spec)
    other = compute.create_instance(
        InstanceSpec("job-b", "n2-standard-4", "us-central1-b", image, "#!/bin/bash\n", False, 10)
    )
    assert created.name.startswith("job-a-") and created.zone == "us-central1-a"
    assert created.instance_type == "n2-standard-4" and created.is_spot
    assert created.state is InstanceState.PENDING

    sent = gce.instances[("us-central1-a", created.name)]
    assert sent["labels"] == {"rms-cloud-tasks-job-id": "job-a", "rms-cloud-tasks-managed": "true"}
    assert {"key": "startup-script", "value": spec.startup_script} in sent["metadata"]["items"]
    assert sent["scheduling"]["provisioningModel"] == "SPOT"
    assert sent["scheduling"]["instanceTerminationAction"] == "DELETE"
    params = sent["disks"][0]["initializeParams"]
    assert params["diskSizeGb"] == "30" and params["diskType"].endswith("/pd-ssd")
    assert sent["serviceAccounts"][0]["email"] == spec.service_account

    listed = compute.list_instances("job-a")
    assert [i.instance_id for i in listed] == [created.instance_id]
    assert listed[0].price_per_hour_usd == pytest.approx(0.05)
    assert {i.name for i in compute.list_instances(None)} == {created.name, other.name}

    # A preempted spot VM that was not deleted by GCP shows as preempted and is deleted.
    gce.set_status(created.name, "TERMINATED")
    assert compute.list_instances("job-a")[0].state is InstanceState.PREEMPTED
    compute.terminate([created.instance_id])
    compute.terminate([created.instance_id])  # idempotent
    assert compute.list_instances("job-a") == []
    assert [i.name for i in compute.list_instances(None)] == [other.name]


def test_capacity_and_quota_errors_are_typed(gce: FakeComputeEngine) -> None:
    compute = _compute(compute_clients())
    spec = InstanceSpec("job-a", "n2-standard-4", "us-central1-a", "img", "#!/bin/bash\n", True, 10)
    gce.insert_failures["us-central1-a"] = "ZONE_RESOURCE_POOL_EXHAUSTED"
    with pytest.raises(CapacityError) as caught:
        compute.create_instance(spec)
    assert (caught.value.instance_type, caught.value.zone) == ("n2-standard-4", "us-central1-a")
    assert not isinstance(caught.value, QuotaError)
    gce.quota_exceeded = True
    with pytest.raises(QuotaError, match="Quota"):
        compute.create_instance(spec)


def test_regions_and_images(gce: FakeComputeEngine) -> None:
    compute = _compute(compute_clients())
    regions = {r.name: r.zones for r in compute.list_regions()}
    assert regions == {
        "europe-west4": ("europe-west4-a",),
        "us-central1": ("us-central1-a", "us-central1-b"),
    }
    images = compute.list_images()
    assert [i.architecture for i in images].count("arm64") == 1
    assert all("2404" in i.name for i in images)
    assert compute.list_images("x86_64")[0].name.endswith("v20250501")


@pytest.mark.parametrize("use_spot", [False, True])
def test_n1_gpu_launch_attaches_the_accelerators_and_stops_for_maintenance(
    gce: FakeComputeEngine, use_spot: bool
) -> None:
    gce.machine_types["us-central1-a"].append(machine_type("n1-standard-8", "us-central1-a", 8, 30))
    compute = _compute(compute_clients())
    spec = InstanceSpec(
        job_id="job-g",
        instance_type="n1-standard-8",
        zone="us-central1-a",
        image="img",
        startup_script="#!/bin/bash\n",
        use_spot=use_spot,
        boot_disk_gb=50,
        gpus=2,
        gpu_type="nvidia-tesla-t4",
        attach_gpus=True,
    )
    created = compute.create_instance(spec)
    sent = gce.instances[("us-central1-a", created.name)]
    assert sent["guestAccelerators"] == [
        {
            "acceleratorType": "zones/us-central1-a/acceleratorTypes/nvidia-tesla-t4",
            "acceleratorCount": 2,
        }
    ]
    assert sent["scheduling"]["onHostMaintenance"] == "TERMINATE"


def test_built_in_gpus_are_not_attached_again(gce: FakeComputeEngine) -> None:
    gce.machine_types["us-central1-a"].append(machine_type("g2-standard-4", "us-central1-a", 4, 16))
    compute = _compute(compute_clients())
    spec = InstanceSpec(
        "job-g", "g2-standard-4", "us-central1-a", "img", "#!/bin/bash\n", False, 50,
        gpus=1, gpu_type="nvidia-l4",
    )  # fmt: skip
    created = compute.create_instance(spec)
    sent = gce.instances[("us-central1-a", created.name)]
    assert "guestAccelerators" not in sent
    assert sent["scheduling"]["onHostMaintenance"] == "TERMINATE"


def test_gpu_offers_add_the_gpus_own_skus_to_the_machine_price(
    gce: FakeComputeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    gce.machine_types = {
        "us-central1-a": [
            machine_type("n1-standard-8", "us-central1-a", 8, 30),
            machine_type("n1-standard-32", "us-central1-a", 32, 120),
            machine_type("g2-standard-8", "us-central1-a", 8, 32, accelerators=("nvidia-l4", 1)),
            machine_type(
                "a2-highgpu-1g", "us-central1-a", 12, 85, accelerators=("nvidia-tesla-a100", 1)
            ),
        ]
    }

    def rate(description: str, usage: str, unit: str, nanos: int) -> dict[str, Any]:
        return sku(description, AMERICAS, usage, unit, 0, nanos)

    skus = [
        rate("N1 Predefined Instance Core running in Americas", "OnDemand", "h", 31611000),
        rate("N1 Predefined Instance Ram running in Americas", "OnDemand", "GiBy.h", 4237000),
        rate("Spot Preemptible N1 Predefined Instance Core running in Americas", "Preemptible",
             "h", 6655000),
        rate("Spot Preemptible N1 Predefined Instance Ram running in Americas", "Preemptible",
             "GiBy.h", 892000),
        rate("G2 Instance Core running in Americas", "OnDemand", "h", 24769000),
        rate("G2 Instance Ram running in Americas", "OnDemand", "GiBy.h", 2902000),
        rate("Nvidia Tesla T4 GPU running in Americas", "OnDemand", "h", 350000000),
        rate("Nvidia Tesla T4 GPU attached to Spot Preemptible VMs running in Americas",
             "Preemptible", "h", 140000000),
        rate("Nvidia L4 GPU running in Americas", "OnDemand", "h", 560000000),
        # No A100 SKU in this catalog: a2-highgpu-1g cannot be priced and is left out.
    ]  # fmt: skip
    fake = FakeBilling(skus)
    fake.server.start()
    monkeypatch.setenv("CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDBILLING", fake.server.url)
    try:
        pricing = GcpPricing(compute_clients()["machine_types"], catalog_client(), project=PROJECT)
        offers = pricing.fetch_offers("us-central1")
    finally:
        fake.server.stop()
    found = {(o.name, o.gpu_type, o.gpus): o for o in offers}
    n1 = 8 * 0.031611 + 30 * 0.004237
    n1_spot = 8 * 0.006655 + 30 * 0.000892
    assert found[("n1-standard-8", "", 0)].price_per_hour_usd == pytest.approx(n1)
    for count in (1, 2, 4):
        t4 = found[("n1-standard-8", "nvidia-tesla-t4", count)]
        assert t4.attach_gpus and t4.gpu_memory_gib == 16
        assert t4.price_per_hour_usd == pytest.approx(n1 + count * 0.35)
        assert t4.spot_price_per_hour_usd == pytest.approx(n1_spot + count * 0.14)
    # One T4 can serve at most 24 vCPUs of an N1 machine.
    assert ("n1-standard-32", "nvidia-tesla-t4", 1) not in found
    assert ("n1-standard-32", "nvidia-tesla-t4", 2) in found
    g2 = found[("g2-standard-8", "nvidia-l4", 1)]
    assert not g2.attach_gpus and g2.gpu_memory_gib == 24
    assert g2.price_per_hour_usd == pytest.approx(8 * 0.024769 + 32 * 0.002902 + 0.56)
    assert g2.spot_price_per_hour_usd is None  # no spot SKUs for G2 here
    assert not [o for o in offers if o.name == "a2-highgpu-1g"]


def _bulk_spec(**changes: Any) -> InstanceSpec:
    spec = InstanceSpec(
        "job-a",
        "n2-standard-4",
        "us-central1-a",
        "projects/ubuntu-os-cloud/global/images/ubuntu-2404-noble-amd64-v20250501",
        "#!/bin/bash\necho hi\n",
        True,
        20,
        price_per_hour_usd=0.05,
    )
    return attrs.evolve(spec, **changes)


def test_a_batch_is_one_bulk_insert_run_as_the_default_service_account(
    gce: FakeComputeEngine,
) -> None:
    compute = _compute(compute_clients())
    created = compute.create_instances(_bulk_spec(), 5)
    bulk = [r for r in gce.server.requests if r[1].endswith("/instances/bulkInsert")]
    assert len(bulk) == 1
    assert len({i.name for i in created}) == 5 and all(i.job_id == "job-a" for i in created)
    assert all(i.zone == "us-central1-a" and i.is_spot for i in created)
    sent = gce.instances[("us-central1-a", created[0].name)]
    assert sent["labels"] == {"rms-cloud-tasks-job-id": "job-a", "rms-cloud-tasks-managed": "true"}
    # Without service_account the VMs run as the project's default compute account, with a
    # scope that covers Pub/Sub and logging, so the worker can reach its queue.
    assert sent["serviceAccounts"] == [
        {"email": "default", "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}
    ]


def test_a_batch_takes_what_the_zone_has_and_refusals_name_the_setting(
    gce: FakeComputeEngine,
) -> None:
    compute = _compute(compute_clients())
    gce.zone_capacity["us-central1-a"] = 2
    assert len(compute.create_instances(_bulk_spec(), 4)) == 2
    with pytest.raises(CapacityError):
        compute.create_instances(_bulk_spec(), 4)
    with pytest.raises(RejectedError) as image:
        compute.create_instances(
            _bulk_spec(zone="us-central1-b", image=_bulk_spec().image + "-gone"), 2
        )
    assert image.value.setting == "image" and "\n" not in str(image.value)
    with pytest.raises(RejectedError) as machine:
        compute.create_instances(_bulk_spec(zone="us-central1-b", instance_type="n9-huge-4"), 2)
    assert machine.value.setting == "instance_types"


@pytest.fixture
def resource_manager(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeResourceManager]:
    fake = FakeResourceManager(PROJECT, set(PERMISSIONS))
    fake.server.start()
    monkeypatch.setenv(RESOURCE_MANAGER_OVERRIDE, f"{fake.server.url}/")
    yield fake
    fake.server.stop()


def _preflight() -> GcpPreflight:
    clients = compute_clients()
    return GcpPreflight(images=clients["images"], regions=clients["regions"], project=PROJECT)


def _request(**changes: Any) -> PreflightRequest:
    request = PreflightRequest(
        region="us-central1",
        zone="us-central1-a",
        image="projects/ubuntu-os-cloud/global/images/ubuntu-2404-noble-amd64-v20250501",
        architecture="x86_64",
        instance_type="n2-standard-4",
        vcpus_per_instance=4,
        instances=10,
        use_spot=True,
    )
    return attrs.evolve(request, **changes)


def test_preflight_passes_when_permissions_image_and_quota_are_there(
    gce: FakeComputeEngine, resource_manager: FakeResourceManager
) -> None:
    gce.region_quotas["us-central1"] = [
        {"metric": "CPUS", "limit": 24.0, "usage": 0.0},
        {"metric": "PREEMPTIBLE_CPUS", "limit": 100.0, "usage": 20.0},
    ]
    results = {r.name: r for r in _preflight().checks(_request())}
    assert {name: r.status for name, r in results.items()} == {
        "credentials": "ok",
        "permissions": "ok",
        "image": "ok",
        "spot vCPU quota": "ok",
        "worker credentials": "ok",
    }
    assert "default compute service account" in results["worker credentials"].detail


def test_preflight_names_missing_permissions_images_and_quota(
    gce: FakeComputeEngine, resource_manager: FakeResourceManager
) -> None:
    resource_manager.granted -= {"compute.instances.create", "iam.serviceAccounts.actAs"}
    gce.region_quotas["us-central1"] = [
        {"metric": "CPUS", "limit": 24.0, "usage": 22.0},
        {"metric": "N2_CPUS", "limit": 100.0, "usage": 0.0},
    ]
    request = _request(use_spot=False, image=_request().image + "-gone")
    results = {r.name: r for r in _preflight().checks(request)}
    assert results["permissions"].status == "fail"
    assert "compute.instances.create" in results["permissions"].detail
    assert "iam.serviceAccounts.actAs" in results["permissions"].detail
    assert results["image"].status == "fail" and "list_images" in results["image"].fix
    quota = results["on-demand vCPU quota"]
    assert quota.status == "fail" and "CPUS" in quota.fix  # 2 free, one instance needs 4


def test_preflight_warns_when_the_quota_covers_part_of_the_pool_or_cannot_be_read(
    gce: FakeComputeEngine, resource_manager: FakeResourceManager
) -> None:
    gce.region_quotas["us-central1"] = [{"metric": "CPUS", "limit": 24.0, "usage": 0.0}]
    results = {r.name: r for r in _preflight().checks(_request())}
    assert results["spot vCPU quota"].status == "warn"
    assert "stop at 6 instances" in results["spot vCPU quota"].detail
    resource_manager.server.stop()
    results = {r.name: r for r in _preflight().checks(_request(region="nowhere-1"))}
    assert results["permissions"].status == "warn"
    assert results["spot vCPU quota"].status == "warn"


def test_check_command_on_gcp_shows_every_row_and_fails_on_a_missing_permission(
    gce: FakeComputeEngine,
    billing: FakeBilling,
    resource_manager: FakeResourceManager,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    from click.testing import CliRunner

    from cloud_tasks.entrypoints.cli.main import cli

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")  # never reached: a warning
    gce.region_quotas["us-central1"] = [{"metric": "CPUS", "limit": 100.0, "usage": 0.0}]
    config = tmp_path / "job.yml"
    config.write_text(
        f"provider: gcp\ngcp:\n  job_id: job-g\n  project_id: {PROJECT}\n  region: us-central1\n"
        "  instance_types: ['^n2-standard-4$']\n  max_instances: 5\n"
        "  startup_script: python3 worker.py\n"
    )
    args = ["check", "--config", str(config), "--format", "json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    rows = {c["name"]: c["status"] for c in json.loads(result.stdout)["checks"]}
    assert rows["permissions"] == rows["image"] == rows["on-demand vCPU quota"] == "ok", rows
    assert rows["queue job-g"] == "warn"  # the queue service does not answer: not a failure
    resource_manager.granted.discard("pubsub.topics.create")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert "pubsub.topics.create" in checks["permissions"]["detail"]

"""Compute Engine and Cloud Billing calls through the fault-injecting proxy.

The loopback fakes sit behind the proxy, which answers a share of the requests with
``429 RESOURCE_EXHAUSTED``, 5xx or a reset connection: every call must still succeed (api_core
``Retry`` with capped backoff and jitter), and a ``403 PERMISSION_DENIED`` must surface once,
unretried, as one clear error.
"""

from __future__ import annotations

import pytest

from cloud_tasks.adapters.gcp.billing import GcpPricing
from cloud_tasks.adapters.gcp.compute import GceCompute
from cloud_tasks.adapters.gcp.compute_clients import catalog_client, compute_clients
from cloud_tasks.exceptions import CloudTasksError
from cloud_tasks.ports import InstanceSpec
from tests.compute.test_gcp import PROJECT, billing, gce  # noqa: F401 - fixtures
from tests.fakes.gce import FakeBilling, FakeComputeEngine
from tests.faults.proxy import FaultProxy, every_other

ROTATION = ("throttle", "503", "reset", "500", "504")


def _compute() -> GceCompute:
    clients = compute_clients()
    return GceCompute(
        instances=clients["instances"],
        zone_operations=clients["zone_operations"],
        regions=clients["regions"],
        images=clients["images"],
        project=PROJECT,
    )


def _spec() -> InstanceSpec:
    return InstanceSpec(
        job_id="fault-job",
        instance_type="n2-standard-4",
        zone="us-central1-a",
        image="projects/ubuntu-os-cloud/global/images/ubuntu-2404-noble-amd64-v20250501",
        startup_script="#!/bin/bash\necho hi\n",
        use_spot=True,
        boot_disk_gb=10,
    )


def test_compute_and_billing_ride_out_throttling_5xx_and_resets(
    gce: FakeComputeEngine,  # noqa: F811 - the fixture
    billing: FakeBilling,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compute_proxy = FaultProxy(gce.server.url, every_other(ROTATION, limit=15)).start()
    billing_proxy = FaultProxy(billing.server.url, every_other(ROTATION, limit=5)).start()
    monkeypatch.setenv(
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE", f"{compute_proxy.url}/compute/v1/"
    )
    monkeypatch.setenv("CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDBILLING", billing_proxy.url)
    try:
        compute = _compute()
        created = [compute.create_instance(_spec()) for _ in range(2)]
        listed = compute.list_instances("fault-job")
        regions = compute.list_regions()
        image = compute.default_image("x86_64")
        compute.terminate([i.instance_id for i in created])
        left = compute.list_instances("fault-job")
        pricing = GcpPricing(compute_clients()["machine_types"], catalog_client(), project=PROJECT)
        offers = pricing.offers("us-central1")
    finally:
        compute_proxy.stop()
        billing_proxy.stop()
    assert {i.instance_id for i in listed} == {i.instance_id for i in created}
    assert left == []
    assert any(r.name == "us-central1" for r in regions)
    assert image.endswith("ubuntu-2404-noble-amd64-v20250501")
    assert "n2-standard-4" in {o.name for o in offers}
    assert set(compute_proxy.injected) == set(ROTATION), compute_proxy.injected
    assert sum(compute_proxy.injected.values()) == 15
    assert sum(billing_proxy.injected.values()) == 5


def test_permission_denied_is_not_retried_and_reads_as_one_line(
    gce: FakeComputeEngine,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = FaultProxy(gce.server.url, lambda request: "deny").start()
    monkeypatch.setenv("CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE", f"{proxy.url}/compute/v1/")
    try:
        with pytest.raises(CloudTasksError) as raised:
            _compute().list_instances("fault-job")
    finally:
        proxy.stop()
    assert proxy.injected["deny"] == 1
    message = str(raised.value)
    assert "\n" not in message and "permission" in message.lower(), message

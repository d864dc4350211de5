"""``cloud_tasks check`` on AWS: moto's EC2, STS and IAM, a Service Quotas fake, and a fault
proxy to deny one permission. Happy path, each failure, and an unverifiable check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.fakes.aws_pricing import FakePricingApi, compute_product, storage_product
from tests.fakes.aws_quotas import FakeServiceQuotas
from tests.faults.proxy import FaultProxy, Request

REGION = "us-east-1"
JOB = "check-job"
CLI = (sys.executable, "-m", "cloud_tasks")

pytestmark = pytest.mark.slow


@pytest.fixture
def pricing_api() -> Iterator[FakePricingApi]:
    api = FakePricingApi(
        [compute_product("m7i.large", REGION, 0.1008), storage_product("gp3", REGION, 0.08)]
    )
    api.server.start()
    yield api
    api.server.stop()


@pytest.fixture
def quotas() -> Iterator[FakeServiceQuotas]:
    fake = FakeServiceQuotas({("ec2", "L-34B43A08"): 64.0, ("ec2", "L-1216C47A"): 64.0})
    fake.server.start()
    yield fake
    fake.server.stop()


def _setup(moto_server: str) -> str:
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=moto_server)
    iam = boto3.client("iam", region_name=REGION, endpoint_url=moto_server)
    iam.create_instance_profile(InstanceProfileName="worker-profile")
    return str(
        ec2.register_image(Name="ubuntu", Architecture="x86_64", RootDeviceName="/dev/sda1")[
            "ImageId"
        ]
    )


def _check(
    tmp_path: Path, env: dict[str, str], *, image: str, extra: str = "", args: tuple[str, ...] = ()
) -> tuple[int, dict[str, Any]]:
    (tmp_path / "config.yml").write_text(
        f"provider: aws\naws:\n  job_id: {JOB}\n  region: {REGION}\n  image: {image}\n"
        "  instance_types: ['^m7i\\.large$']\n  use_spot: true\n  max_instances: 4\n"
        "  startup_script: python3 worker.py\n" + extra
    )
    result = subprocess.run(
        [*CLI, "check", "--config", "config.yml", "--format", "json", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout, result.stderr
    return result.returncode, {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def _env(tmp_path: Path, pricing: FakePricingApi, quotas: FakeServiceQuotas) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ENDPOINT_URL_PRICING": pricing.url,
        "AWS_ENDPOINT_URL_SERVICE_QUOTAS": quotas.url,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }


def test_every_check_passes_for_a_job_aws_will_accept(
    moto_server: str, pricing_api: FakePricingApi, quotas: FakeServiceQuotas, tmp_path: Path
) -> None:
    image = _setup(moto_server)
    code, checks = _check(
        tmp_path,
        _env(tmp_path, pricing_api, quotas),
        image=image,
        extra="  service_account: worker-profile\n",
    )
    assert code == 0, checks
    assert {name: c["status"] for name, c in checks.items()} == {
        "credentials": "ok",
        "permission ec2:RunInstances": "ok",
        "permission ec2:CreateTags": "ok",
        "permission ec2:DescribeInstances": "ok",
        "permission ec2:TerminateInstances": "ok",
        "image": "ok",
        "spot vCPU quota": "ok",
        "worker credentials": "ok",
        "startup script": "ok",
        f"queue {JOB}": "ok",
    }
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=moto_server)
    assert ec2.describe_instances()["Reservations"] == []  # dry runs start nothing


def test_each_failure_is_a_row_with_its_fix_and_exit_1(
    moto_server: str, pricing_api: FakePricingApi, quotas: FakeServiceQuotas, tmp_path: Path
) -> None:
    _setup(moto_server)
    quotas.quotas[("ec2", "L-34B43A08")] = 1.0  # less than one m7i.large
    code, checks = _check(
        tmp_path,
        _env(tmp_path, pricing_api, quotas),
        image="ami-00000000",
        extra="  service_account: no-such-profile\n",
    )
    assert code == 1
    assert checks["image"]["status"] == "fail" and "image" in checks["image"]["fix"]
    assert checks["spot vCPU quota"]["status"] == "fail"
    assert "one m7i.large needs 2" in checks["spot vCPU quota"]["detail"]
    assert checks["worker credentials"]["status"] == "fail"
    assert "service_account" in checks["worker credentials"]["fix"]


def test_a_denied_permission_and_rejected_credentials_fail(
    moto_server: str, pricing_api: FakePricingApi, quotas: FakeServiceQuotas, tmp_path: Path
) -> None:
    image = _setup(moto_server)

    def deny_launch(request: Request) -> str | None:
        return "deny" if request.action == "RunInstances" else None

    proxy = FaultProxy(moto_server, deny_launch).start()
    env = {**_env(tmp_path, pricing_api, quotas), "AWS_ENDPOINT_URL_EC2": proxy.url}
    try:
        code, checks = _check(tmp_path, env, image=image)
    finally:
        proxy.stop()
    assert code == 1
    assert checks["permission ec2:RunInstances"]["status"] == "fail"
    assert "ec2:RunInstances" in checks["permission ec2:RunInstances"]["fix"]
    assert checks["permission ec2:DescribeInstances"]["status"] == "ok"
    # Without an instance profile the worker's credentials are a warning, not a failure.
    assert checks["worker credentials"]["status"] == "warn"

    proxy = FaultProxy(moto_server, lambda request: "signature").start()
    env = {**_env(tmp_path, pricing_api, quotas), "AWS_ENDPOINT_URL_STS": proxy.url}
    try:
        code, checks = _check(tmp_path, env, image=image)
    finally:
        proxy.stop()
    assert code == 1 and list(checks) == ["credentials"]
    assert checks["credentials"]["status"] == "fail"


def test_a_check_that_cannot_be_verified_is_a_warning(
    moto_server: str, pricing_api: FakePricingApi, tmp_path: Path
) -> None:
    image = _setup(moto_server)
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_PRICING": pricing_api.url,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "AWS_MAX_ATTEMPTS": "2",
    }
    # moto's Service Quotas knows no EC2 quota: the limit cannot be read.
    code, checks = _check(tmp_path, env, image=image, extra="  service_account: worker-profile\n")
    assert code == 0, checks
    assert checks["spot vCPU quota"]["status"] == "warn"


def test_run_stops_at_a_failed_check_before_creating_anything(
    moto_server: str, pricing_api: FakePricingApi, quotas: FakeServiceQuotas, tmp_path: Path
) -> None:
    (tmp_path / "config.yml").write_text(
        f"provider: aws\naws:\n  job_id: {JOB}\n  region: {REGION}\n  image: ami-00000000\n"
        "  instance_types: ['^m7i\\.large$']\n  startup_script: python3 worker.py\n"
    )
    (tmp_path / "tasks.json").write_text(json.dumps([{"task_id": "t1", "data": {}}]))
    result = subprocess.run(
        [*CLI, "run", "--config", "config.yml", "--tasks", "tasks.json", "-q"],
        cwd=tmp_path,
        env=_env(tmp_path, pricing_api, quotas),
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: preflight check failed: image")
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=moto_server)
    assert sqs.list_queues().get("QueueUrls", []) == []
    assert not (tmp_path / f"{JOB}.db").exists()


def test_manage_pool_stops_at_a_failed_check_before_creating_the_event_queue(
    moto_server: str, pricing_api: FakePricingApi, quotas: FakeServiceQuotas, tmp_path: Path
) -> None:
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=moto_server)
    sqs.create_queue(QueueName=JOB)
    (tmp_path / "config.yml").write_text(
        f"provider: aws\naws:\n  job_id: {JOB}\n  region: {REGION}\n  image: ami-00000000\n"
        "  instance_types: ['^m7i\\.large$']\n  startup_script: python3 worker.py\n"
    )
    result = subprocess.run(
        [*CLI, "manage_pool", "--config", "config.yml", "-q"],
        cwd=tmp_path,
        env=_env(tmp_path, pricing_api, quotas),
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: preflight check failed: image")
    urls = sqs.list_queues().get("QueueUrls", [])
    assert [url.rsplit("/", 1)[-1] for url in urls] == [JOB]
    assert not (tmp_path / f"{JOB}.db").exists()

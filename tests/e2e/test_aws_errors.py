"""``run`` on ``aws`` against moto when the provider refuses the launch for good.

An image that does not exist is refused on every try: the run must end within one scaling
check with one line naming the setting (no line break from the provider's message), exit 1,
and leave no instance running; the queue and task database stay for ``run --continue``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.fakes.aws_pricing import FakePricingApi, compute_product, storage_product

REGION = "us-east-1"
JOB = "bad-image-job"
# --no-check: the preflight would refuse the image before anything starts (tested in
# tests/compute/test_check_aws.py); this test is about a refusal during the run.
TASKS = ("--tasks", "tasks.json", "-q", "--no-check")

pytestmark = pytest.mark.slow


@pytest.fixture
def pricing_api() -> Iterator[FakePricingApi]:
    api = FakePricingApi(
        [compute_product("m7i.large", REGION, 0.1008), storage_product("gp3", REGION, 0.08)]
    )
    api.server.start()
    yield api
    api.server.stop()


def test_an_image_that_does_not_exist_ends_the_run_with_one_line(
    moto_server: str, pricing_api: FakePricingApi, tmp_path: Path
) -> None:
    (tmp_path / "config.yml").write_text(
        f"""\
provider: aws
aws:
  job_id: {JOB}
  region: {REGION}
  image: ami-00000000
  startup_script: python3 my_worker.py
  instance_types: ["^m7i\\\\.large$"]
  max_instances: 3
  scaling_check_interval: 2
"""
    )
    (tmp_path / "tasks.json").write_text(
        json.dumps([{"task_id": f"t{i}", "data": {}} for i in range(10)])
    )
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_PRICING": pricing_api.url,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "cloud_tasks", "run", "--config", "config.yml", *TASKS],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("Error: ") and "InvalidAMIID.NotFound" in lines[0]
    assert "ami-00000000" in lines[0] and "setting: image" in lines[0]
    assert "run --continue" in lines[0]
    print(lines[0])
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=moto_server)
    running = ec2.describe_instances(
        Filters=[
            {"Name": "tag:rms-cloud-tasks-job-id", "Values": [JOB]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )["Reservations"]
    assert running == []
    assert (tmp_path / f"{JOB}.db").exists()

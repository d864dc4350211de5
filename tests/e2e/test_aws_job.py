"""End to end on ``aws`` against moto's server: real EC2 and SQS calls, the test plays the workers.

``cloud_tasks run`` runs as a subprocess. The test watches EC2 for the job's instances, checks
their tags, spot option and user data, and plays the worker of each: it drains the SQS task
queue and reports keep-alives and completions on the event queue. The run must then stop every
instance and delete both queues.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.fakes.aws_pricing import FakePricingApi, compute_product, storage_product

REGION = "us-east-1"
JOB = "moto-job"

pytestmark = pytest.mark.slow


@pytest.fixture
def pricing_api() -> Iterator[FakePricingApi]:
    api = FakePricingApi(
        [
            compute_product("m7i.large", REGION, 0.1008),
            compute_product("c7i.xlarge", REGION, 0.1785),
            storage_product("gp3", REGION, 0.08),
        ]
    )
    api.server.start()
    yield api
    api.server.stop()


def _job_instances(ec2: Any) -> list[dict[str, Any]]:
    pages = ec2.describe_instances(
        Filters=[
            {"Name": "tag:rms-cloud-tasks-job-id", "Values": [JOB]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )["Reservations"]
    return [i for r in pages for i in r["Instances"]]


def _queue_url(sqs: Any, name: str) -> str | None:
    try:
        return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    except sqs.exceptions.QueueDoesNotExist:
        return None


def _event(instance_id: str, kind: str, **fields: Any) -> str:
    return json.dumps(
        {
            "timestamp": "2026-01-01T00:00:00Z",
            "hostname": f"ip-{instance_id}",
            "instance_id": instance_id,
            "event_type": kind,
            **fields,
        }
    )


def _play_workers(sqs: Any, workers: list[str], done: set[str]) -> None:
    """One round of every worker: a keep-alive each, then run what the task queue hands out."""
    events_url = _queue_url(sqs, f"{JOB}-events")
    tasks_url = _queue_url(sqs, JOB)
    if not (events_url and tasks_url and workers):
        return
    for instance_id in workers:
        sqs.send_message(
            QueueUrl=events_url, MessageBody=_event(instance_id, "keep_alive", running_tasks=0)
        )
    messages = sqs.receive_message(
        QueueUrl=tasks_url, MaxNumberOfMessages=10, VisibilityTimeout=30
    ).get("Messages", [])
    for index, message in enumerate(messages):
        body = json.loads(message["Body"])
        sqs.delete_message(QueueUrl=tasks_url, ReceiptHandle=message["ReceiptHandle"])
        sqs.send_message(
            QueueUrl=events_url,
            MessageBody=_event(
                workers[index % len(workers)],
                "task_completed",
                task_id=body["task_id"],
                success=True,
                retry=False,
                attempt=body.get("failures", 0) + 1,
                elapsed_time=0.1,
                result={"i": body["data"]["i"]},
            ),
        )
        done.add(body["task_id"])


def test_run_on_aws_launches_tagged_spot_instances_and_cleans_up(
    moto_server: str, pricing_api: FakePricingApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_PRICING", pricing_api.url)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=moto_server)
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=moto_server)
    image = ec2.register_image(
        Name="ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250101",
        Architecture="x86_64",
        RootDeviceName="/dev/sda1",
    )["ImageId"]
    (tmp_path / "config.yml").write_text(
        f"""\
provider: aws
aws:
  job_id: {JOB}
  region: {REGION}
  image: {image}
  startup_script: |
    cd /opt/my-project && python3 my_worker.py
  instance_types: ["^m7i\\\\.large$"]
  use_spot: true
  max_instances: 2
  scaling_check_interval: 1
  instance_termination_delay: 600
  keepalive_interval: 5
  keepalive_startup_timeout: 120
  keepalive_timeout: 120
"""
    )
    n_tasks = 12
    tasks = [{"task_id": f"t{i}", "data": {"i": i}} for i in range(n_tasks)]
    (tmp_path / "tasks.json").write_text(json.dumps(tasks))
    manager = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cloud_tasks",
            "run",
            "--config",
            "config.yml",
            "--tasks",
            "tasks.json",
        ],
        cwd=tmp_path,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: dict[str, dict[str, Any]] = {}
    user_data: dict[str, str] = {}
    done: set[str] = set()
    try:
        deadline = time.monotonic() + 180
        while manager.poll() is None and time.monotonic() < deadline:
            for instance in _job_instances(ec2):
                instance_id = instance["InstanceId"]
                if instance_id not in seen:
                    seen[instance_id] = instance
                    raw = ec2.describe_instance_attribute(
                        InstanceId=instance_id, Attribute="userData"
                    )["UserData"]["Value"]
                    user_data[instance_id] = base64.b64decode(raw).decode()
            # At the end of the job the manager deletes the queues under the workers' feet.
            with contextlib.suppress(sqs.exceptions.QueueDoesNotExist):
                _play_workers(sqs, sorted(seen), done)
            time.sleep(0.3)
        out, err = manager.communicate(timeout=60)
    finally:
        if manager.poll() is None:
            manager.kill()
    assert manager.returncode == 0, out + err
    assert done == {t["task_id"] for t in tasks}, out + err
    # Two instances of the chosen type, tagged, spot, with the generated user data.
    assert len(seen) == 2, out + err
    for instance_id, instance in seen.items():
        assert instance["InstanceType"] == "m7i.large"
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["rms-cloud-tasks-job-id"] == JOB
        assert tags["rms-cloud-tasks-managed"] == "true"
        assert instance.get("InstanceLifecycle") == "spot"
        script = user_data[instance_id]
        assert script.startswith("#!/bin/bash\n")
        assert f"export RMS_CLOUD_TASKS_JOB_ID={JOB}" in script
        assert "export RMS_CLOUD_TASKS_PROVIDER=aws" in script
        assert "export RMS_CLOUD_TASKS_IS_SPOT=true" in script
        assert "export RMS_CLOUD_TASKS_NUM_TASKS_PER_INSTANCE=2" in script
        assert script.rstrip().endswith("cd /opt/my-project && python3 my_worker.py")
    # Everything is gone: instances terminated, both queues deleted.
    assert _job_instances(ec2) == []
    assert _queue_url(sqs, JOB) is None and _queue_url(sqs, f"{JOB}-events") is None
    status = subprocess.run(
        [
            sys.executable,
            "-m",
            "cloud_tasks",
            "status",
            "--config",
            "config.yml",
            "--format",
            "json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(status.stdout)["tasks"]["completed"] == n_tasks
    assert "All 12 tasks completed." in out


def test_dry_run_on_aws_reads_prices_and_creates_nothing(
    moto_server: str, pricing_api: FakePricingApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_PRICING", pricing_api.url)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=moto_server)
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=moto_server)
    (tmp_path / "config.yml").write_text(
        f"""\
provider: aws
aws:
  job_id: {JOB}
  region: {REGION}
  image: ami-12c6146b
  startup_script: python3 my_worker.py
  use_spot: false
  max_instances: 3
"""
    )
    (tmp_path / "tasks.json").write_text(
        json.dumps([{"task_id": f"t{i}", "data": {}} for i in range(50)])
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cloud_tasks",
            "run",
            "--config",
            "config.yml",
            "--tasks",
            "tasks.json",
            "--dry-run",
            "--task-duration",
            "3600",
            "--format",
            "json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    # The cheapest on-demand price per task slot: c7i.xlarge ($0.1785 / 4 slots) beats
    # m7i.large ($0.1008 / 2 slots).
    assert plan["instance_type"] == "c7i.xlarge"
    assert plan["tasks_per_instance"] == 4
    assert plan["instances"] == 3
    assert plan["price_per_hour_usd"] == pytest.approx(0.1785, rel=0.1)
    assert plan["estimate"]["makespan_s"] == pytest.approx(3600 * -(-50 // 12))
    assert "export RMS_CLOUD_TASKS_PROVIDER=aws" in plan["startup_script"]
    assert sqs.list_queues().get("QueueUrls", []) == []
    assert ec2.describe_instances()["Reservations"] == []
    assert not (tmp_path / f"{JOB}.db").exists()

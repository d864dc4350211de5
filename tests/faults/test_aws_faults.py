"""AWS calls through a fault-injecting proxy in front of moto (and the Pricing fake).

Queue, compute and pricing calls must ride out throttling, 5xx answers and connection resets
(botocore's standard retries: capped exponential backoff with jitter); a non-retryable error
or throttling that never ends must reach the user as one clear line; and ``run`` must finish a
job through random faults and an outage of EC2 longer than any retry, losing nothing.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from cloud_tasks import bootstrap
from cloud_tasks.adapters.local.taskdb import TaskDatabase
from cloud_tasks.config import load_config
from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.ports import InstanceSpec
from tests.fakes.aws_pricing import FakePricingApi, compute_product, storage_product
from tests.faults.proxy import FaultProxy, Request, every_other

REGION = "us-east-1"
ROTATION = ("throttle", "503", "reset", "500", "504")

pytestmark = pytest.mark.slow


@pytest.fixture
def pricing_api() -> Iterator[FakePricingApi]:
    api = FakePricingApi(
        [compute_product("m7i.large", REGION, 0.1008), storage_product("gp3", REGION, 0.08)]
    )
    api.server.start()
    yield api
    api.server.stop()


def _proxy(upstream: str, decide: Any) -> FaultProxy:
    return FaultProxy(upstream, decide).start()


def _config(tmp_path: Path, job: str = "fault-job", extra: str = "") -> Path:
    path = tmp_path / f"{job}.yml"
    path.write_text(
        f"provider: aws\naws:\n  job_id: {job}\n  region: {REGION}\n"
        "  startup_script: |\n    echo start\n" + extra
    )
    return path


def _image(moto_server: str) -> str:
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=moto_server)
    return str(
        ec2.register_image(
            Name="ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250101",
            Architecture="x86_64",
            RootDeviceName="/dev/sda1",
        )["ImageId"]
    )


def test_sqs_calls_ride_out_throttling_5xx_and_resets(
    moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = _proxy(moto_server, every_other(ROTATION, limit=2 * len(ROTATION)))
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    try:
        config = load_config(_config(tmp_path))
        queue = bootstrap.make_task_queue(config)
        events = bootstrap.make_event_queue(config)
        queue.create()
        events.create()
        queue.send([Envelope(Task(f"t{i}", {"i": i})) for i in range(25)])
        received = []
        deadline = time.monotonic() + 60
        while len(received) < 25 and time.monotonic() < deadline:
            for message in queue.receive(10, 30.0, 0.0):
                received.append(message.task_id)
                queue.ack(message.receipt)
        events.send([{"event_type": "keep_alive", "instance_id": "i-1"}])
        assert next(e.event for e in events.receive(10, 1.0))["instance_id"] == "i-1"
        assert queue.depth() == 0
        queue.delete()
        events.delete()
    finally:
        proxy.stop()
    assert sorted(received) == sorted(f"t{i}" for i in range(25))
    for fault in ROTATION:
        assert proxy.injected[fault] == 2, proxy.injected


def test_ec2_and_pricing_calls_ride_out_throttling_5xx_and_resets(
    moto_server: str, pricing_api: FakePricingApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = _image(moto_server)
    ec2_proxy = _proxy(moto_server, every_other(ROTATION, limit=2 * len(ROTATION)))
    pricing_proxy = _proxy(pricing_api.url, every_other(ROTATION, limit=len(ROTATION)))
    monkeypatch.setenv("AWS_ENDPOINT_URL_PRICING", pricing_proxy.url)
    try:
        config = load_config(_config(tmp_path))
        # Prices: the Pricing API through its proxy (EC2's type list and spot history are
        # large; they come from moto directly to keep this test short).
        offers = bootstrap.make_pricing(config).offers(REGION, refresh=True)
        monkeypatch.setenv("AWS_ENDPOINT_URL", ec2_proxy.url)
        compute = bootstrap.make_compute(config)
        created = [
            compute.create_instance(
                InstanceSpec(
                    job_id="fault-job",
                    instance_type="m7i.large",
                    zone=f"{REGION}a",
                    image=image,
                    startup_script="#!/bin/bash\necho hi\n",
                    use_spot=True,
                    boot_disk_gb=10,
                )
            )
            for _ in range(2)
        ]
        listed = compute.list_instances("fault-job")
        compute.terminate([i.instance_id for i in created])
        regions = compute.list_regions()
    finally:
        ec2_proxy.stop()
        pricing_proxy.stop()
    assert {o.name for o in offers} >= {"m7i.large"}
    assert {i.instance_id for i in listed} == {i.instance_id for i in created}
    assert any(r.name == REGION for r in regions)
    assert sum(ec2_proxy.injected.values()) == 10 and sum(pricing_proxy.injected.values()) >= 2
    assert set(ec2_proxy.injected) == set(ROTATION), ec2_proxy.injected


def _cli(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloud_tasks", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.parametrize(
    ("fault", "expected"),
    [("deny", "not authorized"), ("throttle", "")],
    ids=["non-retryable", "throttled-forever"],
)
def test_errors_that_retries_cannot_fix_are_one_clear_line(
    moto_server: str, tmp_path: Path, fault: str, expected: str
) -> None:
    proxy = _proxy(moto_server, lambda request: fault)
    env = {**os.environ, "AWS_ENDPOINT_URL": proxy.url, "AWS_MAX_ATTEMPTS": "3"}
    try:
        result = _cli(
            tmp_path,
            "list_running_instances",
            "--config",
            str(_config(tmp_path)),
            "--format",
            "json",
            env=env,
        )
    finally:
        proxy.stop()
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("Error: ")
    assert expected.lower() in lines[0].lower()
    # A refusal is not retried; throttling is, up to the configured attempts.
    assert proxy.injected[fault] == (1 if fault == "deny" else 3), proxy.injected


def _play_workers(sqs: Any, job: str, stop: threading.Event, done: set[str]) -> None:
    """Plays the job's workers against moto directly (moto's VMs run nothing)."""
    while not stop.is_set():
        try:
            tasks_url = sqs.get_queue_url(QueueName=job)["QueueUrl"]
            events_url = sqs.get_queue_url(QueueName=f"{job}-events")["QueueUrl"]
        except sqs.exceptions.QueueDoesNotExist:
            time.sleep(0.5)
            continue
        ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=sqs.meta.endpoint_url)
        reservations = ec2.describe_instances(
            Filters=[
                {"Name": "tag:rms-cloud-tasks-job-id", "Values": [job]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )["Reservations"]
        workers = [i["InstanceId"] for r in reservations for i in r["Instances"]]
        try:
            for instance_id in workers:
                sqs.send_message(
                    QueueUrl=events_url,
                    MessageBody=json.dumps(
                        {"event_type": "keep_alive", "instance_id": instance_id, "running_tasks": 0}
                    ),
                )
            messages = (
                sqs.receive_message(
                    QueueUrl=tasks_url, MaxNumberOfMessages=10, VisibilityTimeout=30
                ).get("Messages", [])
                if workers
                else []
            )
            for index, message in enumerate(messages):
                body = json.loads(message["Body"])
                sqs.send_message(
                    QueueUrl=events_url,
                    MessageBody=json.dumps(
                        {
                            "timestamp": "2026-01-01T00:00:00Z",
                            "event_type": "task_completed",
                            "instance_id": workers[index % len(workers)],
                            "task_id": body["task_id"],
                            "success": True,
                            "retry": False,
                            "attempt": 1,
                            "elapsed_time": 0.1,
                            "result": {},
                        }
                    ),
                )
                sqs.delete_message(QueueUrl=tasks_url, ReceiptHandle=message["ReceiptHandle"])
                done.add(body["task_id"])
        except sqs.exceptions.QueueDoesNotExist:
            pass
        time.sleep(0.3)


def test_run_survives_random_faults_and_an_ec2_outage(
    moto_server: str, pricing_api: FakePricingApi, tmp_path: Path
) -> None:
    job = "outage-job"
    image = _image(moto_server)
    rng = random.Random(11)
    outage = {"from": float("inf"), "until": float("inf")}
    lock = threading.Lock()

    def decide(request: Request) -> str | None:
        now = time.monotonic()
        if request.action == "DescribeInstances" and outage["from"] <= now < outage["until"]:
            return "503"  # longer than every retry: the manager must wait it out
        with lock:
            if rng.random() < 0.12:
                return rng.choice(ROTATION)
        return None

    proxy = _proxy(moto_server, decide)
    (tmp_path / "tasks.json").write_text(
        json.dumps([{"task_id": f"t{i:02d}", "data": {"i": i}} for i in range(30)])
    )
    config = _config(
        tmp_path,
        job,
        "  instance_types: ['m7i.large']\n  max_instances: 2\n  scaling_check_interval: 1\n"
        "  instance_termination_delay: 1\n  keepalive_interval: 1\n"
        f"  image: {image}\n",
    )
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": proxy.url,
        "AWS_ENDPOINT_URL_PRICING": pricing_api.url,
        "AWS_MAX_ATTEMPTS": "5",  # 0.12**5: no call outside the pool loop fails
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=moto_server)
    stop, done = threading.Event(), set[str]()
    manager = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cloud_tasks",
            "run",
            "--config",
            str(config),
            "--tasks",
            "tasks.json",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    player = threading.Thread(target=_play_workers, args=(sqs, job, stop, done), daemon=True)
    try:
        # Hold the workers back until the outage has begun, so the job outlives it.
        deadline = time.monotonic() + 60
        while not (tmp_path / f"{job}.db").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)
        outage["from"] = time.monotonic()
        outage["until"] = outage["from"] + 12
        time.sleep(4)
        player.start()
        out, err = manager.communicate(timeout=200)
    finally:
        stop.set()
        if manager.poll() is None:
            manager.kill()
        proxy.stop()
    assert manager.returncode == 0, out + err
    assert "provider error, retrying" in err and "answers again" in err, err
    assert "All 30 tasks completed." in out
    assert done == {f"t{i:02d}" for i in range(30)}
    with TaskDatabase(tmp_path / f"{job}.db") as db:
        counts = db.counts()
    assert (counts.completed, counts.total) == (30, 30)
    assert sum(proxy.injected.values()) >= 10, proxy.injected
    print(f"\ninjected: {dict(proxy.injected)}, forwarded {proxy.forwarded}")


def test_an_html_error_page_from_a_proxy_is_retried_on_ec2_pricing_and_sqs(
    moto_server: str, pricing_api: FakePricingApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 502 whose body is a proxy's HTML page is a transient failure on every AWS client."""
    image = _image(moto_server)
    ec2_proxy = _proxy(moto_server, every_other(("html502",), limit=3))
    pricing_proxy = _proxy(pricing_api.url, every_other(("html502",), limit=2))
    monkeypatch.setenv("AWS_ENDPOINT_URL_PRICING", pricing_proxy.url)
    try:
        config = load_config(_config(tmp_path))
        offers = bootstrap.make_pricing(config).offers(REGION, refresh=True)
        monkeypatch.setenv("AWS_ENDPOINT_URL", ec2_proxy.url)
        compute = bootstrap.make_compute(config)
        spec = InstanceSpec(
            "fault-job", "m7i.large", f"{REGION}a", image, "#!/bin/bash\n", True, 10
        )
        created = compute.create_instances(spec, 3)
        listed = compute.list_instances("fault-job")
        queue = bootstrap.make_task_queue(config)
        queue.create()
        queue.delete()
    finally:
        ec2_proxy.stop()
        pricing_proxy.stop()
    assert {o.name for o in offers} >= {"m7i.large"}
    assert len(created) == 3 and {i.instance_id for i in listed} == {i.instance_id for i in created}
    assert ec2_proxy.injected["html502"] == 3 and pricing_proxy.injected["html502"] == 2


def test_an_html_error_page_that_persists_is_one_line(moto_server: str, tmp_path: Path) -> None:
    proxy = _proxy(moto_server, lambda request: "html502")
    env = {**os.environ, "AWS_ENDPOINT_URL": proxy.url, "AWS_MAX_ATTEMPTS": "3"}
    try:
        result = _cli(
            tmp_path,
            "list_running_instances",
            "--config",
            str(_config(tmp_path)),
            env=env,
        )
    finally:
        proxy.stop()
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "502" in lines[0] and "<html" not in lines[0].lower(), lines[0]
    assert proxy.injected["html502"] == 3, proxy.injected


def test_a_capacity_error_is_not_retried_but_a_plain_500_is(
    moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EC2 sends ``InsufficientInstanceCapacity`` as a 500: retrying it only delays the move to
    the next zone, so RunInstances is called once; any other 500 is still retried."""
    from cloud_tasks.adapters.aws.clientconfig import MAX_ATTEMPTS
    from cloud_tasks.exceptions import CapacityError

    image = _image(moto_server)
    faults: list[str] = []

    def decide(request: Request) -> str | None:
        if request.action == "RunInstances" and faults:
            return faults.pop(0)
        return None

    proxy = _proxy(moto_server, decide)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    monkeypatch.delenv("AWS_RETRY_MODE", raising=False)
    spec = InstanceSpec(
        job_id="fault-job",
        instance_type="m7i.large",
        zone=f"{REGION}a",
        image=image,
        startup_script="#!/bin/bash\necho hi\n",
        use_spot=True,
        boot_disk_gb=10,
    )
    try:
        compute = bootstrap.make_compute(load_config(_config(tmp_path)))
        faults.extend(["capacity"] * MAX_ATTEMPTS)
        with pytest.raises(CapacityError) as caught:
            compute.create_instances(spec, 2)
        capacity_calls = proxy.injected["capacity"]
        faults.clear()
        faults.extend(["500", "503"])
        created = compute.create_instances(spec, 2)
        compute.terminate([i.instance_id for i in created])
    finally:
        proxy.stop()
    assert (caught.value.instance_type, caught.value.zone) == ("m7i.large", f"{REGION}a")
    assert capacity_calls == 1
    assert proxy.injected["500"] == 1 and proxy.injected["503"] == 1
    assert len(created) == 2

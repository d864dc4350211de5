"""One job can never touch another's instances or queues, and names are checked before they
reach a resource name or an API filter.

Two jobs side by side, ``alpha`` and ``alpha-2`` (a prefix of each other, the case a loose
match gets wrong), on ``local`` and on AWS (moto); ``stop --delete-queues``,
``list_running_instances`` and ``delete_queue`` of ``alpha`` must leave ``alpha-2`` (and an
instance merely tagged ``alpha`` without the managed marker) untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from cloud_tasks import bootstrap
from cloud_tasks.adapters.aws.ec2 import Ec2Compute
from cloud_tasks.adapters.gcp.compute import GceCompute
from cloud_tasks.config import load_config
from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.exceptions import ConfigError
from cloud_tasks.ports import InstanceSpec, InstanceState

REGION = "us-east-1"
INJECTIONS = ["a*", "a,b", 'a"b', "../x", "a b", "alpha?", "*"]


def _cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloud_tasks", *args],
        cwd=cwd,
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _write_config(directory: Path, provider: str, job: str, extra: str = "") -> Path:
    path = directory / f"{job}.yml"
    path.write_text(
        f"provider: {provider}\n{provider}:\n  job_id: {job}\n  startup_script: |\n"
        "    exec sleep 120\n" + extra
    )
    return path


def _spec(
    job: str, instance_type: str = "local", zone: str = "local", image: str = ""
) -> InstanceSpec:
    return InstanceSpec(
        job_id=job,
        instance_type=instance_type,
        zone=zone,
        image=image,
        startup_script="#!/bin/bash\nexec sleep 120\n",
        use_spot=False,
        boot_disk_gb=10,
    )


@pytest.mark.slow
def test_two_local_jobs_side_by_side(tmp_path: Path) -> None:
    configs = {job: _write_config(tmp_path, "local", job) for job in ("alpha", "alpha-2")}
    loaded = {job: load_config(path) for job, path in configs.items()}
    computes = {job: bootstrap.make_local_compute(config) for job, config in loaded.items()}
    started = {
        "alpha": [computes["alpha"].create_instance(_spec("alpha")) for _ in range(2)],
        "alpha-2": [computes["alpha-2"].create_instance(_spec("alpha-2"))],
    }
    for config in loaded.values():
        queue = bootstrap.make_task_queue(config)
        queue.create()
        bootstrap.make_event_queue(config).create()
        queue.send([Envelope(Task("t1", {}))])
    try:
        listed = _cli(
            tmp_path, "list_running_instances", "--config", "alpha.yml", "--format", "json"
        )
        assert listed.returncode == 0, listed.stderr
        assert {i["instance_id"] for i in json.loads(listed.stdout)} == {
            i.instance_id for i in started["alpha"]
        }
        stopped = _cli(tmp_path, "stop", "--config", "alpha.yml", "--delete-queues")
        assert stopped.returncode == 0, stopped.stderr
        assert "stopped 2 instances" in stopped.stdout
        other = computes["alpha-2"].list_instances("alpha-2")
        assert [(i.instance_id, i.state) for i in other] == [
            (started["alpha-2"][0].instance_id, InstanceState.RUNNING)
        ]
        assert computes["alpha"].list_instances("alpha") == []
        assert not bootstrap.make_task_queue(loaded["alpha"]).exists()
        survivor = bootstrap.make_task_queue(loaded["alpha-2"])
        assert survivor.exists() and survivor.depth() == 1
        assert bootstrap.make_event_queue(loaded["alpha-2"]).exists()
    finally:
        computes["alpha-2"].terminate([i.instance_id for i in started["alpha-2"]])
        computes["alpha"].terminate([i.instance_id for i in started["alpha"]])


def _running(ec2: Any) -> dict[str, str]:
    """instance id → job tag of every pending or running instance."""
    reservations = ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )["Reservations"]
    return {
        i["InstanceId"]: {t["Key"]: t["Value"] for t in i.get("Tags", [])}.get(
            "rms-cloud-tasks-job-id", ""
        )
        for r in reservations
        for i in r["Instances"]
    }


@pytest.mark.slow
def test_two_aws_jobs_side_by_side(moto_server: str, tmp_path: Path) -> None:
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=moto_server)
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=moto_server)
    image = ec2.register_image(
        Name="ubuntu-test", Architecture="x86_64", RootDeviceName="/dev/sda1"
    )["ImageId"]
    region = f"  region: {REGION}\n"
    loaded = {
        job: load_config(_write_config(tmp_path, "aws", job, region))
        for job in ("alpha", "alpha-2")
    }
    started: dict[str, list[str]] = {}
    for job, config in loaded.items():
        compute = bootstrap.make_compute(config)
        count = 2 if job == "alpha" else 1
        started[job] = [
            compute.create_instance(_spec(job, "m7i.large", f"{REGION}a", image)).instance_id
            for _ in range(count)
        ]
        bootstrap.make_task_queue(config).create()
        bootstrap.make_event_queue(config).create()
    # Tagged with the job but not managed by Cloud Tasks: never ours to stop.
    foreign = ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        InstanceType="m7i.large",
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [{"Key": "rms-cloud-tasks-job-id", "Value": "alpha"}],
            }
        ],
    )["Instances"][0]["InstanceId"]
    env = {**os.environ, "AWS_ENDPOINT_URL": moto_server}

    listed = _cli(
        tmp_path, "list_running_instances", "--config", "alpha.yml", "--format", "json", env=env
    )
    assert listed.returncode == 0, listed.stderr
    assert {i["instance_id"] for i in json.loads(listed.stdout)} == set(started["alpha"])
    stopped = _cli(tmp_path, "stop", "--config", "alpha.yml", "--delete-queues", env=env)
    assert stopped.returncode == 0, stopped.stderr

    running = _running(ec2)
    assert set(started["alpha"]).isdisjoint(running)
    assert set(started["alpha-2"]) | {foreign} <= set(running)
    queues = {url.rsplit("/", 1)[-1] for url in sqs.list_queues().get("QueueUrls", [])}
    assert "alpha" not in queues and "alpha-events" not in queues
    assert {"alpha-2", "alpha-2-events"} <= queues

    deleted = _cli(tmp_path, "delete_queue", "--config", "alpha-2.yml", "--force", env=env)
    assert deleted.returncode == 0, deleted.stderr
    assert set(started["alpha-2"]) <= set(_running(ec2))  # deleting queues stops nothing


@pytest.mark.parametrize("bad", INJECTIONS)
def test_injected_job_ids_never_reach_an_instance_filter(bad: str) -> None:
    class Unreachable:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"the provider was called ({name}) with job id {bad!r}")

    ec2 = Ec2Compute(Unreachable(), region=REGION)
    with pytest.raises(ConfigError, match="job id"):
        ec2.list_instances(bad)
    gce = GceCompute(
        instances=Unreachable(),
        zone_operations=Unreachable(),
        regions=Unreachable(),
        images=Unreachable(),
        project="p",
    )
    with pytest.raises(ConfigError, match="job id"):
        gce.list_instances(bad)


@pytest.mark.parametrize("bad", INJECTIONS[:4])
def test_injected_names_on_the_command_line_are_refused(bad: str, tmp_path: Path) -> None:
    (tmp_path / "worker.py").write_text(
        "import sys\nfrom cloud_tasks.worker import Worker\n"
        "Worker(lambda t, d, w: (True, None), args=sys.argv[1:]).run()\n"
    )
    before = set(tmp_path.rglob("*"))
    results = [
        _cli(tmp_path, "stop", "--provider", "local", "--job-id", bad),
        _cli(
            tmp_path, "show_queue", "--provider", "local", "--job-id", "ok-job", "--queue-name", bad
        ),
        subprocess.run(
            [sys.executable, "worker.py", "--provider", "local", "--job-id", bad],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        ),
        subprocess.run(
            [sys.executable, "worker.py", "--provider", "local", "--queue-name", bad],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        ),
    ]
    for result in results:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 1, result.stderr
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert repr(bad) in lines[0] or bad in lines[0], lines[0]
    assert set(tmp_path.rglob("*")) - before == set()
    state = Path(os.environ["XDG_STATE_HOME"])
    assert not list(state.rglob("*.sqlite3")), "a queue file was created"

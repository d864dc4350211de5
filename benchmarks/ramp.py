"""How long the pool manager takes to request a pool of 1,000 instances on each cloud.

The real adapters (``Ec2Compute`` with boto3, ``GceCompute`` with google-cloud-compute) run
against loopback stand-ins with the latency of the real APIs: moto's EC2 behind a proxy that
holds every call for ``--ec2-latency`` seconds (1 s), and the Compute Engine fake whose
operations take ``--gce-latency`` seconds (20 s). One scaling check of the real
``PoolManager`` fills the pool; the script prints the API calls it made and the wall time.

The floor is measured in the same run: one instance launched alone (one call on EC2, one
insert awaited on Compute Engine); one at a time, a pool would take that times the pool size.
Target: <= 120 s for 1,000 instances on each cloud.

    python benchmarks/ramp.py [--instances 1000] [--ec2-latency 1] [--gce-latency 20]
                              [--clouds aws,gcp]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cloud_tasks.adapters.clock import SystemClock
from cloud_tasks.adapters.local.taskdb import TaskDatabase
from cloud_tasks.adapters.memory.queue import InMemoryEventQueue, InMemoryTaskQueue
from cloud_tasks.domain.constraints import InstanceConstraints
from cloud_tasks.domain.offers import BootDiskOption, InstanceOffer
from cloud_tasks.domain.options import PoolLimits
from cloud_tasks.domain.selection import rank_offers
from cloud_tasks.domain.tasks import Task
from cloud_tasks.ports import Compute, InstanceSpec
from cloud_tasks.service_layer.plan import ZoneChoice, launch_options
from cloud_tasks.service_layer.pool import PoolManager, PoolSettings

JOB = "ramp"


def _offer(name: str, region: str, zone: str, vcpus: int, price: float) -> InstanceOffer:
    return InstanceOffer(
        name=name,
        vcpus=vcpus,
        memory_gib=4.0 * vcpus,
        architecture="x86_64",
        region=region,
        zone=zone,
        boot_disks=(BootDiskOption("gp3" if "." in name else "pd-balanced", 0.0001),),
        price_per_hour_usd=price,
        spot_price_per_hour_usd=price / 3,
    )


def _manager(compute: Compute, offer: InstanceOffer, image: str, size: int, tmp: Path) -> Any:
    clock = SystemClock()
    tasks = InMemoryTaskQueue(JOB, clock=clock)
    events = InMemoryEventQueue(f"{JOB}-events", clock=clock)
    tasks.create()
    events.create()
    db = TaskDatabase(tmp / f"{compute.provider}.db")
    db.add_tasks((Task(f"t{i}", {}) for i in range(size)), clock.now())
    ranked = rank_offers([offer], InstanceConstraints(use_spot=True, cpus_per_task=offer.vcpus))
    options = launch_options(ranked, ZoneChoice(None, ()), lambda c, z: "#!/bin/bash\necho\n")
    settings = PoolSettings(
        job_id=JOB,
        image=image,
        limits=PoolLimits(max_instances=size, max_total_price_per_hour=1e9),
    )
    return PoolManager(
        compute=compute,
        task_queue=tasks,
        event_queue=events,
        db=db,
        clock=clock,
        options=options,
        settings=settings,
        log=lambda line: None,
    )


def _ramp(
    name: str,
    compute: Compute,
    offer: InstanceOffer,
    image: str,
    size: int,
    calls: Callable[[], int],
    tmp: Path,
) -> dict[str, float]:
    spec = InstanceSpec(JOB, offer.name, offer.zone or "", image, "#!/bin/bash\n", True, 10)
    compute.create_instances(spec, 1)  # warm-up: image lookup, connections
    before = calls()
    start = time.monotonic()
    compute.create_instance(spec)
    single_s = time.monotonic() - start
    single_calls = calls() - before
    compute.terminate([i.instance_id for i in compute.list_instances(JOB)])
    manager = _manager(compute, offer, image, size, tmp)
    before = calls()
    start = time.monotonic()
    asyncio.run(manager.check(time.time()))
    wall_s = time.monotonic() - start
    made = calls() - before
    pool = len(compute.list_instances(JOB))
    serial_s = single_s * size
    print(
        f"{name}: {pool} instances requested in {wall_s:.1f} s with {made} API calls; "
        f"one at a time: {single_calls} calls and {single_s:.1f} s each -> "
        f"{serial_s / 60:.0f} min for {size} ({serial_s / wall_s:.0f}x slower); "
        f"target <= 120 s: {'met' if wall_s <= 120 and pool == size else 'MISSED'}"
    )
    return {"wall_s": wall_s, "calls": made, "instances": pool}


def bench_aws(size: int, latency_s: float, tmp: Path) -> None:
    import boto3
    from moto.server import ThreadedMotoServer
    from tests.faults.proxy import FaultProxy, Request
    from tests.servers import free_port

    from cloud_tasks.adapters.aws.clientconfig import client_config
    from cloud_tasks.adapters.aws.ec2 import Ec2Compute

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()

    def slow(request: Request) -> None:
        time.sleep(latency_s)

    proxy = FaultProxy(f"http://127.0.0.1:{port}", slow).start()
    try:
        ec2 = boto3.client(
            "ec2", region_name="us-east-1", endpoint_url=proxy.url, config=client_config()
        )
        image = ec2.register_image(Name="ramp", Architecture="x86_64", RootDeviceName="/dev/sda1")
        compute = Ec2Compute(ec2, region="us-east-1")
        offer = _offer("m7i.large", "us-east-1", "us-east-1a", 2, 0.1008)
        _ramp(
            f"EC2 ({latency_s:g} s per call)",
            compute,
            offer,
            str(image["ImageId"]),
            size,
            lambda: sum(proxy.actions.values()),
            tmp,
        )
    finally:
        proxy.stop()
        moto.stop()


def bench_gcp(size: int, latency_s: float, tmp: Path) -> None:
    from tests.fakes.gce import FakeComputeEngine

    from cloud_tasks.adapters.gcp.compute import GceCompute
    from cloud_tasks.adapters.gcp.compute_clients import compute_clients

    fake = FakeComputeEngine("ramp-project")
    fake.operation_latency_s = latency_s
    fake.server.start()
    os.environ["CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE"] = f"{fake.server.url}/compute/v1/"
    try:
        clients = compute_clients()
        compute = GceCompute(
            instances=clients["instances"],
            zone_operations=clients["zone_operations"],
            regions=clients["regions"],
            images=clients["images"],
            project="ramp-project",
        )
        offer = _offer("n2-standard-2", "us-central1", "us-central1-a", 2, 0.0971)
        _ramp(
            f"Compute Engine ({latency_s:g} s per operation)",
            compute,
            offer,
            "projects/ramp-project/global/images/ramp",
            size,
            lambda: len(fake.server.requests),
            tmp,
        )
    finally:
        fake.server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--ec2-latency", type=float, default=1.0)
    parser.add_argument("--gce-latency", type=float, default=20.0)
    parser.add_argument("--clouds", default="aws,gcp")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    with tempfile.TemporaryDirectory() as tmp:
        for cloud in args.clouds.split(","):
            if cloud == "aws":
                bench_aws(args.instances, args.ec2_latency, Path(tmp))
            elif cloud == "gcp":
                bench_gcp(args.instances, args.gce_latency, Path(tmp))
            else:
                parser.error(f"unknown cloud {cloud!r}")


if __name__ == "__main__":
    main()

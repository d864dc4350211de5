"""How the pool manager launches: batched concurrent calls, capacity fallbacks, and errors no
retry can fix (which end the run at once, with one line, and leave nothing running)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import attrs
import pytest

from cloud_tasks.domain.options import PoolLimits
from cloud_tasks.domain.tasks import Task
from cloud_tasks.exceptions import QueueNotFoundError, RejectedError
from cloud_tasks.ports import InstanceSpec, InstanceState
from cloud_tasks.service_layer.pool import LAUNCH_BATCH, PoolManager
from tests.service_layer.test_pool_memory import START, make_job

#: The first scaling check runs at START; the second one scaling_check_interval_s later.
CHECK_S = 30.0


def test_a_large_pool_is_requested_in_few_concurrent_calls() -> None:
    size = 250
    job = make_job(
        2 * size,
        limits=PoolLimits(max_instances=size, max_total_price_per_hour=1000.0),
        compute_kw={"api_latency_s": 20.0, "api_concurrency": 8},
    )
    started: dict[str, float] = {}

    def hook(elapsed: float) -> None:
        for instance in job.compute.list_instances("job"):
            if instance.state is InstanceState.RUNNING:
                started.setdefault(instance.instance_id, elapsed)

    outcome = job.run(hook)
    assert outcome.status == "completed", outcome.message
    # Every instance of the first check came from ceil(size / LAUNCH_BATCH) calls, served at
    # once by the simulated API: the whole pool runs one call latency plus a boot after start.
    assert job.compute.launch_calls >= math.ceil(size / LAUNCH_BATCH)
    first_wave = sorted(started.values())[:size]
    assert len(first_wave) == size
    assert max(first_wave) <= 20.0 + 30.0 + 5.0  # latency + boot + one tick


def test_one_call_per_instance_would_fill_the_pool_slowly_in_the_model() -> None:
    """The latency model is what makes batching matter: a serial API queues calls."""
    job = make_job(10, compute_kw={"api_latency_s": 20.0, "api_concurrency": 1})
    option = job.manager.options[0]
    spec = InstanceSpec(
        "job", option.candidate.name, option.zone, "ubuntu-24.04-x86_64", "#!/bin/bash\n", True, 10
    )
    for _ in range(3):
        job.compute.create_instances(spec, 1)
    job.compute.create_instances(spec, 3)
    seen = []
    for wait_s in (50.0, 20.0, 20.0, 20.0):
        job.clock.advance(wait_s)
        listed = job.compute.list_instances("job")
        seen.append(sum(i.state is InstanceState.RUNNING for i in listed))
    # Serial calls queue 20 s each; the batch of three is one call.
    assert seen == [1, 2, 3, 6]


def test_what_one_option_lacks_capacity_for_goes_to_the_next() -> None:
    job = make_job(40, limits=PoolLimits(max_instances=6))
    best = job.manager.options[0]
    job.compute.limit_capacity(2, instance_type=f"^{best.candidate.name}$", zone=best.zone)
    outcome = job.run()
    assert outcome.status == "completed", outcome.message
    launched = [(s.instance_type, s.zone) for s in job.compute.launched]
    assert launched.count(best.key) == 2
    assert len(launched) >= 6
    assert any("capacity for 2 of 6 only" in line for line in job.log), job.log


@pytest.mark.parametrize("setting", ["image", "instance_types", "service_account"])
def test_a_rejected_launch_ends_the_run_in_one_check_with_one_line(setting: str) -> None:
    job = make_job(40, limits=PoolLimits(max_instances=6))
    best = job.manager.options[0]
    # The best type starts two instances, then has no capacity; every other type is refused
    # for good.
    job.compute.limit_capacity(2, instance_type=f"^{best.candidate.name}$")
    job.compute.inject_rejection(setting=setting, instance_type=f"^(?!{best.candidate.name}$)")
    with pytest.raises(RejectedError) as caught:
        job.run()
    message = str(caught.value)
    assert "\n" not in message and setting in message
    assert "stopped the job's 2 instances" in message
    assert job.clock.now() - START < CHECK_S  # within the first scaling check
    assert job.compute.list_instances("job") == []
    assert all(record.ended_at is not None for record in job.db.instances())


def test_a_quota_too_small_for_one_instance_ends_the_run() -> None:
    job = make_job(40)
    job.compute.inject_capacity_error(quota=True)
    with pytest.raises(RejectedError, match="too small for even one instance"):
        job.run()
    assert job.clock.now() - START < CHECK_S
    assert job.compute.list_instances("job") == []


def test_a_quota_reached_by_a_running_pool_only_stops_growth() -> None:
    job = make_job(40, limits=PoolLimits(max_instances=6))
    best = job.manager.options[0]
    job.compute.limit_capacity(2, instance_type=f"^{best.candidate.name}$", zone=best.zone)
    job.compute.inject_capacity_error(quota=True)
    outcome = job.run()
    assert outcome.status == "completed", outcome.message
    assert len(job.compute.launched) == 2


def test_a_task_queue_deleted_mid_run_stops_the_instances_with_one_line() -> None:
    job = make_job(400, duration_s=600.0)

    def hook(elapsed: float) -> None:
        if elapsed >= 300 and job.task_queue.exists():
            job.task_queue.delete()

    with pytest.raises(QueueNotFoundError) as caught:
        job.run(hook)
    assert "\n" not in str(caught.value) and "stopped the job's" in str(caught.value)
    assert job.compute.list_instances("job") == []


def test_a_spot_pool_spreads_over_pools_within_the_tolerance() -> None:
    spread = make_job(
        400,
        limits=PoolLimits(max_instances=20, max_total_price_per_hour=100.0),
        settings_kw={"spot_spread_tolerance": 0.5},
    )
    outcome = spread.run()
    assert outcome.status == "completed", outcome.message
    pools = {(s.instance_type, s.zone) for s in spread.compute.launched}
    best = spread.manager.options[0].candidate.price_per_task_slot_hour_usd
    prices = {o.key: o.candidate.price_per_task_slot_hour_usd for o in spread.manager.options}
    eligible = {key for key, price in prices.items() if price <= best * 1.5 + 1e-9}
    assert len(eligible) >= 2 and pools == eligible
    single = make_job(400, limits=PoolLimits(max_instances=20, max_total_price_per_hour=100.0))
    assert single.run().status == "completed"
    assert {(s.instance_type, s.zone) for s in single.compute.launched} == {
        single.manager.options[0].key
    }


def test_a_spread_pool_refills_around_a_pool_without_capacity() -> None:
    job = make_job(
        400,
        limits=PoolLimits(max_instances=12, max_total_price_per_hour=100.0),
        settings_kw={"spot_spread_tolerance": 0.5},
    )
    best = job.manager.options[0]
    job.compute.inject_capacity_error(instance_type=f"^{best.candidate.name}$", zone=best.zone)
    outcome = job.run()
    assert outcome.status == "completed", outcome.message
    launched = [(s.instance_type, s.zone) for s in job.compute.launched]
    assert best.key not in launched and len(launched) >= 12


def test_new_instances_go_to_the_next_region_when_the_job_region_has_no_capacity(
    tmp_path: Path,
) -> None:
    from cloud_tasks.adapters.local.taskdb import TaskDatabase
    from cloud_tasks.adapters.memory.clock import VirtualClock
    from cloud_tasks.bootstrap import build_job_adapters
    from cloud_tasks.config import load_config
    from cloud_tasks.service_layer.session import make_plan, pool_settings
    from cloud_tasks.service_layer.simworkers import run_on_virtual_time

    (tmp_path / "job.yml").write_text(
        "provider: aws\naws:\n  job_id: job\n  region: us-east-1\n"
        "  regions: [us-west-2, eu-west-1]\n  use_spot: true\n  min_cpu: 2\n  max_cpu: 2\n"
        "  max_instances: 4\n  startup_script: python3 worker.py\n"
    )
    config = load_config(tmp_path / "job.yml", provider_override="memory", cli_overrides={})
    clock = VirtualClock(START)
    adapters = build_job_adapters(config, tmp_path / "job.db", clock)
    plan = make_plan(config, adapters, 40)
    regions = [o.candidate.offer.region for o in plan.options]
    # The job's region first, then the others by price; never back and forth.
    assert regions[0] == "us-east-1" and {"us-west-2", "eu-west-1"} <= set(regions)
    assert regions == sorted(regions, key=regions.index)
    for option in plan.options:
        assert "export RMS_CLOUD_TASKS_REGION=us-east-1\n" in option.startup_script
    compute = adapters.compute
    for zone in ("us-east-1a", "us-east-1b", "us-east-1c"):
        compute.inject_capacity_error(zone=zone)  # type: ignore[attr-defined]
    adapters.task_queue.create()
    adapters.event_queue.create()
    db = TaskDatabase(tmp_path / "job.db")
    manager = PoolManager(
        compute=compute,
        task_queue=adapters.task_queue,
        event_queue=adapters.event_queue,
        db=db,
        clock=clock,
        options=plan.options,
        settings=attrs.evolve(pool_settings(config, plan), offload=False),
        log=lambda line: None,
    )
    db.add_tasks([Task(f"t{i}", {}) for i in range(40)], START)
    asyncio.run(run_on_virtual_time(clock, manager.check(START), tick_s=1.0, max_virtual_s=60))
    zones = {i.zone for i in compute.list_instances("job")}
    assert len(compute.list_instances("job")) == 4
    assert zones and all(not z.startswith("us-east-1") for z in zones)
    assert adapters.task_queue.exists()  # the queue stays where it is

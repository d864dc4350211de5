"""Spot reclaim waves that hit one capacity pool at a time, and a pool spread against them."""

from __future__ import annotations

import json

import attrs
from click.testing import CliRunner

from cloud_tasks.adapters.memory.catalog import bundled_catalog
from cloud_tasks.adapters.memory.clock import VirtualClock
from cloud_tasks.adapters.memory.compute import InMemoryCompute
from cloud_tasks.domain.durations import ConstantDuration
from cloud_tasks.domain.options import JobConfig
from cloud_tasks.entrypoints.cli.main import cli
from cloud_tasks.ports import InstanceSpec
from cloud_tasks.service_layer.simulation import SimulationResult, simulate
from tests.simulate.helpers import config


def _spec(instance_type: str, zone: str) -> InstanceSpec:
    return InstanceSpec("job", instance_type, zone, "ubuntu-24.04-x86_64", "", True, 10)


def test_a_wave_takes_every_spot_instance_of_its_pool_and_only_that_pool() -> None:
    def waves(seed: int) -> list[float | None]:
        compute = InMemoryCompute(
            bundled_catalog("aws"),
            clock=VirtualClock(0.0),
            pool_preemption_rate_per_hour=1.0,
            seed=seed,
        )
        a = compute.create_instances(_spec("m7i.large", "us-east-1a"), 3)
        b = compute.create_instances(_spec("m7i.large", "us-east-1b"), 2)
        return [compute._vms[i.instance_id].preempt_at for i in (*a, *b)]

    first = waves(7)
    assert len(set(first[:3])) == 1 and len(set(first[3:])) == 1
    assert first[0] != first[3]
    assert waves(7) == first  # the same seed, the same waves


def test_spread_and_single_pool_runs_of_the_same_seed_both_finish() -> None:
    job = config(
        "  spot_spread_tolerance: 0.3\n  max_total_price_per_hour: 100\n", max_instances=12
    )

    def run(job: JobConfig) -> SimulationResult:
        return simulate(
            job,
            duration=ConstantDuration(600.0),
            num_tasks=600,
            pool_preemption_rate_per_hour=1.0,
            seed=2,
        ).result

    spread = run(job)
    single_job = attrs.evolve(job, run=attrs.evolve(job.run, spot_spread_tolerance=0.0))
    single = run(single_job)
    assert spread.status == single.status == "completed"
    assert spread.capacity_pools >= 2 and single.capacity_pools == 1
    assert spread.completed == single.completed == 600
    assert spread.preemptions > 0 and single.preemptions > 0


def test_simulate_compares_spread_with_a_single_pool() -> None:
    config("  spot_spread_tolerance: 0.3\n  max_total_price_per_hour: 100\n", max_instances=8)
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--config",
            "sim.yml",
            "--num-tasks",
            "200",
            "--task-duration",
            "300",
            "--pool-preemption-rate",
            "1",
            "--compare-spread",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["capacity_pools"] >= 2 and data["single_pool"]["capacity_pools"] == 1
    assert data["single_pool"]["seed"] == data["seed"]

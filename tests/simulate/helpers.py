"""Building simulations for the tests: a small AWS spot configuration on the memory provider."""

from __future__ import annotations

from pathlib import Path

from cloud_tasks.config import load_config
from cloud_tasks.domain.durations import DurationModel
from cloud_tasks.domain.options import JobConfig
from cloud_tasks.service_layer.simulation import SimulationRun, simulate


def config(extra: str = "", *, max_instances: int = 4, name: str = "sim.yml") -> JobConfig:
    Path(name).write_text(
        "provider: aws\n"
        "aws:\n"
        "  job_id: sim\n"
        "  use_spot: true\n"
        "  min_cpu: 2\n"
        "  max_cpu: 2\n"
        f"  max_instances: {max_instances}\n" + extra
    )
    return load_config(name, provider_override="memory", cli_overrides={})


def run(
    job: JobConfig,
    duration: DurationModel,
    tasks: int,
    *,
    rate: float = 0.0,
    seed: int = 0,
    boot_s: float = 30.0,
) -> SimulationRun:
    return simulate(
        job,
        duration=duration,
        num_tasks=tasks,
        preemption_rate_per_hour=rate,
        boot_time_s=boot_s,
        seed=seed,
    )

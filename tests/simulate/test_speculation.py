"""Speculative re-runs in the real pool manager, simulated with slow instances."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cloud_tasks.config import load_config
from cloud_tasks.domain.durations import parse_duration_model
from cloud_tasks.entrypoints.cli.main import cli
from cloud_tasks.exceptions import ConfigError
from cloud_tasks.service_layer.simulation import (
    SimulationRun,
    parse_slow_instances,
    simulate,
    slowdown_model,
)


def _run(tmp_path: Path, extra: str, slow: tuple[float, float] | None) -> SimulationRun:
    path = tmp_path / f"job{abs(hash(extra))}.yml"
    path.write_text(
        "provider: aws\naws:\n  job_id: spec\n  use_spot: true\n  max_instances: 20\n"
        "  min_cpu: 4\n  max_cpu: 4\n" + extra
    )
    config = load_config(str(path), provider_override="memory", cli_overrides={})
    return simulate(
        config,
        duration=parse_duration_model("lognormal:4,0.5"),  # type: ignore[arg-type]
        num_tasks=3000,
        preemption_rate_per_hour=0.1,
        seed=3,
        slow_instances=slow,
    )


def test_speculation_shortens_the_tail_of_slow_instances_and_counts_tasks_once(
    tmp_path: Path,
) -> None:
    plain = _run(tmp_path, "", (0.1, 6))
    fast = _run(tmp_path, "", None)
    spec = _run(tmp_path, "  speculative_after: 3x\n", (0.1, 6))
    for run in (plain, fast, spec):
        assert run.result.status == "completed"
        assert run.result.completed == 3000 and run.result.failed == 0
    # Slow instances stretch the job; speculative copies win most of that back.
    assert plain.result.makespan_s > fast.result.makespan_s
    assert spec.result.speculative_runs > 0
    assert spec.result.makespan_s < plain.result.makespan_s
    # The copies run on slots that were idle anyway: within the 5 % extra-cost cap.
    assert spec.result.cost_usd <= plain.result.cost_usd * 1.05
    # More runs than tasks, yet every task counted once.
    assert spec.stats.started > 3000
    assert spec.store.counts().completed == 3000


def test_slow_instances_are_replaced_while_work_waits_and_only_slow_ones(
    tmp_path: Path,
) -> None:
    spec = _run(tmp_path, "  speculative_after: 3x\n", (0.1, 6))
    plain = _run(tmp_path, "", (0.1, 6))
    slowdown = slowdown_model((0.1, 6), 3)
    assert slowdown is not None

    def replaced(run: SimulationRun) -> list[str]:
        return [r.instance_id for r in run.store.instances() if r.end_reason == "slow"]

    slow_ones = replaced(spec)
    assert slow_ones, "no slow instance was replaced"
    assert all(slowdown(instance_id) == 6 for instance_id in slow_ones)
    assert any(f"instance {slow_ones[0]} runs tasks" in line for line in spec.log)
    # Replaced, not just stopped: a new instance was launched for each.
    assert len(spec.compute.launched) >= 20 + len(slow_ones)
    assert replaced(plain) == []
    assert spec.store.counts().completed == 3000


def test_widely_spread_task_times_replace_no_instance(tmp_path: Path) -> None:
    """Long tasks land on every instance: with lognormal sigma 1.5 (the mean is 3x the median)
    and no slow instance, none is judged slow."""
    path = tmp_path / "wide.yml"
    path.write_text(
        "provider: aws\naws:\n  job_id: wide\n  use_spot: true\n  max_instances: 20\n"
        "  min_cpu: 4\n  max_cpu: 4\n  speculative_after: 3x\n"
    )
    config = load_config(str(path), provider_override="memory", cli_overrides={})
    run = simulate(
        config,
        duration=parse_duration_model("lognormal:4,1.5"),  # type: ignore[arg-type]
        num_tasks=3000,
        seed=5,
    )
    assert run.result.completed == 3000
    assert [r.instance_id for r in run.store.instances() if r.end_reason == "slow"] == []
    assert not any("runs tasks" in line for line in run.log)


def test_without_the_option_nothing_is_copied(tmp_path: Path) -> None:
    run = _run(tmp_path, "", (0.1, 6))
    assert run.result.speculative_runs == 0 and run.manager.speculator is None


@pytest.mark.parametrize("text", ["0.05", "2:4", "0.1:0.5", "a:b", "0.1:inf"])
def test_bad_slow_instances_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="expected FRACTION:FACTOR"):
        parse_slow_instances(text)


def test_cli_flags_reach_the_simulation_and_bad_values_are_one_line(tmp_path: Path) -> None:
    args = ["simulate", "--num-tasks", "200", "--task-duration", "60", "--max-instances", "4"]
    ok = CliRunner().invoke(
        cli, [*args, "--slow-instances", "0.5:4", "--speculative-after", "600", "--format", "json"]
    )
    assert ok.exit_code == 0, ok.output
    assert '"slow_instances": "0.5:4"' in ok.output
    bad = CliRunner().invoke(cli, [*args, "--speculative-after", "soon"])
    assert bad.exit_code != 0
    message = str(bad.exception)
    assert "--speculative-after: 'soon'" in message and "(600) or a multiple" in message
    assert "\n" not in message

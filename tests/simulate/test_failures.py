"""Simulated task failures follow the worker's retry rules; capacity errors move the pool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cloud_tasks.domain.durations import ConstantDuration
from cloud_tasks.domain.retry import OutcomeKind
from cloud_tasks.domain.simulated_outcomes import FailureModel, outcomes_from_text
from cloud_tasks.entrypoints.cli.main import cli, main
from cloud_tasks.exceptions import ConfigError
from cloud_tasks.service_layer.simulation import (
    CapacityErrors,
    SimulationRun,
    parse_capacity_error,
    simulate,
)
from tests.simulate.helpers import config

MINUTE = ConstantDuration(60.0)


def _run(
    extra: str, tasks: int, failures: FailureModel | None, max_instances: int = 4, **kw: object
) -> SimulationRun:
    return simulate(
        config(extra, max_instances=max_instances),
        duration=kw.pop("duration", MINUTE),  # type: ignore[arg-type]
        num_tasks=tasks,
        failures=failures,
        **kw,  # type: ignore[arg-type]
    )


# -- the outcomes file ----------------------------------------------------------------------


def test_outcomes_file_lines_and_json_give_the_same_table() -> None:
    text = "# id  outcomes\ntask-1 exception\ntask-2   fail, fail,success  # flaky\n\n"
    table = outcomes_from_text(text, "o.txt")
    assert table == {
        "task-1": (OutcomeKind.EXCEPTION,),
        "task-2": (OutcomeKind.RETRY_REQUESTED, OutcomeKind.RETRY_REQUESTED, OutcomeKind.SUCCESS),
    }
    as_json = json.dumps({"task-1": "exception", "task-2": ["fail", "fail", "success"]})
    assert outcomes_from_text(as_json, "o.json") == table


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("task-1 explode\n", "o.txt, line 1: unknown outcome 'explode'; use one of success,"),
        ("task-1\n", "o.txt, line 1: expected a task id and its outcomes"),
        ("task-1 fail\ntask-1 success\n", "o.txt, line 2: task 'task-1' is listed twice"),
        ('{"task-1": 3}', "o.txt: task 'task-1': expected an outcome or a list of outcomes"),
        ('{"task-1": "fail",', "o.txt: not valid JSON"),
    ],
)
def test_a_bad_outcomes_file_is_one_line_saying_where(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        outcomes_from_text(text, "o.txt")
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_the_last_listed_outcome_repeats_and_unlisted_tasks_use_the_rate() -> None:
    model = FailureModel(0.5, OutcomeKind.EXIT, {"a": (OutcomeKind.EXCEPTION, OutcomeKind.SUCCESS)})
    assert [model.outcome("a", attempt, 0.0) for attempt in (1, 2, 3)] == [
        OutcomeKind.EXCEPTION,
        OutcomeKind.SUCCESS,
        OutcomeKind.SUCCESS,
    ]
    assert model.outcome("b", 1, 0.49) is OutcomeKind.EXIT
    assert model.outcome("b", 1, 0.5) is OutcomeKind.SUCCESS


# -- retry rules in the simulation ----------------------------------------------------------


def test_max_attempts_dead_letters_a_task_that_always_fails() -> None:
    table = {"task-0000003": (OutcomeKind.RETRY_REQUESTED,)}
    sim = _run("  max_attempts: 3\n", 10, FailureModel(table=table))
    result = sim.result
    assert result.status == "completed", result.message
    assert (result.completed, result.failed, result.dead_lettered) == (9, 1, 1)
    # Three attempts of the failing task, one of each other task: nothing more.
    assert sim.stats.started == 9 + 3 and sim.stats.retried == 2
    assert result.retries == 2
    error = sim.store.error_of("task-0000003")  # type: ignore[union-attr]
    assert error is not None and "max_attempts=3" in error


def test_a_requested_retry_then_success_completes_and_counts_its_attempts() -> None:
    table = {"task-0000000": (OutcomeKind.RETRY_REQUESTED, OutcomeKind.SUCCESS)}
    sim = _run("", 4, FailureModel(table=table))
    assert (sim.result.completed, sim.result.failed) == (4, 0)
    assert sim.stats.started == 5 and sim.stats.retried == 1


def test_an_exception_is_retried_only_with_retry_on_exception() -> None:
    table = {"task-0000001": (OutcomeKind.EXCEPTION, OutcomeKind.SUCCESS)}
    off = _run("", 4, FailureModel(table=table))
    assert (off.result.completed, off.result.failed, off.result.dead_lettered) == (3, 1, 0)
    error = off.store.error_of("task-0000001")  # type: ignore[union-attr]
    assert error is not None and "SimulatedFailure" in error
    on = _run("  retry_on_exception: true\n", 4, FailureModel(table=table), seed=0)
    assert (on.result.completed, on.result.failed) == (4, 0)
    assert on.stats.started == 5


def test_a_timed_out_attempt_runs_for_max_runtime() -> None:
    table = {"task-0000000": (OutcomeKind.TIMEOUT,)}
    sim = _run("  max_runtime: 900\n", 2, FailureModel(table=table))
    assert sim.result.failed == 1
    assert sim.result.makespan_s >= 900 + 30  # boot, then the full max_runtime
    fast = _run("  max_runtime: 900\n", 2, None)
    assert fast.result.makespan_s < 900


def test_memory_errors_are_never_retried() -> None:
    table = {"task-0000000": (OutcomeKind.MEMORY,)}
    sim = _run("  retry_on_exception: true\n  retry_on_exit: true\n", 2, FailureModel(table=table))
    assert (sim.result.failed, sim.stats.started) == (1, 2)


def test_a_failure_rate_fails_about_that_share_and_repeats_per_seed() -> None:
    failures = FailureModel(0.2, OutcomeKind.RETRY_REQUESTED)
    first = _run("  max_attempts: 1\n", 1000, failures, max_instances=8, seed=3)
    # max_attempts 1: every first failure is final, and each is dead-lettered.
    assert 150 <= first.result.failed <= 250
    assert first.result.failed == first.result.dead_lettered
    assert first.result.completed + first.result.failed == 1000
    assert first.stats.started == 1000
    again = _run("  max_attempts: 1\n", 1000, failures, max_instances=8, seed=3)
    assert again.result == first.result
    other = _run("  max_attempts: 1\n", 1000, failures, max_instances=8, seed=4)
    assert other.result.failed != first.result.failed


def test_every_attempt_failing_uses_exactly_max_attempts() -> None:
    sim = _run("  max_attempts: 4\n", 20, FailureModel(1.0, OutcomeKind.RETRY_REQUESTED))
    assert sim.result.status == "completed"
    assert (sim.result.failed, sim.result.dead_lettered) == (20, 20)
    assert sim.stats.started == 80


def test_the_preemption_cap_dead_letters_a_task_lost_too_often() -> None:
    # Hour-long tasks on spot instances preempted 20 times an hour, no on-demand fallback:
    # with max_preemptions 1 a task's second lost delivery is its last.
    extra = "  max_preemptions: 1\n  on_demand_after_preemptions: 0\n"
    sim = _run(
        extra, 6, None, duration=ConstantDuration(3600.0), preemption_rate_per_hour=20.0, seed=2
    )
    result = sim.result
    assert result.status == "completed", result.message
    assert result.completed + result.failed == 6
    assert result.dead_lettered == result.failed > 0
    dead = [
        task_id
        for task_id in (f"task-{i:07d}" for i in range(6))
        if sim.store.state_of(task_id) == "failed"  # type: ignore[union-attr]
    ]
    error = sim.store.error_of(dead[0])  # type: ignore[union-attr]
    assert error is not None and "max_preemptions=1" in error


def test_outcomes_for_tasks_not_in_the_job_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"not tasks of the job \(first: 'task-9'"):
        _run("", 3, FailureModel(table={"task-9": (OutcomeKind.EXIT,)}))


# -- capacity errors ------------------------------------------------------------------------


def test_capacity_errors_push_the_pool_to_other_zones_and_types() -> None:
    plain = _run("", 40, None)
    best = plain.result.instance_type
    sim = _run("", 40, None, capacity_errors=[CapacityErrors(f"^{best}$")])
    assert sim.result.status == "completed"
    assert sim.result.capacity_errors > 0
    assert best not in {spec.instance_type for spec in sim.compute.launched}
    assert sim.compute.launched
    assert any("insufficient capacity" in line for line in sim.log)


def test_a_fraction_of_capacity_errors_refuses_some_launches_only() -> None:
    refused = []
    for seed in range(6):
        sim = _run(
            "",
            200,
            None,
            capacity_errors=[CapacityErrors(None, None, 0.5)],
            preemption_rate_per_hour=3.0,
            seed=seed,
        )
        assert sim.result.status == "completed"
        assert sim.compute.launched
        refused.append(sim.result.capacity_errors)
    assert any(refused) and min(refused) < max(refused)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("c6a\\.large", CapacityErrors("c6a\\.large", None, 1.0)),
        ("c6a\\.large@us-east-1a", CapacityErrors("c6a\\.large", "us-east-1a", 1.0)),
        ("*@us-east-1b:0.25", CapacityErrors(None, "us-east-1b", 0.25)),
        (":0.5", CapacityErrors(None, None, 0.5)),
    ],
)
def test_capacity_error_specs(text: str, expected: CapacityErrors) -> None:
    assert parse_capacity_error(text) == expected


@pytest.mark.parametrize("text", ["m7:0", "m7:1.5", "m7:half", "(@z"])
def test_bad_capacity_error_specs_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="--capacity-error"):
        parse_capacity_error(text)


# -- the command line -----------------------------------------------------------------------


def _simulate(*args: str) -> tuple[int, str]:
    config(max_instances=3, name="c.yml")
    result = CliRunner().invoke(
        cli, ["simulate", "--config", "c.yml", "--num-tasks", "50", "--task-duration", "60", *args]
    )
    return result.exit_code, result.output


def test_cli_failure_options_reach_the_simulation() -> None:
    Path("outcomes.txt").write_text("task-0000001 exit\ntask-0000002 fail,success\n")
    code, out = _simulate(
        "--outcomes", "outcomes.txt", "--failure-rate", "0.1", "--failure-kind", "fail",
        "--max-attempts", "2", "--retry-on-exit", "--format", "json",
    )  # fmt: skip
    assert code == 0, out
    data = json.loads(out)
    assert data["failure_rate"] == 0.1
    assert data["failed"] >= 1 and data["failed"] == data["dead_lettered"]
    assert data["completed"] + data["failed"] == 50
    code, text = _simulate("--outcomes", "outcomes.txt", "--seed", "1")
    assert code == 0, text
    assert "Failures:    1 tasks failed (0 given up by max_attempts or max_preemptions)" in text


def test_cli_capacity_errors_are_counted() -> None:
    code, out = _simulate("--format", "json")
    assert code == 0, out
    best = json.loads(out)["instance_type"]
    assert json.loads(out)["capacity_errors"] == 0
    code, out = _simulate("--capacity-error", f"^{best}$", "--format", "json")
    assert code == 0, out
    assert json.loads(out)["capacity_errors"] >= 1
    code, text = _simulate("--capacity-error", f"^{best}$")
    assert "launches refused for lack of capacity" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--outcomes", "missing.txt"), "--outcomes missing.txt: cannot read it"),
        (("--capacity-error", "m7:2"), "--capacity-error 'm7:2': the fraction"),
        (("--outcomes", "bad.txt"), "--outcomes bad.txt, line 1: unknown outcome 'boom'"),
    ],
)
def test_cli_bad_failure_options_are_one_line(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    config(max_instances=3, name="c.yml")
    Path("bad.txt").write_text("task-0000001 boom\n")
    with pytest.raises(SystemExit) as exited:
        main(["simulate", "--config", "c.yml", "--num-tasks", "5", "--task-duration", "5", *args])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 1 and len(lines) == 1 and lines[0].startswith("Error:")
    assert message in lines[0]


def test_cli_refuses_a_failure_rate_above_one() -> None:
    code, out = _simulate("--failure-rate", "1.5")
    assert code == 2 and "--failure-rate" in out

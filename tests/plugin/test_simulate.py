"""``cloud_tasks.testing.simulate`` driving the real worker against the in-memory queue."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud_tasks.exceptions import TaskFileError
from cloud_tasks.testing import UNCAPPED_ATTEMPTS_LIMIT, CloudTasksSim, SimReport, simulate
from cloud_tasks.worker import WorkerData
from tests.plugin.usertasks import heavy_task

_SEEN: list[str] = []


def process_task(task_id: str, task_data: dict[str, Any], worker_data: WorkerData) -> Any:
    """One task function whose behaviour each task's data selects."""
    mode = task_data.get("mode", "success")
    _SEEN.append(task_id)  # only ever visible inside this task's own process
    if mode == "success":
        return True, {
            "double": 2 * task_data.get("x", 0),
            "pid": os.getpid(),
            "seen": list(_SEEN),
            "attempt": worker_data.attempt,
            "max_runtime": worker_data.max_runtime,
        }
    if mode == "retry":
        return False, {"attempt": worker_data.attempt}
    if mode == "flaky":
        if worker_data.attempt < 2:
            raise RuntimeError(f"first attempt of {task_id} fails")
        return True, {"attempt": worker_data.attempt}
    if mode == "raise":
        raise ValueError(f"bad input in {task_id}")
    if mode == "exit":
        sys.exit(3)
    if mode == "sleep":
        time.sleep(task_data["seconds"])
        return True, {"notice": worker_data.received_termination_notice}
    if mode == "until_notice":
        deadline = time.monotonic() + 5
        while not worker_data.received_termination_notice and time.monotonic() < deadline:
            time.sleep(0.01)
        return True, {"notice": worker_data.received_termination_notice}
    raise AssertionError(f"unknown mode {mode}")


def _tasks(mode: str, count: int, **data: Any) -> list[dict[str, Any]]:
    return [{"task_id": f"{mode}-{i}", "data": {"mode": mode, **data}} for i in range(count)]


def _of(report: SimReport, event_type: str) -> list[dict[str, Any]]:
    return [e for e in report.events if e["event_type"] == event_type]


def test_tasks_complete_in_their_own_processes_with_results_attempts_and_events() -> None:
    with simulate() as sim:
        sim.add_tasks([{"task_id": f"t{i}", "data": {"x": i}} for i in range(6)])
        report = sim.run(process_task, num_simultaneous_tasks=3, max_runtime=7)
    ids = {f"t{i}" for i in range(6)}
    assert report.completed == ids
    assert report.failed == set() and report.pending == set()
    assert report.attempts == dict.fromkeys(sorted(ids), 1)
    assert {task_id: r["double"] for task_id, r in report.results.items()} == {
        f"t{i}": 2 * i for i in range(6)
    }
    for task_id, result in report.results.items():
        assert result["pid"] != os.getpid()
        assert result["seen"] == [task_id]  # a global changed by one task is not seen by the next
        assert result["attempt"] == 1 and result["max_runtime"] == 7
    completed = _of(report, "task_completed")
    assert len(completed) == 6
    for event in completed:
        assert {"timestamp", "hostname", "instance_id", "event_type", "task_id"} <= set(event)
        assert {"success", "retry", "attempt", "elapsed_time", "result"} <= set(event)
        assert event["success"] is True and event["retry"] is False


def test_a_task_that_always_asks_for_a_retry_fails_after_max_attempts() -> None:
    with simulate() as sim:
        sim.add_tasks(_tasks("retry", 1))
        report = sim.run(process_task, max_attempts=3)
    assert report.failed == {"retry-0"} and report.completed == set()
    assert report.attempts == {"retry-0": 3}
    assert report.results == {"retry-0": {"attempt": 3}}
    retries = [(e["attempt"], e["retry"]) for e in _of(report, "task_completed")]
    assert retries == [(1, True), (2, True), (3, False)]
    (dead,) = _of(report, "task_dead_lettered")
    assert "max_attempts=3" in dead["reason"]


def test_max_attempts_zero_is_bounded_so_run_ends() -> None:
    with simulate() as sim:
        sim.add_tasks(_tasks("retry", 1))
        report = sim.run(process_task, max_attempts=0)
    assert report.failed == {"retry-0"}
    assert report.attempts == {"retry-0": UNCAPPED_ATTEMPTS_LIMIT}


@pytest.mark.parametrize(
    ("retry_on_exception", "expected_attempts"), [(False, 1), (True, 2)], ids=["off", "on"]
)
def test_exceptions_are_retried_only_with_retry_on_exception(
    retry_on_exception: bool, expected_attempts: int
) -> None:
    with simulate() as sim:
        sim.add_tasks(_tasks("raise", 1) + _tasks("flaky", 1))
        report = sim.run(process_task, max_attempts=2, retry_on_exception=retry_on_exception)
    assert report.attempts == {"raise-0": expected_attempts, "flaky-0": expected_attempts}
    assert "raise-0" in report.failed
    assert ("flaky-0" in report.completed) is retry_on_exception
    errors = _of(report, "task_exception")
    assert all(
        "ValueError: bad input in raise-0" in e["exception"]
        for e in errors
        if e["task_id"] == "raise-0"
    )


def test_an_exiting_task_is_reported_with_its_exit_code_and_retried_on_request() -> None:
    with simulate() as sim:
        sim.add_tasks(_tasks("exit", 1))
        report = sim.run(process_task, retry_on_exit=True, max_attempts=2)
    assert report.failed == {"exit-0"} and report.attempts == {"exit-0": 2}
    assert [e["exit_code"] for e in _of(report, "task_exited")] == [3, 3]


def test_a_task_over_max_runtime_is_killed_and_retried_only_with_retry_on_timeout() -> None:
    with simulate() as sim:
        sim.add_tasks(_tasks("sleep", 1, seconds=30))
        started = time.monotonic()
        report = sim.run(process_task, max_runtime=0.3, retry_on_timeout=True, max_attempts=2)
        assert time.monotonic() - started < 20
    assert report.failed == {"sleep-0"} and report.attempts == {"sleep-0": 2}
    timed_out = _of(report, "task_timed_out")
    assert [e["retry"] for e in timed_out] == [True, False]


def test_running_tasks_see_the_spot_notice_and_finish_before_the_deadline() -> None:
    with simulate() as sim:
        sim.add_tasks(_tasks("until_notice", 2))
        report = sim.run(
            process_task,
            num_simultaneous_tasks=2,
            spot_termination_after=0.2,
            spot_termination_delay=5,
        )
    assert report.completed == {"until_notice-0", "until_notice-1"}
    assert all(result["notice"] is True for result in report.results.values())
    assert len(_of(report, "spot_termination")) == 1


def test_spot_termination_releases_unfinished_tasks_and_a_second_run_finishes_them() -> None:
    with simulate() as sim:
        sim.add_tasks(_tasks("sleep", 5, seconds=1.5))
        report = sim.run(
            process_task,
            num_simultaneous_tasks=2,
            spot_termination_after=0.2,
            spot_termination_delay=0.2,
        )
        assert report.completed == set() and report.failed == set()
        assert report.pending == {f"sleep-{i}" for i in range(5)}
        assert report.attempts == {
            "sleep-0": 1,
            "sleep-1": 1,
            "sleep-2": 0,
            "sleep-3": 0,
            "sleep-4": 0,
        }
        released = _of(report, "task_released")
        assert sorted(e["task_id"] for e in released) == ["sleep-0", "sleep-1"]
        assert all(e["retry"] is False for e in released)

        report = sim.run(process_task, num_simultaneous_tasks=5)
    assert report.completed == {f"sleep-{i}" for i in range(5)}
    assert report.pending == set()
    assert report.attempts == {"sleep-0": 2, "sleep-1": 2, "sleep-2": 1, "sleep-3": 1, "sleep-4": 1}


def test_duplicate_delivery_runs_every_task_twice(tmp_path: Path) -> None:
    def append_once(task_id: str, task_data: dict[str, Any], worker_data: WorkerData) -> Any:
        # Not idempotent: the second delivery finds the marker and raises.
        with (tmp_path / task_id).open("x") as marker:
            marker.write("done")
        return True, None

    with simulate() as sim:
        sim.add_tasks([{"task_id": f"d{i}", "data": {}} for i in range(3)])
        report = sim.run(append_once, duplicate_delivery=True)
    assert report.attempts == {"d0": 2, "d1": 2, "d2": 2}
    assert report.completed == {"d0", "d1", "d2"}
    assert report.results == {"d0": {}, "d1": {}, "d2": {}}
    assert len(_of(report, "task_exception")) == 3
    assert all("FileExistsError" in e["exception"] for e in _of(report, "task_exception"))


def test_tasks_from_json_and_yaml_files(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps([{"task_id": "j", "data": {"x": 1}}]))
    (tmp_path / "b.yaml").write_text(
        "# two tasks\n- {task_id: y1, data: {x: 2}}\n- task_id: y2\n  data: {}\n"
    )
    with simulate() as sim:
        sim.add_tasks(tmp_path / "a.json")
        sim.add_tasks(str(tmp_path / "b.yaml"))
        assert sim.task_ids == ["j", "y1", "y2"]
        report = sim.run(process_task)
    assert report.completed == {"j", "y1", "y2"}
    assert report.results["y1"]["double"] == 4


def test_top_level_function_of_a_package_with_heavy_imports_and_a_closure() -> None:
    offset = 1000

    def closure(task_id: str, task_data: dict[str, Any], worker_data: WorkerData) -> Any:
        return True, {"value": offset + task_data["a"]}  # a closure cannot be pickled

    with simulate() as sim:
        sim.add_tasks([{"task_id": f"h{i}", "data": {"a": i, "b": 10}} for i in range(3)])
        heavy = sim.run(heavy_task)
    assert heavy.completed == {"h0", "h1", "h2"}
    assert heavy.results["h2"] == {
        "sum": 12,
        "subject": "h2",
        "yaml": "d: '3'",
        "calls_in_this_process": 1,
    }
    with simulate() as sim:
        sim.add_tasks([{"task_id": "c", "data": {"a": 5}}])
        assert sim.run(closure).results == {"c": {"value": 1005}}


def test_run_works_from_inside_a_running_event_loop() -> None:
    async def inside() -> SimReport:
        with simulate() as sim:
            sim.add_tasks([{"task_id": "a", "data": {}}])
            return sim.run(process_task)

    assert asyncio.run(inside()).completed == {"a"}


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"num_simultaneous_tasks": 0}, ValueError, "num_simultaneous_tasks: must be from 1 to"),
        ({"num_simultaneous_tasks": 1.5}, TypeError, "num_simultaneous_tasks: expected an integer"),
        ({"num_simultaneous_tasks": True}, TypeError, "num_simultaneous_tasks"),
        ({"max_runtime": 0}, ValueError, "max_runtime: must be greater than 0"),
        ({"max_runtime": "10"}, TypeError, "max_runtime: expected a number"),
        ({"max_attempts": -1}, ValueError, "max_attempts: must not be negative"),
        ({"max_runtime": 30 * 86400}, ValueError, "max_runtime: must be greater than 0 and at"),
        ({"max_attempts": 10**40}, ValueError, "about 41 digits"),
        ({"spot_termination_after": float("inf")}, ValueError, "spot_termination_after"),
        ({"retry_on_exit": 1}, TypeError, "retry_on_exit: expected True or False"),
        ({"spot_termination_after": -2}, ValueError, "spot_termination_after: must not be"),
        ({"spot_termination_after": float("nan")}, ValueError, "spot_termination_after"),
        ({"spot_termination_delay": 1}, ValueError, "needs spot_termination_after"),
        ({"duplicate_delivery": "yes"}, TypeError, "duplicate_delivery"),
        ({"max_runtme": 5}, TypeError, "max_runtme"),
    ],
)
def test_invalid_options_name_the_option(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with simulate() as sim:
        sim.add_tasks([{"task_id": "a", "data": {}}])
        with pytest.raises(error, match=message):
            sim.run(process_task, **options)
        assert sim.report().pending == {"a"}  # nothing was sent or run


def test_process_task_must_be_callable() -> None:
    with simulate() as sim, pytest.raises(TypeError, match="process_task: expected a callable"):
        sim.run("process_task")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        ([{"task_id": "a"}], "task index 0: missing key 'data'"),
        ([{"task_id": "a", "data": {}, "extra": 1}], "task index 0: unknown key 'extra'"),
        ([{"task_id": 7, "data": {}}], "task index 0: task_id must be a non-empty string"),
        ([{"task_id": "a", "data": {}}, "b"], "task index 1: expected a mapping"),
        ([{"task_id": "a", "data": []}], "data must be a mapping"),
        ([{"task_id": "a", "data": {"s": {1, 2}}}], "not JSON-serializable"),
        (
            [{"task_id": "a", "data": {}}, {"task_id": "a", "data": {}}],
            "first used by task index 0",
        ),
    ],
)
def test_bad_tasks_are_rejected_with_their_index(tasks: Any, message: str) -> None:
    with simulate() as sim:
        with pytest.raises(TaskFileError, match=message):
            sim.add_tasks(tasks)
        assert sim.task_ids == []


def test_duplicate_across_calls_and_bad_files_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('[{"task_id": "x"}]')
    with simulate() as sim:
        sim.add_tasks([{"task_id": "a", "data": {}}])
        with pytest.raises(TaskFileError, match="duplicate task_id 'a' \\(added before\\)"):
            sim.add_tasks([{"task_id": "a", "data": {}}])
        with pytest.raises(TaskFileError, match=r"bad\.json, task index 0"):
            sim.add_tasks(tmp_path / "bad.json")
        with pytest.raises(TypeError, match="add_tasks"):
            sim.add_tasks({"task_id": "b", "data": {}})  # type: ignore[dict-item]
        assert sim.task_ids == ["a"]


def test_a_closed_simulation_refuses_work() -> None:
    sim: CloudTasksSim
    with simulate() as sim:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        sim.add_tasks([])


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    modes=st.lists(st.sampled_from(["success", "retry", "raise"]), min_size=1, max_size=4),
    max_attempts=st.integers(min_value=1, max_value=3),
    retry_on_exception=st.booleans(),
)
def test_every_task_ends_in_exactly_one_state_with_the_attempts_the_policy_allows(
    modes: list[str], max_attempts: int, retry_on_exception: bool
) -> None:
    expected = {
        "success": 1,
        "retry": max_attempts,
        "raise": max_attempts if retry_on_exception else 1,
    }
    with simulate() as sim:
        sim.add_tasks([{"task_id": f"t{i}", "data": {"mode": m}} for i, m in enumerate(modes)])
        report = sim.run(
            process_task, max_attempts=max_attempts, retry_on_exception=retry_on_exception
        )
    ids = {f"t{i}" for i in range(len(modes))}
    assert report.completed | report.failed | report.pending == ids
    assert not report.completed & report.failed and not report.pending
    assert report.completed == {f"t{i}" for i, m in enumerate(modes) if m == "success"}
    assert report.attempts == {f"t{i}": expected[m] for i, m in enumerate(modes)}

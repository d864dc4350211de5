"""The fixture as users meet it: a throwaway project run by pytest through the entry point."""

from __future__ import annotations

# Imported here, not first inside an in-process pytester run: pytester forgets modules first
# imported during a run, and a re-imported asyncio no longer matches the CancelledError class
# its C accelerator kept from the first import.
import asyncio  # noqa: F401
import textwrap

import pytest

pytest_plugins = ["pytester"]

USER_PACKAGE = '''
"""The user's worker code, imported by their tests."""

import sqlite3
import time


def process_task(task_id, task_data, worker_data):
    with sqlite3.connect(":memory:") as db:
        (total,) = db.execute("SELECT ? + ?", (task_data["a"], task_data["b"])).fetchone()
    if task_data.get("sleep"):
        time.sleep(task_data["sleep"])
    if task_data.get("explode"):
        raise KeyError("explode")
    return True, {"sum": total, "notice": worker_data.received_termination_notice}
'''

USER_TESTS = """
import time

from cloud_tasks.testing import SimReport
from mywork.tasks import process_task


def twenty():
    return [{"task_id": f"t{i}", "data": {"a": i, "b": 1}} for i in range(20)]


def test_twenty_tasks_pass(cloud_tasks_sim):
    cloud_tasks_sim.add_tasks(twenty())
    report: SimReport = cloud_tasks_sim.run(process_task, num_simultaneous_tasks=4)
    assert report.completed == {f"t{i}" for i in range(20)}
    assert report.results["t7"] == {"sum": 8, "notice": False}


def test_wrong_expectation_fails(cloud_tasks_sim):
    cloud_tasks_sim.add_tasks([{"task_id": "t1", "data": {"a": 2, "b": 2}}])
    report = cloud_tasks_sim.run(process_task)
    assert report.results["t1"]["sum"] == 5, "two and two"


def test_spot_termination_loses_nothing(cloud_tasks_sim):
    cloud_tasks_sim.add_tasks(
        [{"task_id": f"s{i}", "data": {"a": i, "b": 0, "sleep": 2}} for i in range(4)]
    )
    report = cloud_tasks_sim.run(
        process_task, spot_termination_after=0.2, spot_termination_delay=0.1
    )
    assert report.pending == {"s0", "s1", "s2", "s3"}
    assert report.completed == set() and report.failed == set()
    assert [e["event_type"] for e in report.events][0] == "spot_termination"


def test_timeout(cloud_tasks_sim):
    cloud_tasks_sim.add_tasks([{"task_id": "slow", "data": {"a": 1, "b": 1, "sleep": 30}}])
    report = cloud_tasks_sim.run(process_task, max_runtime=0.3)
    assert report.failed == {"slow"}
    assert [e["event_type"] for e in report.events] == ["task_timed_out"]


def test_exception(cloud_tasks_sim):
    cloud_tasks_sim.add_tasks([{"task_id": "x", "data": {"a": 1, "b": 1, "explode": True}}])
    report = cloud_tasks_sim.run(process_task, retry_on_exception=True, max_attempts=2)
    assert report.failed == {"x"} and report.attempts == {"x": 2}
    assert "KeyError: 'explode'" in report.events[-2]["exception"]


def test_duplicate_delivery(cloud_tasks_sim):
    def local_task(task_id, task_data, worker_data):
        return True, {"attempt": worker_data.attempt}

    cloud_tasks_sim.add_tasks([{"task_id": "d", "data": {}}])
    report = cloud_tasks_sim.run(local_task, duplicate_delivery=True)
    assert report.attempts == {"d": 2} and report.completed == {"d"}
"""


@pytest.fixture
def user_project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.mkpydir("mywork")
    pytester.path.joinpath("mywork", "tasks.py").write_text(USER_PACKAGE)
    pytester.makepyfile(test_user=USER_TESTS)
    return pytester


def test_user_project_passes_fails_and_reports_through_the_entry_point(
    user_project: pytest.Pytester,
) -> None:
    result = user_project.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines(["*test_wrong_expectation_fails*", "*AssertionError: two and two*"])
    assert "test_user.py::test_wrong_expectation_fails" in result.stdout.str()


def test_the_plugin_can_be_disabled(user_project: pytest.Pytester) -> None:
    result = user_project.runpytest("-p", "no:cloud_tasks", "-p", "no:cacheprovider", "-k", "dup")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'cloud_tasks_sim' not found*"])


def test_the_fixture_works_in_process_too(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inline=textwrap.dedent(
            """
            def process_task(task_id, task_data, worker_data):
                return True, task_data["n"] * 3

            def test_inline(cloud_tasks_sim):
                cloud_tasks_sim.add_tasks([{"task_id": "a", "data": {"n": 14}}])
                assert cloud_tasks_sim.run(process_task).results == {"a": 42}
            """
        )
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)

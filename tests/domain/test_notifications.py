"""When a job notifies (domain rules): each kind at most once, spend levels, failure rate."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cloud_tasks.domain.notifications import (
    FAILURE_RATE,
    JOB_DONE,
    JOB_FAILED,
    JOB_STOPPED,
    end_notice,
    progress_notices,
    spend_kind,
)


def _due(**overrides: object) -> set[str]:
    facts: dict[str, object] = {
        "job_id": "my-job",
        "completed": 10,
        "failed": 0,
        "total": 100,
        "spent_usd": 0.0,
        "max_total_cost_usd": 10.0,
        "failure_rate": 0.1,
        "fired": frozenset(),
    }
    facts.update(overrides)
    return {notice.kind for notice in progress_notices(**facts)}  # type: ignore[arg-type]


def test_spend_levels_fire_at_50_80_and_100_percent() -> None:
    assert _due(spent_usd=4.99) == set()
    assert _due(spent_usd=5.0) == {spend_kind(50)}
    assert _due(spent_usd=8.5) == {spend_kind(50), spend_kind(80)}
    assert _due(spent_usd=10.0) == {spend_kind(50), spend_kind(80), spend_kind(100)}
    assert _due(spent_usd=100.0, max_total_cost_usd=None) == set()


def test_failure_rate_waits_for_enough_finished_tasks() -> None:
    assert _due(completed=5, failed=5) == set()  # 10 finished of 100: too few to judge
    assert _due(completed=15, failed=5) == {FAILURE_RATE}
    assert _due(completed=19, failed=1) == set()  # 5 % is under the 10 % threshold
    assert _due(completed=1, failed=2, total=3) == {FAILURE_RATE}  # small job: all finished


@given(
    completed=st.integers(0, 500),
    failed=st.integers(0, 500),
    spent=st.floats(0, 50),
    fired=st.sets(st.sampled_from([FAILURE_RATE, *(spend_kind(p) for p in (50, 80, 100))])),
)
def test_nothing_already_fired_is_due_again(
    completed: int, failed: int, spent: float, fired: set[str]
) -> None:
    due = _due(
        completed=completed,
        failed=failed,
        total=completed + failed + 10,
        spent_usd=spent,
        fired=frozenset(fired),
    )
    assert not due & fired


def test_every_body_has_a_slack_text_naming_the_job() -> None:
    notices = progress_notices(
        job_id="my-job",
        completed=10,
        failed=30,
        total=40,
        spent_usd=9.0,
        max_total_cost_usd=10.0,
        failure_rate=0.1,
        fired=frozenset(),
    )
    ends = [
        end_notice(
            job_id="my-job",
            status=status,
            message="why",
            completed=1,
            failed=0,
            total=1,
            spent_usd=0.0,
            max_total_cost_usd=None,
        )
        for status in ("completed", "cost_cap", "stopped")
    ]
    assert [n.kind for n in ends] == [JOB_DONE, JOB_FAILED, JOB_STOPPED]
    for notice in (*notices, *ends):
        assert "my-job" in notice.body["text"]
        assert notice.body["event"] == notice.kind
        assert notice.body["job_id"] == "my-job"

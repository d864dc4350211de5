"""When a job notifies its user (run option ``notify``), and what it says.

Pure rules: given the job's counts and spend and the notifications already fired, which ones
are due now. Each kind fires at most once per job; the manager records the fired ones in the
task database so that ``run --continue`` does not repeat them.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any, Final

import attrs

JOB_DONE: Final = "job_done"
JOB_FAILED: Final = "job_failed"
JOB_STOPPED: Final = "job_stopped"
FAILURE_RATE: Final = "failure_rate"
#: Spend notifications, at these percentages of ``max_total_cost``.
SPEND_PERCENTAGES: Final = (50, 80, 100)
#: The failure rate is judged once this many tasks finished (or every task, if fewer).
MIN_FINISHED_FOR_RATE: Final = 20


def spend_kind(percentage: int) -> str:
    return f"spend_{percentage}"


@attrs.frozen
class Notice:
    """One notification: its kind (fired at most once per job) and its JSON body."""

    kind: str
    body: Mapping[str, Any]


def _body(
    kind: str,
    text: str,
    *,
    job_id: str,
    completed: int,
    failed: int,
    total: int,
    spent_usd: float,
    max_total_cost_usd: float | None,
) -> dict[str, Any]:
    return {
        "text": text,
        "event": kind,
        "job_id": job_id,
        "tasks": {
            "completed": completed,
            "failed": failed,
            "remaining": max(total - completed - failed, 0),
            "total": total,
        },
        "spend_usd": round(spent_usd, 6),
        "max_total_cost_usd": max_total_cost_usd,
    }


def progress_notices(
    *,
    job_id: str,
    completed: int,
    failed: int,
    total: int,
    spent_usd: float,
    max_total_cost_usd: float | None,
    failure_rate: float,
    fired: Set[str],
) -> tuple[Notice, ...]:
    """The notifications due while the job runs (failure rate, spend), not yet in ``fired``."""
    facts: dict[str, Any] = {
        "job_id": job_id,
        "completed": completed,
        "failed": failed,
        "total": total,
        "spent_usd": spent_usd,
        "max_total_cost_usd": max_total_cost_usd,
    }
    notices = []
    finished = completed + failed
    if (
        FAILURE_RATE not in fired
        and finished > 0
        and finished >= min(MIN_FINISHED_FOR_RATE, total)
        and failed / finished > failure_rate
    ):
        text = (
            f"cloud_tasks job {job_id}: {failed} of {finished} finished tasks failed "
            f"({100 * failed / finished:.0f} %, above {100 * failure_rate:g} %)"
        )
        notices.append(Notice(FAILURE_RATE, _body(FAILURE_RATE, text, **facts)))
    if max_total_cost_usd is not None and max_total_cost_usd > 0:
        for percentage in SPEND_PERCENTAGES:
            kind = spend_kind(percentage)
            if kind in fired or spent_usd < max_total_cost_usd * percentage / 100:
                continue
            text = (
                f"cloud_tasks job {job_id}: spent ${spent_usd:.2f}, {percentage} % of "
                f"max_total_cost ${max_total_cost_usd:g}"
            )
            notices.append(Notice(kind, _body(kind, text, **facts)))
    return tuple(notices)


def end_notice(
    *,
    job_id: str,
    status: str,
    message: str,
    completed: int,
    failed: int,
    total: int,
    spent_usd: float,
    max_total_cost_usd: float | None,
) -> Notice:
    """The notification of how the job's run ended: done, failed (the manager gave up: a
    broken startup script, the cost cap, a provider error) or stopped (interrupted)."""
    if status == "completed":
        kind = JOB_DONE
        text = (
            f"cloud_tasks job {job_id} is done: {completed} completed, {failed} failed "
            f"(${spent_usd:.2f} spent)"
        )
    else:
        kind = JOB_STOPPED if status == "stopped" else JOB_FAILED
        verb = "was stopped" if kind == JOB_STOPPED else "failed"
        text = f"cloud_tasks job {job_id} {verb}: {message}"
    body = _body(
        kind,
        text,
        job_id=job_id,
        completed=completed,
        failed=failed,
        total=total,
        spent_usd=spent_usd,
        max_total_cost_usd=max_total_cost_usd,
    )
    body["status"] = status
    return Notice(kind, body)


__all__ = [
    "FAILURE_RATE",
    "JOB_DONE",
    "JOB_FAILED",
    "JOB_STOPPED",
    "MIN_FINISHED_FOR_RATE",
    "SPEND_PERCENTAGES",
    "Notice",
    "end_notice",
    "progress_notices",
    "spend_kind",
]

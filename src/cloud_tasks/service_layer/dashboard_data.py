"""The dashboard's view of a job: one JSON-ready mapping computed from the task database.

Read-only (``adapters.local.taskdb_views.TaskDatabaseView``), whose every query is bounded
(grouped in SQL, or limited to the newest rows), so a database of millions of tasks answers in
well under a second. Nothing from the configuration is read here: the page cannot show a secret
it never gets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from cloud_tasks.adapters.local.pool_records import PoolDecisionRow
from cloud_tasks.adapters.local.taskdb_views import TaskDatabaseView
from cloud_tasks.domain.events import TASK_COMPLETED
from cloud_tasks.domain.taskstate import COMPLETED, FAILED, PENDING, RUNNING, STATES
from cloud_tasks.ports import InstanceState

#: Points on the time axis of every plot.
TIME_BINS = 60
#: Bars of the task-duration histogram.
DURATION_BINS = 24
#: Throughput (and so the ETA) is measured over this trailing window.
THROUGHPUT_WINDOW_S = 300.0
#: Keep-alive events scanned for the running tasks (the newest ones).
KEEPALIVE_SCAN = 5000
#: The ``end_reason`` of an instance the provider took back (``PoolManager._remove_lost``).
_PREEMPTED = InstanceState.PREEMPTED.value


def _meta(db: TaskDatabaseView) -> dict[str, Any]:
    return db.meta(("job_id", "provider", "started_at", "finished_at"))


def _counts(db: TaskDatabaseView, reported_running: int) -> dict[str, int]:
    counts = dict.fromkeys(STATES, 0)
    for state, count in db.state_counts().items():
        if state in counts:
            counts[state] = count
    # Workers report how many tasks they run, not which: that many pending are running.
    moved = min(counts[PENDING], max(reported_running, 0))
    counts[PENDING] -= moved
    counts[RUNNING] += moved
    counts["total"] = sum(counts[state] for state in STATES)
    return counts


def _time_axis(start: float, end: float) -> tuple[float, float]:
    """The first point and the width of each of ``TIME_BINS`` bins covering [start, end]."""
    span = max(end - start, 1.0)
    return start, span / TIME_BINS


def _finishes(
    db: TaskDatabaseView, t0: float, width: float
) -> tuple[list[float], list[float], tuple[float, float, int]]:
    """Tasks completed and failed per time bin, and the (min, max, count) of the completed
    tasks' elapsed times: one pass over the tasks."""
    completed = [0.0] * TIME_BINS
    failed = [0.0] * TIME_BINS
    low, high, count = math.inf, -math.inf, 0
    for index, state, n, shortest, longest, timed in db.finished_per_bin(t0, width):
        slot = min(max(index, 0), TIME_BINS - 1)
        (completed if state == COMPLETED else failed)[slot] += n
        if state == COMPLETED and timed and shortest is not None and longest is not None:
            low, high, count = min(low, shortest), max(high, longest), count + timed
    return completed, failed, (low, high, count)


def _cumulative(values: Sequence[float]) -> list[float]:
    total, result = 0.0, []
    for value in values:
        total += value
        result.append(total)
    return result


def _instances(db: TaskDatabaseView) -> list[dict[str, Any]]:
    return [
        {
            "instance_id": r.instance_id,
            "instance_type": r.instance_type or "?",
            "zone": r.zone or "",
            "spot": r.is_spot,
            "price_per_hour_usd": float(r.price_per_hour_usd or 0.0),
            "launched_at": float(r.launched_at),
            "ended_at": None if r.ended_at is None else float(r.ended_at),
            "end_reason": r.end_reason,
            "running_tasks": int(r.running_tasks or 0),
        }
        for r in db.instances()
    ]


def _spend_at(instances: Sequence[dict[str, Any]], t: float) -> float:
    total = 0.0
    for i in instances:
        end = i["ended_at"] if i["ended_at"] is not None else t
        total += i["price_per_hour_usd"] * max(0.0, min(end, t) - i["launched_at"]) / 3600.0
    return total


def _instance_series(
    instances: Sequence[dict[str, Any]], times: Sequence[float]
) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, bool], list[dict[str, Any]]] = {}
    for i in instances:
        groups.setdefault((i["instance_type"], i["zone"], i["spot"]), []).append(i)
    series = []
    for (kind, zone, spot), members in sorted(groups.items()):
        values = [
            float(
                sum(
                    1
                    for i in members
                    if i["launched_at"] <= t and (i["ended_at"] is None or i["ended_at"] > t)
                )
            )
            for t in times
        ]
        label = f"{kind}{' ' + zone if zone else ''} {'spot' if spot else 'on-demand'}"
        series.append(
            {"label": label, "instance_type": kind, "zone": zone, "spot": spot, "values": values}
        )
    return series


def _durations(db: TaskDatabaseView, low: float, high: float, count: int) -> dict[str, Any]:
    """A histogram of the completed tasks' elapsed times, which range from ``low`` to ``high``."""
    if not count:
        return {"edges": [], "counts": [], "count": 0}
    width = (high - low) / DURATION_BINS if high > low else 1.0
    counts = [0] * DURATION_BINS
    for index, n in db.elapsed_per_bin(low, width):
        counts[min(max(index, 0), DURATION_BINS - 1)] += n
    edges = [low + width * k for k in range(DURATION_BINS + 1)]
    return {"edges": edges, "counts": counts, "count": count}


def _slowest_running(
    db: TaskDatabaseView, active: set[str], now: float, limit: int = 10
) -> list[dict[str, Any]]:
    """Tasks the newest keep-alive of each active instance lists, longest running first.

    "Running for" is measured from the oldest scanned keep-alive that listed the task, so it
    is a lower bound.
    """
    if not active:
        return []
    latest: dict[str, list[str]] = {}
    still: dict[str, set[str]] = {}  # listed by every keep-alive scanned so far, newest first
    since: dict[tuple[str, str], float] = {}
    for instance_id, received_at, ids in db.keep_alive_listings(active, KEEPALIVE_SCAN):
        listed = {str(task_id) for task_id in ids}
        if instance_id not in latest:
            latest[instance_id] = [str(task_id) for task_id in ids]
            still[instance_id] = set(listed)
        still[instance_id] &= listed
        for task_id in still[instance_id]:
            since[(instance_id, task_id)] = received_at
    shown = [task_id for ids in latest.values() for task_id in ids][:500]
    finished = db.finished_among(shown)
    running = sorted(
        (
            (max(0.0, now - since[(instance_id, task_id)]), task_id, instance_id)
            for instance_id, ids in latest.items()
            for task_id in ids
            if task_id not in finished
        ),
        key=lambda item: -item[0],
    )
    return [
        {"task_id": task_id, "instance_id": instance_id, "running_s": seconds}
        for seconds, task_id, instance_id in running[:limit]
    ]


def _last_lines(db: TaskDatabaseView, task_id: str, lines: int = 3) -> list[str]:
    event = db.latest_event_other_than(task_id, TASK_COMPLETED)
    if event is None:
        return []
    text = str(event.get("exception") or event.get("reason") or "")
    return [line for line in text.strip().splitlines() if line.strip()][-lines:]


def _top_errors(db: TaskDatabaseView, limit: int = 8) -> list[dict[str, Any]]:
    errors = []
    for error, count in db.top_errors(limit):
        ids = db.failed_task_ids(error, 5)
        errors.append(
            {
                "error": error or "(no error recorded)",
                "count": count,
                "task_ids": ids,
                "last_lines": _last_lines(db, ids[0]) if ids else [],
            }
        )
    return errors


def _what_it_decided(row: PoolDecisionRow) -> tuple[Any, ...]:
    """The type, pool, target, starts, stops and reasons of a decision."""
    return (
        row.instance_type,
        row.running,
        row.target,
        row.starting,
        row.stopping,
        row.limited_by,
        row.reasons,
    )


def _decisions(db: TaskDatabaseView, limit: int = 15) -> list[dict[str, Any]]:
    """The latest decision, then the earlier ones that decided something else, newest first
    (a steady pool repeats the same decision at every check)."""
    rows = db.pool_decisions(limit * 20)
    kept: list[PoolDecisionRow] = []
    for index, r in enumerate(rows):
        older = rows[index + 1] if index + 1 < len(rows) else None
        same = older is not None and _what_it_decided(r) == _what_it_decided(older)
        if index == 0 or not same:
            kept.append(r)
        if len(kept) == limit:
            break
    return [r._asdict() for r in kept]


def _log(db: TaskDatabaseView, limit: int = 30) -> list[dict[str, Any]]:
    return [{"at": at, "message": message} for at, message in db.manager_log(limit)]


def _notifications(db: TaskDatabaseView) -> list[dict[str, Any]]:
    return [{"kind": kind, "at": at} for kind, at in db.notifications()]


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def job_view(
    db: TaskDatabaseView, now: float, reuse: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Everything the dashboard page shows, as JSON-ready data (times in Unix seconds).

    The time series of finished tasks and the histogram of durations read every task; the
    rest reads indexed or small tables. Given ``reuse`` (an earlier view of the same job, not
    yet done), those two come from it: a cheap refresh of a job of millions of tasks.
    """
    meta = _meta(db)
    instances = _instances(db)
    active = [i for i in instances if i["ended_at"] is None]
    counts = _counts(db, sum(i["running_tasks"] for i in active))
    started_at = meta.get("started_at")
    if not isinstance(started_at, int | float):
        # Only a database no job command wrote its start into: one scan to find it.
        started_at = db.first_created_at()
    starts = [float(started_at)] if isinstance(started_at, int | float) else []
    starts += [i["launched_at"] for i in instances[:1]]
    start = min(starts) if starts else now
    finished_at = meta.get("finished_at")
    done = counts["total"] > 0 and counts[PENDING] + counts[RUNNING] == 0
    if isinstance(finished_at, int | float):
        end = float(finished_at)
    elif done:
        # Done, but the manager did not record its end (it was stopped, or manage_pool).
        last = db.last_finished_at()
        end = max([float(last or start), *(i["ended_at"] or 0.0 for i in instances)])
    else:
        end = now
    end = max(end, start)
    if (
        reuse is not None
        and not done
        and not reuse["job"]["done"]
        and reuse["job"]["started_at"] == start
    ):
        times = list(reuse["times"])
        completions = reuse["completions"]
        durations = reuse["durations"]
        throughput = float(reuse["progress"]["throughput_per_s"])
        series_at = float(reuse["series_at"])
    else:
        t0, width = _time_axis(start, end)
        times = [t0 + width * (k + 1) for k in range(TIME_BINS)]
        completed, failed, (low, high, timed) = _finishes(db, t0, width)
        completions = {
            "completed": _cumulative(completed),
            "failed": _cumulative(failed),
            "throughput_per_s": [(c + f) / width for c, f in zip(completed, failed, strict=True)],
        }
        durations = _durations(db, low, high, timed)
        # Throughput over the last bins covering THROUGHPUT_WINDOW_S (at least one bin).
        window = min(TIME_BINS, max(1, math.ceil(THROUGHPUT_WINDOW_S / width)))
        recent = sum(completed[-window:]) + sum(failed[-window:])
        throughput = recent / (window * width)
        series_at = now
    remaining = counts[PENDING] + counts[RUNNING]
    eta_s = remaining / throughput if throughput > 0 and remaining else (0.0 if done else None)

    spent = _spend_at(instances, end)
    rate_per_hour = sum(i["price_per_hour_usd"] for i in active)
    projected = spent + rate_per_hour * (eta_s or 0.0) / 3600.0
    decisions = _decisions(db)
    cap = decisions[0]["max_total_cost_usd"] if decisions else None
    preemptions = [
        {
            "at": i["ended_at"],
            "instance_id": i["instance_id"],
            "instance_type": i["instance_type"],
            "zone": i["zone"],
        }
        for i in instances
        if i["ended_at"] is not None and i["end_reason"] == _PREEMPTED
    ]
    return {
        "now": now,
        "job": {
            "job_id": meta.get("job_id"),
            "provider": meta.get("provider"),
            "started_at": start,
            "finished_at": finished_at if isinstance(finished_at, int | float) else None,
            "done": done,
        },
        "counts": counts,
        "progress": {
            "done": counts[COMPLETED] + counts[FAILED],
            "total": counts["total"],
            "throughput_per_s": throughput,
            "eta_s": _finite(eta_s),
        },
        "times": times,
        "series_at": series_at,
        "completions": completions,
        "spend": {
            "values": [_spend_at(instances, t) for t in times],
            "spent_usd": spent,
            "projected_usd": projected,
            "price_per_hour_usd": rate_per_hour,
            "max_total_cost_usd": cap,
        },
        "instances": {
            "series": _instance_series(instances, times),
            "preemptions": preemptions,
            "active": active[:50],
            "started": len(instances),
        },
        "durations": durations,
        "slowest_running": _slowest_running(db, {i["instance_id"] for i in active}, now),
        "errors": _top_errors(db),
        "decisions": decisions,
        "why_not_larger": decisions[0]["reasons"] if decisions and not done else [],
        "log": _log(db),
        "notifications": _notifications(db),
    }


__all__ = ["job_view"]

"""Status and summary of a job (SPEC §13): counts, throughput, ETA, elapsed times, errors, spend.

Computed from the task database plus, when known, the provider's view of the instances. The
same ``JobReport`` feeds ``status`` (human and ``--format json``), the live summary of ``run``
and its final report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs

from cloud_tasks.adapters.local.taskdb import TaskDatabase
from cloud_tasks.domain.taskstate import InstanceRecord, TaskCounts
from cloud_tasks.domain.text import shown

THROUGHPUT_WINDOW_S = 300.0


@attrs.frozen
class ElapsedStats:
    """Elapsed seconds of completed tasks."""

    count: int = 0
    mean_s: float = 0.0
    min_s: float = 0.0
    median_s: float = 0.0
    p95_s: float = 0.0
    max_s: float = 0.0


@attrs.frozen
class InstanceView:
    """One instance as shown by ``status``."""

    instance_id: str
    instance_type: str
    zone: str
    state: str
    is_spot: bool
    price_per_hour_usd: float
    age_s: float

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class JobReport:
    """Everything ``status`` shows."""

    job_id: str
    counts: TaskCounts
    elapsed_s: float
    throughput_per_s: float
    eta_s: float | None
    elapsed: ElapsedStats
    top_errors: tuple[tuple[str, int], ...]
    failures: tuple[tuple[str, str], ...]
    instances: tuple[InstanceView, ...]
    spend_usd: float
    duplicate_completions: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The ``--format json`` shape (SPEC §11)."""
        return {
            "job_id": self.job_id,
            "tasks": {
                "pending": self.counts.pending,
                "running": self.counts.running,
                "completed": self.counts.completed,
                "failed": self.counts.failed,
                "total": self.counts.total,
            },
            "instances": [view.to_dict() for view in self.instances],
            "spend_usd": round(self.spend_usd, 6),
            "elapsed_s": round(self.elapsed_s, 3),
            "throughput_tasks_per_s": round(self.throughput_per_s, 3),
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
            "task_elapsed_s": attrs.asdict(self.elapsed),
            "top_errors": [{"error": e, "count": n} for e, n in self.top_errors],
            "failures": [{"task_id": t, "error": e} for t, e in self.failures],
            "duplicate_completions": self.duplicate_completions,
        }


def _percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return 0.0
    index = min(len(values) - 1, max(0, math.ceil(fraction * len(values)) - 1))
    return values[index]


def elapsed_stats(sorted_values: Sequence[float]) -> ElapsedStats:
    """Statistics of an already sorted list of elapsed times."""
    if not sorted_values:
        return ElapsedStats()
    return ElapsedStats(
        count=len(sorted_values),
        mean_s=sum(sorted_values) / len(sorted_values),
        min_s=sorted_values[0],
        median_s=_percentile(sorted_values, 0.5),
        p95_s=_percentile(sorted_values, 0.95),
        max_s=sorted_values[-1],
    )


def instance_views(
    records: Sequence[InstanceRecord], states: dict[str, str] | None, now: float
) -> tuple[InstanceView, ...]:
    """Active instances; ``states`` is the provider's view (id → state) when it was reachable."""
    views = []
    for record in records:
        if record.ended_at is not None:
            continue
        state = "unknown" if states is None else states.get(record.instance_id, "gone")
        views.append(
            InstanceView(
                record.instance_id,
                record.instance_type,
                record.zone,
                state,
                record.is_spot,
                record.price_per_hour_usd,
                max(0.0, now - record.launched_at),
            )
        )
    return tuple(views)


def build_report(
    db: TaskDatabase,
    now: float,
    *,
    job_id: str | None = None,
    instance_states: dict[str, str] | None = None,
    detailed: bool = True,
) -> JobReport:
    """Summarize the job recorded in ``db`` as of ``now``.

    ``detailed=False`` skips the queries that scan every task (elapsed statistics, errors), for
    a live display that refreshes every second.
    """
    meta = db.meta()
    counts = db.counts_with_running()
    started = float(meta.get("started_at", now))
    elapsed = max(0.0, now - started)
    window = min(THROUGHPUT_WINDOW_S, elapsed)
    throughput = db.finished_between(now - window, now) / window if window > 0 else 0.0
    eta = counts.remaining / throughput if throughput > 0 else None
    records = db.instances()
    return JobReport(
        job_id=job_id or str(meta.get("job_id", "")),
        counts=counts,
        elapsed_s=elapsed,
        throughput_per_s=throughput,
        eta_s=0.0 if counts.remaining == 0 and counts.total else eta,
        elapsed=elapsed_stats(db.elapsed_times()) if detailed else ElapsedStats(),
        top_errors=tuple(db.top_errors()) if detailed else (),
        failures=tuple((row.task_id, row.error or "") for row in db.failures()) if detailed else (),
        instances=instance_views(records, instance_states, now),
        spend_usd=db.spend_usd(now),
        duplicate_completions=db.duplicate_completions() if detailed else 0,
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def format_report(report: JobReport) -> str:
    """The human form of ``status`` and of the final report."""
    c = report.counts
    lines = [
        f"Job {shown(report.job_id)}: {c.completed} completed, {c.failed} failed, "
        f"{c.running} running, {c.pending} pending ({c.total} tasks)",
        f"Elapsed {_duration(report.elapsed_s)}, throughput {report.throughput_per_s:.2f} "
        f"tasks/s, ETA {_duration(report.eta_s)}, spend ${report.spend_usd:.4f}",
    ]
    stats = report.elapsed
    if stats.count:
        lines.append(
            f"Task time: mean {stats.mean_s:.3f}s, median {stats.median_s:.3f}s, "
            f"p95 {stats.p95_s:.3f}s, max {stats.max_s:.3f}s over {stats.count} tasks"
        )
    if report.duplicate_completions:
        lines.append(
            f"Duplicate completions (a task finished twice; counted once): "
            f"{report.duplicate_completions}"
        )
    if report.top_errors:
        lines.append("Top errors:")
        lines.extend(f"  {count:>6}  {shown(error, 200)}" for error, count in report.top_errors)
    if report.failures:
        lines.append("Failed tasks (first ones):")
        lines.extend(
            f"  {shown(task_id)}: {shown(error, 200)}" for task_id, error in report.failures
        )
    if report.instances:
        lines.append(f"Instances ({len(report.instances)}):")
        lines.extend(
            f"  {shown(v.instance_id)}  {v.instance_type}  {v.zone}  {v.state}  "
            f"{'spot' if v.is_spot else 'on-demand'}  ${v.price_per_hour_usd:.4f}/h  "
            f"up {_duration(v.age_s)}"
            for v in report.instances
        )
    else:
        lines.append("Instances: none running")
    return "\n".join(lines)


__all__ = [
    "ElapsedStats",
    "InstanceView",
    "JobReport",
    "build_report",
    "elapsed_stats",
    "format_report",
]

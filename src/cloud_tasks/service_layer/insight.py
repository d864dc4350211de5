"""What the dashboard needs from the manager, recorded in the task database.

``PoolRecorder`` keeps, beside the job's tasks (``adapters.local.pool_records``, where the
tables are described): one row per scaling decision with the reasons the pool is not larger
(price cap, cost cap, capacity errors, quota, remaining work), every line the manager logged,
and which notifications a job has fired (each at most once per job, also across
``run --continue``).

Instances over time (type, zone, spot or on-demand, when each started and ended and why) are
already in the ``instances`` table; the dashboard reads them there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from cloud_tasks.adapters.local.pool_records import PoolDecisionRow, SqlitePoolRecords
from cloud_tasks.domain.options import PoolLimits
from cloud_tasks.domain.pool_reasons import CAPACITY, QUOTA, LaunchFailure, why_not_larger
from cloud_tasks.domain.selection import Candidate
from cloud_tasks.domain.sizing import CostCapDecision, PoolTarget
from cloud_tasks.exceptions import CapacityError, QuotaError
from cloud_tasks.ports import Clock, Compute, Image, Instance, InstanceSpec, Region
from cloud_tasks.redact import redact


class DecisionRecorder(Protocol):
    """What the pool manager reports at each scaling decision."""

    def record_decision(
        self,
        now: float,
        *,
        candidate: Candidate,
        target: PoolTarget,
        decision: CostCapDecision,
        running: int,
        remaining_tasks: int,
        spent_usd: float,
        limits: PoolLimits,
    ) -> None: ...


class PoolRecorder:
    """Writes the dashboard's tables into the task database at ``path`` (see the module doc).

    Use it from the manager's thread; ``watch`` wraps a ``Compute`` whose refused launches
    (capacity, quota) are reported by the next decision, from whatever thread launched.
    """

    def __init__(self, path: str | Path, clock: Clock) -> None:
        from cloud_tasks import bootstrap

        self.clock = clock
        self._records: SqlitePoolRecords = bootstrap.open_pool_records(path)
        self._lock = threading.Lock()
        self._failures: list[LaunchFailure] = []

    def close(self) -> None:
        self._records.close()

    def __enter__(self) -> PoolRecorder:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the manager's hooks --------------------------------------------------------------

    def record_decision(
        self,
        now: float,
        *,
        candidate: Candidate,
        target: PoolTarget,
        decision: CostCapDecision,
        running: int,
        remaining_tasks: int,
        spent_usd: float,
        limits: PoolLimits,
    ) -> None:
        """Record one scaling decision and why the pool is not larger."""
        with self._lock:
            failures, self._failures = self._failures, []
        reasons = why_not_larger(
            instance_type=candidate.name,
            tasks_per_instance=candidate.tasks_per_instance,
            price_per_hour_usd=candidate.price_per_hour_usd,
            target=target.count,
            limited_by=target.limited_by,
            running=running - len(decision.stop),
            starting=decision.start,
            remaining_tasks=remaining_tasks,
            spent_usd=spent_usd,
            projected_usd=decision.projected_spend_usd,
            at_cost_cap=decision.at_cap,
            limits=limits,
            failures=failures,
        )
        self._records.add_decision(
            PoolDecisionRow(
                now,
                candidate.name,
                running,
                target.count,
                decision.start,
                len(decision.stop),
                remaining_tasks,
                spent_usd,
                decision.projected_spend_usd,
                target.limited_by,
                limits.max_total_cost,
                [{"kind": r.kind, "text": r.text} for r in reasons],
            )
        )

    def log(self, message: str) -> None:
        """Keep one line the manager logged (known secrets masked, as on the terminal)."""
        self._records.add_log_line(self.clock.now(), redact(message))

    def logged(self, log: Callable[[str], None]) -> Callable[[str], None]:
        """``log``, also keeping each line in the database."""

        def log_and_keep(message: str) -> None:
            log(message)
            self.log(message)

        return log_and_keep

    def watch(self, compute: Compute) -> Compute:
        """``compute``, with each refused launch reported by the next decision."""
        return _WatchedCompute(compute, self._launch_refused)

    def _launch_refused(self, spec: InstanceSpec, exc: CapacityError) -> None:
        kind = QUOTA if isinstance(exc, QuotaError) else CAPACITY
        with self._lock:
            self._failures.append(
                LaunchFailure(kind, spec.instance_type, spec.zone, redact(str(exc)))
            )

    # -- notifications --------------------------------------------------------------------

    def fired_notifications(self) -> set[str]:
        """The notification kinds this job has fired already."""
        return self._records.fired_notifications()

    def mark_fired(self, kind: str, body: dict[str, Any]) -> bool:
        """Record notification ``kind`` as fired; False when it had been already."""
        return self._records.mark_fired(kind, self.clock.now(), body)


class _WatchedCompute:
    """A ``Compute`` that reports every ``CapacityError`` of ``create_instance(s)``."""

    def __init__(
        self, compute: Compute, on_refused: Callable[[InstanceSpec, CapacityError], None]
    ) -> None:
        self._compute = compute
        self._on_refused = on_refused
        self.provider = compute.provider

    def create_instance(self, spec: InstanceSpec) -> Instance:
        try:
            return self._compute.create_instance(spec)
        except CapacityError as exc:
            self._on_refused(spec, exc)
            raise

    def create_instances(self, spec: InstanceSpec, count: int) -> list[Instance]:
        try:
            return self._compute.create_instances(spec, count)
        except CapacityError as exc:
            self._on_refused(spec, exc)
            raise

    def list_instances(self, job_id: str | None) -> list[Instance]:
        return self._compute.list_instances(job_id)

    def terminate(self, instance_ids: Sequence[str]) -> None:
        self._compute.terminate(instance_ids)

    def list_regions(self) -> list[Region]:
        return self._compute.list_regions()

    def list_images(self, architecture: str | None = None) -> list[Image]:
        return self._compute.list_images(architecture)

    def default_image(self, architecture: str) -> str:
        return self._compute.default_image(architecture)

    def startup_log_hint(self, instance_id: str) -> str | None:
        return self._compute.startup_log_hint(instance_id)


__all__ = ["DecisionRecorder", "PoolRecorder"]

"""What the pool manager needs from a task store, and a store held in memory.

``TaskStore`` is the part of the task database (SPEC §13) the pool manager uses: task counts by
state, spend and running tasks per active instance, worker events applied to task states, and
the few task-level operations of its recovery paths. ``TaskDatabase`` (SQLite, one row per task
and every event) satisfies it for real runs; ``InMemoryTaskStore`` satisfies it for simulations
and dry runs, where keeping every event would only cost time and memory. Both apply the same
state rules (see ``taskdb``): ``pending`` → ``running`` → ``completed`` | ``failed``, a retry goes
back to ``pending``, ``completed`` is final, a late success may still complete a ``failed`` task.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import attrs

from cloud_tasks.adapters.local.taskdb import (
    COMPLETED,
    FAILED,
    PENDING,
    PREEMPTION_REASONS,
    RUNNING,
    IngestResult,
    InstanceRecord,
    TaskCounts,
    error_text,
)
from cloud_tasks.domain.events import OUTCOME_EVENTS, event_problem
from cloud_tasks.domain.tasks import Task

_OUTCOME_EVENTS = OUTCOME_EVENTS
_STATES = (PENDING, RUNNING, COMPLETED, FAILED)
_P, _R, _C, _F = range(4)


class TaskStore(Protocol):
    """The task and instance bookkeeping the pool manager reads and writes."""

    def counts(self) -> TaskCounts: ...

    def counts_with_running(self) -> TaskCounts: ...

    def spend_usd(self, now: float) -> float: ...

    def set_meta(self, **values: Any) -> None: ...

    def ingest(self, events: Sequence[Mapping[str, Any]], now: float) -> IngestResult: ...

    def instances(self, *, active_only: bool = False) -> list[InstanceRecord]: ...

    def record_instance(self, record: InstanceRecord) -> None: ...

    def end_instance(self, instance_id: str, ended_at: float, reason: str) -> None: ...

    def unfinished(self) -> list[tuple[Task, int]]: ...

    def mark_resent(self, task_ids: Iterable[str]) -> None: ...

    def fail_tasks(self, task_ids: Iterable[str], now: float, reason: str) -> int: ...

    def preempted_tasks(self, min_preemptions: int) -> int:
        """Unfinished tasks whose runs were lost to preemption at least ``min_preemptions``
        times since their last outcome."""


class InMemoryTaskStore:
    """A ``TaskStore`` in memory: task states, instances, spend; no event log.

    Per task it keeps a state code, plus data only when not empty, and counters only for tasks
    that have them (re-sends, preemptions, errors), so a million tasks take tens of MB. Events
    are not deduplicated by content: the state rules make a repeated outcome harmless (a second
    success is counted in ``duplicate_completions``, never twice).
    """

    def __init__(self, *, tasks_known: bool = False) -> None:
        """``tasks_known``: every task is added before any event, so an event naming another
        task is refused (as the ``TaskDatabase`` of ``run`` does); otherwise tasks are learnt
        from their events (``manage_pool``)."""
        self.tasks_known = tasks_known
        self._state: dict[str, int] = {}
        self._data: dict[str, Mapping[str, Any]] = {}
        self._counts = [0, 0, 0, 0]
        self._resent: dict[str, int] = {}
        self._preempted: dict[str, int] = {}
        self._errors: dict[str, str] = {}
        self._meta: dict[str, Any] = {}
        self._records: dict[str, InstanceRecord] = {}
        self._alive: dict[str, list[float | None]] = {}  # id → [first, last, last task event]
        self._ended: dict[str, tuple[float, str]] = {}
        self._active: dict[str, list[float]] = {}  # id → [price, launched_at, running tasks]
        self._ended_cost_usd = 0.0
        self.duplicate_completions = 0
        self.completed_elapsed_s = 0.0
        self.events_applied = 0

    # -- tasks ----------------------------------------------------------------------------

    def add_tasks(self, tasks: Iterable[Task], now: float = 0.0) -> int:
        """Record tasks as pending (known ids are left alone); returns how many were new."""
        state = self._state
        added = 0
        for task in tasks:
            if task.task_id in state:
                continue
            state[task.task_id] = _P
            if task.data:
                self._data[task.task_id] = task.data
            added += 1
        self._counts[_P] += added
        return added

    def counts(self) -> TaskCounts:
        p, r, c, f = self._counts
        return TaskCounts(p, r, c, f)

    def counts_with_running(self) -> TaskCounts:
        """``counts()`` with tasks reported running in keep-alives counted as running."""
        reported = int(sum(running for _, _, running in self._active.values()))
        return self.counts().with_reported_running(reported)

    def state_of(self, task_id: str) -> str | None:
        code = self._state.get(task_id)
        return None if code is None else _STATES[code]

    def error_of(self, task_id: str) -> str | None:
        return self._errors.get(task_id)

    def top_errors(self, limit: int = 5) -> list[tuple[str, int]]:
        tally: dict[str, int] = {}
        for task_id, error in self._errors.items():
            if self._state.get(task_id) == _F:
                tally[error] = tally.get(error, 0) + 1
        return sorted(tally.items(), key=lambda item: (-item[1], item[0]))[:limit]

    def unfinished(self) -> list[tuple[Task, int]]:
        return [
            (Task(task_id, self._data.get(task_id, {})), self._resent.get(task_id, 0))
            for task_id, code in self._state.items()
            if code in (_P, _R)
        ]

    def mark_resent(self, task_ids: Iterable[str]) -> None:
        for task_id in task_ids:
            self._resent[task_id] = self._resent.get(task_id, 0) + 1

    def fail_tasks(self, task_ids: Iterable[str], now: float, reason: str) -> int:
        changed = 0
        for task_id in task_ids:
            code = self._state.get(task_id)
            if code in (_P, _R):
                self._move(task_id, code, _F)
                self._errors[task_id] = reason
                changed += 1
        return changed

    def preempted_tasks(self, min_preemptions: int) -> int:
        return sum(1 for times in self._preempted.values() if times >= min_preemptions)

    def _move(self, task_id: str, old: int, new: int) -> bool:
        if old == new:
            return False
        self._state[task_id] = new
        self._counts[old] -= 1
        self._counts[new] += 1
        if new in (_C, _F):
            self._preempted.pop(task_id, None)
        return True

    # -- events ---------------------------------------------------------------------------

    def ingest(self, events: Sequence[Mapping[str, Any]], now: float) -> IngestResult:
        """Apply a batch of worker events to task states and instance liveness."""
        transitions = 0
        alive: dict[str, float] = {}
        worked: dict[str, float] = {}
        rejected: dict[int, str] = {}
        active = self._active
        apply = self._apply
        known = self._state.__contains__ if self.tasks_known else None
        for index, event in enumerate(events):
            problem = event_problem(event, known)
            if problem is not None:
                rejected[index] = problem
                continue
            get = event.get
            instance_id = get("instance_id")
            kind = get("event_type")
            task_id = get("task_id")
            if instance_id is not None:
                instance = instance_id if type(instance_id) is str else str(instance_id)
                alive[instance] = now
                if task_id is not None:
                    worked[instance] = now
                elif kind == "keep_alive":
                    running = get("running_tasks")
                    if isinstance(running, int) and instance in active:
                        active[instance][2] = float(running)
            if task_id is not None and apply(str(task_id), str(kind), event):
                transitions += 1
        seen_by = self._alive
        for instance, seen in alive.items():
            times = seen_by.get(instance)
            if times is not None:
                if times[0] is None:
                    times[0] = seen
                times[1] = seen
                if instance in worked:
                    times[2] = worked[instance]
        applied = len(events) - len(rejected)
        self.events_applied += applied
        return IngestResult(applied, 0, transitions, alive, worked, rejected)

    def _apply(self, task_id: str, kind: str, event: Mapping[str, Any]) -> bool:
        code = self._state.get(task_id)
        if code is None:
            # A task loaded by someone else (manage_pool): learnt from its events.
            self._state[task_id] = code = _P
            self._counts[_P] += 1
        if kind == "task_started":
            return code not in (_C, _F) and self._move(task_id, code, _R)
        if kind == "task_released":
            if code not in (_C, _F) and str(event.get("reason", "preempted")) in PREEMPTION_REASONS:
                self._preempted[task_id] = self._preempted.get(task_id, 0) + 1
            return False
        if kind not in _OUTCOME_EVENTS:
            return False
        # A run that reached an outcome was not preempted: count consecutive losses only.
        self._preempted.pop(task_id, None)
        success = kind == "task_completed" and event.get("success") is True
        if code == _C:
            if success:
                self.duplicate_completions += 1
            return False
        if success:
            elapsed = event.get("elapsed_time")
            if isinstance(elapsed, float | int) and math.isfinite(elapsed):
                self.completed_elapsed_s += float(elapsed)
            self._errors.pop(task_id, None)
            return self._move(task_id, code, _C)
        error = error_text(event)
        previous = self._errors.get(task_id)
        if kind == "task_dead_lettered" and previous and previous not in (error or ""):
            error = f"{error}; last error: {previous}"
        if code == _F:
            if kind == "task_dead_lettered" and error is not None:
                # The attempt's outcome (retry false) came first: say that it was given up.
                self._errors[task_id] = error
            return False
        if error is not None:
            self._errors[task_id] = error
        else:
            self._errors.pop(task_id, None)
        retry = kind != "task_dead_lettered" and event.get("retry") is True
        return self._move(task_id, code, _P if retry else _F)

    # -- instances and metadata -----------------------------------------------------------

    def set_meta(self, **values: Any) -> None:
        self._meta.update(values)

    def meta(self) -> dict[str, Any]:
        return dict(self._meta)

    def record_instance(self, record: InstanceRecord) -> None:
        if record.instance_id in self._records:
            return
        self._records[record.instance_id] = record
        self._alive[record.instance_id] = [
            record.first_seen_alive,
            record.last_seen_alive,
            record.last_task_event,
        ]
        self._active[record.instance_id] = [record.price_per_hour_usd, record.launched_at, 0.0]

    def end_instance(self, instance_id: str, ended_at: float, reason: str) -> None:
        active = self._active.pop(instance_id, None)
        if active is None:
            return
        self._ended[instance_id] = (ended_at, reason)
        price, launched_at, _ = active
        self._ended_cost_usd += price * max(0.0, ended_at - launched_at) / 3600.0

    def instances(self, *, active_only: bool = False) -> list[InstanceRecord]:
        records = []
        for instance_id, record in self._records.items():
            ended = self._ended.get(instance_id)
            if active_only and ended is not None:
                continue
            first, last, task_event = self._alive[instance_id]
            active = self._active.get(instance_id)
            records.append(
                attrs.evolve(
                    record,
                    ended_at=None if ended is None else ended[0],
                    end_reason=None if ended is None else ended[1],
                    first_seen_alive=first,
                    last_seen_alive=last,
                    last_task_event=task_event,
                    running_tasks=0 if active is None else int(active[2]),
                )
            )
        return sorted(records, key=lambda r: (r.launched_at, r.instance_id))

    def spend_usd(self, now: float) -> float:
        """USD spent: every instance's launch-time price times how long it ran (or runs)."""
        running = sum(
            price * max(0.0, now - launched_at) / 3600.0
            for price, launched_at, _ in self._active.values()
        )
        return self._ended_cost_usd + running


__all__ = ["InMemoryTaskStore", "TaskStore"]

"""A task store held in memory, for simulations and dry runs (SPEC §9, §13).

``InMemoryTaskStore`` satisfies the ``ports.TaskStore`` the pool manager uses, like the SQLite
``TaskDatabase`` of real runs, without keeping every event (that would only cost time and memory
in a simulation). Both apply the state rules of ``domain.taskstate``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from cloud_tasks.domain import taskstate
from cloud_tasks.domain.events import (
    KEEP_ALIVE,
    TASK_COMPLETED,
    Event,
    TaskReleased,
    decode_accepted,
    event_problem,
)
from cloud_tasks.domain.tasks import Task
from cloud_tasks.domain.taskstate import (
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    IngestResult,
    InstanceRecord,
    TaskCounts,
)

_STATES = (PENDING, RUNNING, COMPLETED, FAILED)
_P, _R, _C, _F = range(4)


class InMemoryTaskStore:
    """A ``TaskStore`` in memory: task states, instances, spend; no event log.

    Per task it keeps a state code, plus data only when not empty, and counters only for tasks
    that have them (re-sends, preemptions, errors), so a million tasks take tens of MB. Events
    are not deduplicated by content: the state rules make a repeated outcome harmless (a second
    success is counted in ``duplicate_completions``, never twice).
    """

    def __init__(self, *, tasks_known: bool = False, trusted_events: bool = False) -> None:
        """``tasks_known``: every task is added before any event, so an event naming another
        task is refused (as the ``TaskDatabase`` of ``run`` does); otherwise tasks are learnt
        from their events (``manage_pool``).

        ``trusted_events``: every event ``ingest`` gets was built in this process by code that
        only builds accepted events (the simulated workers of ``simulate``, through an
        in-process queue nothing else writes to), so ``event_problem`` is not asked again.
        Never set it for a queue that anything outside the process can write to.
        """
        self.tasks_known = tasks_known
        self.trusted_events = trusted_events
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

    def states_of(self, task_ids: Sequence[str]) -> dict[str, str]:
        """The state of each of ``task_ids`` the store knows."""
        state = self._state
        return {t: _STATES[state[t]] for t in task_ids if t in state}

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

    def _complete(self, task_id: str, code: int, elapsed_s: float | None) -> bool:
        """``taskstate.Complete`` for a task in state ``code``: its time counts, its last error
        goes; True when the state changed."""
        if elapsed_s is not None:
            self.completed_elapsed_s += elapsed_s
        if self._errors:
            self._errors.pop(task_id, None)
        return self._move(task_id, code, _C)

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
        check = not self.trusted_events
        state_of = self._state.get
        complete = self._complete
        for index, raw in enumerate(events):
            if check:
                problem = event_problem(raw, known)
                if problem is not None:
                    rejected[index] = problem
                    continue
            # Read from the accepted object: only an event that names a task is decoded (a
            # simulation sends millions of keep-alives).
            get = raw.get
            instance: str | None = get("instance_id")
            task_id: str | None = get("task_id")
            if instance is not None:
                alive[instance] = now
                if task_id is not None:
                    worked[instance] = now
                elif get("event_type") == KEEP_ALIVE:
                    running = get("running_tasks")
                    if running is not None and instance in active:
                        active[instance][2] = float(running)
            if task_id is None:
                continue
            if not check and get("success") is True and get("event_type") == TASK_COMPLETED:
                # A trusted success of an unfinished task (nearly every event of a simulation):
                # what _apply does with the decoded event and taskstate.decide's Complete.
                code = state_of(task_id)
                if code in (_P, _R):
                    elapsed = get("elapsed_time")
                    complete(task_id, code, None if elapsed is None else float(elapsed))
                    transitions += 1
                    continue
            if apply(task_id, decode_accepted(raw)):
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

    def _apply(self, task_id: str, event: Event) -> bool:
        """Apply one event to its task (``domain.taskstate``); True when the state changed."""
        code = self._state.get(task_id)
        if code is None:
            # A task loaded by someone else (manage_pool): learnt from its events.
            self._state[task_id] = code = _P
            self._counts[_P] += 1
        state = _STATES[code]
        preempted = self._preempted
        before = preempted.get(task_id, 0)
        # Only a release adds to a streak: a task with none (nearly all) keeps none otherwise.
        if before or isinstance(event, TaskReleased):
            preemptions = taskstate.preemptions_after(state, event, before)
            if preemptions != before:
                if preemptions:
                    preempted[task_id] = preemptions
                else:
                    del preempted[task_id]
        errors = self._errors
        decision = taskstate.decide(state, event, error=errors.get(task_id) if errors else None)
        if type(decision) is taskstate.Complete:
            return self._complete(task_id, code, decision.elapsed_s)
        if isinstance(decision, taskstate.Start):
            return self._move(task_id, code, _R)
        if isinstance(decision, taskstate.Fail):
            if decision.error is not None:
                self._errors[task_id] = decision.error
            else:
                self._errors.pop(task_id, None)
            return self._move(task_id, code, _P if decision.retry else _F)
        if isinstance(decision, taskstate.CompleteAgain):
            self.duplicate_completions += 1
        elif isinstance(decision, taskstate.GiveUp) and decision.error is not None:
            self._errors[task_id] = decision.error
        return False

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


__all__ = ["InMemoryTaskStore"]

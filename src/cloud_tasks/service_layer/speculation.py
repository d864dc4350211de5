"""The pool manager's side of speculative re-runs: what it learns from events, what it sends.

``Speculator`` follows each running task's start (``task_started`` events, which workers send
when the manager exports ``RMS_CLOUD_TASKS_REPORT_TASK_STARTS``) and the running median of
task times (``task_completed`` events), and asks the domain rule
(:func:`cloud_tasks.domain.speculation.choose_speculative_runs`) which stragglers to start again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from cloud_tasks.domain.events import (
    TASK_COMPLETED,
    TASK_DEAD_LETTERED,
    TASK_EXCEPTION,
    TASK_EXITED,
    TASK_RELEASED,
    TASK_STARTED,
    TASK_TIMED_OUT,
)
from cloud_tasks.domain.speculation import (
    NO_TIMES,
    LogTimes,
    RunningMedian,
    SpeculationPolicy,
    add_log_time,
    choose_speculative_runs,
    host_slowness,
    slow_hosts,
)

_ENDED: Final = frozenset(
    {
        TASK_COMPLETED,
        TASK_EXCEPTION,
        TASK_EXITED,
        TASK_TIMED_OUT,
        TASK_RELEASED,
        TASK_DEAD_LETTERED,
    }
)


class Speculator:
    """State of speculation for one job: running starts, the median, the copies made."""

    def __init__(self, policy: SpeculationPolicy) -> None:
        self.policy = policy
        self.started: dict[str, float] = {}
        self.median = RunningMedian()
        self.speculated: dict[str, int] = {}
        self.extra_spent_usd = 0.0
        #: runs started and not yet ended (a task with two copies counts twice)
        self.running_runs = 0
        self._tasks: dict[str, Any] = {}
        #: finished task times: the job's, each instance's; running task → its instance
        self.job_times: LogTimes = NO_TIMES
        self.host_times: dict[str, LogTimes] = {}
        self.running_on: dict[str, str] = {}

    def observe(self, events: Iterable[Mapping[str, Any]], now: float) -> None:
        """Learn from a batch of worker events received at ``now``."""
        started = self.started
        for event in events:
            kind = event.get("event_type")
            task_id = event.get("task_id")
            if task_id is None:
                continue
            if kind == TASK_STARTED:
                started[str(task_id)] = now
                self.running_runs += 1
                instance = event.get("instance_id")
                if instance:
                    self.running_on[str(task_id)] = str(instance)
            elif kind in _ENDED:
                started.pop(str(task_id), None)
                self.running_on.pop(str(task_id), None)
                if kind != TASK_DEAD_LETTERED:
                    self.running_runs = max(0, self.running_runs - 1)
                if kind == TASK_COMPLETED and event.get("success") is True:
                    elapsed = event.get("elapsed_time")
                    if isinstance(elapsed, int | float) and math.isfinite(elapsed):
                        self.median.add(float(elapsed))
                        self.job_times = add_log_time(self.job_times, elapsed)
                        instance = event.get("instance_id")
                        if instance:
                            host = self.host_times.get(str(instance), NO_TIMES)
                            self.host_times[str(instance)] = add_log_time(host, elapsed)

    def choose(
        self,
        *,
        now: float,
        queue_depth: int,
        slots: int,
        slot_price_per_hour_usd: float,
        spent_usd: float,
    ) -> list[str]:
        """Stragglers to start again now; they are remembered as copied.

        ``queue_depth`` is the queue's depth as the provider counts it (waiting plus leased
        messages); the runs in progress are taken off to see whether any task still waits.
        """
        median = self.median.value
        slow = slow_hosts(self.policy, self.host_times, self.job_times)
        suspects = (
            {task for task, host in self.running_on.items() if host in slow} if slow else set()
        )
        chosen = choose_speculative_runs(
            policy=self.policy,
            now_s=now,
            started_at_s=self.started,
            speculated=self.speculated,
            queue_depth=max(0, queue_depth - self.running_runs),
            idle_slots=slots - self.running_runs,
            median_s=median,
            slot_price_per_hour_usd=slot_price_per_hour_usd,
            spent_usd=spent_usd,
            extra_spent_usd=self.extra_spent_usd,
            on_slow_hosts=suspects,
        )
        expected = median if median is not None else (self.policy.threshold_s(None) or 0.0)
        for task_id in chosen:
            self.speculated[task_id] = self.speculated.get(task_id, 0) + 1
            self.extra_spent_usd += expected / 3600.0 * slot_price_per_hour_usd
        return chosen

    def slow_instances(self) -> dict[str, float]:
        """Instances judged slow so far, each with how many times slower its tasks ran."""
        return host_slowness(self.policy, self.host_times, self.job_times)

    def forget_instance(self, instance_id: str) -> None:
        """``instance_id`` was stopped: it is judged no more (its runs end with their events)."""
        self.host_times.pop(instance_id, None)

    def tasks_for(
        self, task_ids: Sequence[str], unfinished: Callable[[], Sequence[tuple[Any, int]]]
    ) -> list[Any]:
        """The ``Task`` objects of ``task_ids``, from the store's unfinished tasks.

        The store is read only when an id is not cached yet: in the tail of a job the
        unfinished tasks only ever shrink, so one read serves every later copy.
        """
        if any(task_id not in self._tasks for task_id in task_ids):
            self._tasks = {task.task_id: task for task, _resent in unfinished()}
        return [self._tasks[task_id] for task_id in task_ids if task_id in self._tasks]

    @property
    def copies(self) -> int:
        return sum(self.speculated.values())


__all__ = ["Speculator"]

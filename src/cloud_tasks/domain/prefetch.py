"""How many queue deliveries a worker holds beyond its running tasks (SPEC §10, queue mode).

A delivery held in reserve starts the moment a task slot frees, with no trip to the queue in
between; that keeps the slots of a worker busy when tasks are short. A reserve of long tasks
would idle the other workers at the end of a job (one worker holds tasks that nobody else may
start), so the reserve covers only about ``window_s`` of work, and nothing is held until the
worker has seen how long its tasks take.
"""

from __future__ import annotations

import math

#: Seconds of work a worker holds in reserve (beyond its running tasks).
PREFETCH_WINDOW_S = 0.5
#: Weight of the newest task in the running mean of task times.
MEAN_WEIGHT = 0.1


def tasks_to_prefetch(
    slots: int, mean_task_s: float | None, window_s: float = PREFETCH_WINDOW_S
) -> int:
    """Deliveries to hold beyond ``slots`` running tasks: ``slots`` tasks of ``mean_task_s``
    finish about ``slots / mean_task_s`` times a second; hold what starts within ``window_s``,
    at most one per slot, and none while the task time is unknown.

    >>> tasks_to_prefetch(4, 0.01), tasks_to_prefetch(4, 1.0), tasks_to_prefetch(4, None)
    (4, 2, 0)
    """
    if mean_task_s is None or slots <= 0 or not math.isfinite(mean_task_s):
        return 0
    budget_s = slots * window_s
    if mean_task_s * slots <= budget_s:  # no division: a tiny mean would overflow it
        return slots
    return max(0, int(budget_s / mean_task_s))


def updated_mean(mean_s: float | None, elapsed_s: float, weight: float = MEAN_WEIGHT) -> float:
    """The running mean of task times after one more task of ``elapsed_s``."""
    if mean_s is None:
        return elapsed_s
    return mean_s + weight * (elapsed_s - mean_s)


__all__ = ["MEAN_WEIGHT", "PREFETCH_WINDOW_S", "tasks_to_prefetch", "updated_mean"]

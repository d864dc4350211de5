"""Speculative re-runs of stragglers (SPEC §6, speculation): which running tasks to start again.

Once the queue is empty and task slots sit idle, a task that has run longer than
``speculative_after`` is started a second time, so that a slow or stuck instance no longer
decides when the job ends. The first outcome wins; the task database counts the task once.

``speculative_after`` is a number of seconds (``600``) or a multiple of the running median
task time (``3x``). The extra cost is capped: the copies' expected cost (the median task time
at the price of a task slot) may not exceed ``speculative_max_extra_cost`` (a fraction) of the
spend so far. A copy that straggles too (it may land on another slow instance) is copied
again, up to ``max_copies`` copies per task.

Slowness that belongs to an instance shows in its finished tasks: an instance whose tasks
took ``slow_host_factor`` times the job's typical task time or more (geometric means, after a
few tasks, and beyond what the spread of task times explains) is a slow host, and a task
running there is a straggler as soon as the queue is empty, before it reaches
``speculative_after`` (see :func:`host_slowness`). While work still waits in the queue the
pool manager replaces slow hosts instead
(:func:`cloud_tasks.domain.pool_health.slow_instances_to_replace`).

Pure functions of their arguments; the pool manager calls :func:`choose_speculative_runs` at
every scaling check.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Set
from typing import Final

import attrs

from cloud_tasks.exceptions import ConfigError

_MULTIPLE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[xX]\s*$")


@attrs.frozen
class SpeculationPolicy:
    """``after_s`` (absolute) or ``median_factor`` (relative) sets when a task is a straggler."""

    after_s: float | None = None
    median_factor: float | None = None
    max_extra_cost: float = 0.05
    max_copies: int = 2
    slow_host_factor: float = 2.0
    slow_host_min_tasks: int = 5

    def threshold_s(self, median_s: float | None) -> float | None:
        """Seconds after which a running task is a straggler; None while no median is known."""
        if self.after_s is not None:
            return self.after_s
        if self.median_factor is None or median_s is None:
            return None
        return self.median_factor * median_s

    def describe(self) -> str:
        if self.after_s is not None:
            return f"after {self.after_s:g} s"
        return f"after {self.median_factor:g}x the median task time"


def parse_speculative_after(text: str, max_extra_cost: float = 0.05) -> SpeculationPolicy:
    """``600`` (seconds) or ``3x`` (times the running median task time).

    Raises:
        ConfigError: anything else, or a value that is not positive.
    """
    match = _MULTIPLE.match(text)
    try:
        if match:
            factor = float(match.group(1))
            if not factor > 1:
                raise ValueError
            return SpeculationPolicy(median_factor=factor, max_extra_cost=max_extra_cost)
        seconds = float(text)
        if not (seconds > 0 and math.isfinite(seconds)):
            raise ValueError
    except ValueError:
        raise ConfigError(
            f"speculative_after: {text!r} is not a number of seconds (600) or a multiple of the "
            "median task time above 1 (3x)"
        ) from None
    return SpeculationPolicy(after_s=seconds, max_extra_cost=max_extra_cost)


def choose_speculative_runs(
    *,
    policy: SpeculationPolicy,
    now_s: float,
    started_at_s: Mapping[str, float],
    speculated: Mapping[str, int],
    queue_depth: int,
    idle_slots: int,
    median_s: float | None,
    slot_price_per_hour_usd: float,
    spent_usd: float,
    extra_spent_usd: float,
    on_slow_hosts: Set[str] = frozenset(),
) -> list[str]:
    """Task ids to start once more now, longest-running first.

    ``started_at_s`` maps each running task to when its latest run started; ``speculated``
    counts the copies made of each task; ``extra_spent_usd`` is the expected cost of the copies
    started so far; ``on_slow_hosts`` are running tasks whose instance is a slow host (they
    come first, whatever their running time). Nothing is copied while the queue holds tasks or
    no slot is idle.
    """
    if queue_depth > 0 or idle_slots <= 0:
        return []
    threshold = policy.threshold_s(median_s)
    if threshold is None:
        return []
    stragglers = sorted(
        (task_id not in on_slow_hosts, started, task_id)
        for task_id, started in started_at_s.items()
        if (now_s - started > threshold or task_id in on_slow_hosts)
        and speculated.get(task_id, 0) < policy.max_copies
    )
    expected = median_s if median_s is not None else threshold
    copy_cost = max(expected, 0.0) / 3600.0 * max(slot_price_per_hour_usd, 0.0)
    budget = policy.max_extra_cost * max(spent_usd, 0.0) - extra_spent_usd
    chosen: list[str] = []
    for _usual, _started, task_id in stragglers:
        if len(chosen) >= idle_slots or budget < copy_cost:
            break
        chosen.append(task_id)
        budget -= copy_cost
    return chosen


#: Count, sum and sum of squares of the logarithms of task times (see :func:`add_log_time`).
LogTimes = tuple[int, float, float]
NO_TIMES: Final[LogTimes] = (0, 0.0, 0.0)
#: How far (in standard errors of the job's spread of task times) an instance's tasks must lie
#: above the job's before the instance is judged slow: long tasks land on every instance, and
#: with a wide spread a few of them on one instance prove nothing.
SLOW_HOST_Z: Final = 4.0


def add_log_time(times: LogTimes, seconds: float) -> LogTimes:
    """``times`` with one more task time (seconds; under a millisecond counts as one)."""
    log = math.log(max(seconds, 1e-3))
    count, total, squares = times
    return count + 1, total + log, squares + log * log


def host_slowness(
    policy: SpeculationPolicy, host_times: Mapping[str, LogTimes], job_times: LogTimes
) -> dict[str, float]:
    """Slow hosts, each with the geometric mean of its task times over the job's.

    ``host_times`` holds the finished task times of each instance, ``job_times`` those of the
    whole job. An instance is slow after ``slow_host_min_tasks`` finished tasks whose
    geometric mean is ``slow_host_factor`` times the job's or more, and lies ``SLOW_HOST_Z``
    standard errors above it (so a wide spread of task times needs more tasks as evidence).
    """
    count, total, squares = job_times
    if count < 2:
        return {}
    mean = total / count
    spread = math.sqrt(max(squares / count - mean * mean, 0.0))
    least = math.log(max(policy.slow_host_factor, 1.0))
    slow: dict[str, float] = {}
    for instance, (n, host_total, _squares) in host_times.items():
        if n < max(policy.slow_host_min_tasks, 1):
            continue
        excess = host_total / n - mean
        if excess >= least and excess * math.sqrt(n) >= SLOW_HOST_Z * spread:
            slow[instance] = math.exp(excess)
    return slow


def slow_hosts(
    policy: SpeculationPolicy, host_times: Mapping[str, LogTimes], job_times: LogTimes
) -> set[str]:
    """The instances :func:`host_slowness` judges slow."""
    return set(host_slowness(policy, host_times, job_times))


class RunningMedian:
    """The median of the task times seen so far, from a bounded, evenly thinned sample."""

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = max(capacity, 16)
        self._sample: list[float] = []
        self._stride = 1
        self._seen = 0
        self._cached: float | None = None

    def add(self, seconds: float) -> None:
        self._seen += 1
        if self._seen % self._stride:
            return
        self._sample.append(seconds)
        self._cached = None
        if len(self._sample) >= self._capacity:
            self._sample = self._sample[::2]
            self._stride *= 2

    @property
    def value(self) -> float | None:
        if not self._sample:
            return None
        if self._cached is None:
            ordered = sorted(self._sample)
            middle = len(ordered) // 2
            self._cached = (
                ordered[middle]
                if len(ordered) % 2
                else (ordered[middle - 1] + ordered[middle]) / 2.0
            )
        return self._cached


__all__ = [
    "NO_TIMES",
    "SLOW_HOST_Z",
    "LogTimes",
    "RunningMedian",
    "SpeculationPolicy",
    "add_log_time",
    "choose_speculative_runs",
    "host_slowness",
    "parse_speculative_after",
    "slow_hosts",
]

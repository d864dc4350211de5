"""The sane range of every numeric option (SPEC §4): one table, one check.

The configuration loader (config keys and their ``--flags``), the worker's options (flags and
``RMS_CLOUD_TASKS_*`` variables), ``simulate`` and the pytest plugin all check a number with
``range_problem`` against ``RANGES``, keyed by the option's name. A value outside its range is
refused with one line that gives the range, so an extreme but "valid" number (a ``max_runtime``
of years, a ``cpus_per_task`` of 1e-300, NaN) never reaches the code that would loop, overflow
or fail every task with it.

The bounds are generous: far beyond any real instance, job or task, and far inside what the
code below can represent (a C ``int`` of milliseconds, an ``RLIMIT_AS`` in bytes, a slice
index).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

_DAY_S = 24 * 3600.0


class Range(NamedTuple):
    """``low <= value <= high`` (``low < value`` when ``above_low``), with a unit for messages.

    A named tuple rather than attrs: the worker's options check their ranges, and
    ``import cloud_tasks.worker`` stays free of attrs (a third of its import time).

    ``or_zero``: 0 is also allowed (it means "off"), below a ``low`` that keeps a loop from
    spinning (a keep-alive every nanosecond).
    """

    low: float
    high: float
    unit: str = ""
    above_low: bool = False
    or_zero: bool = False

    def describe(self) -> str:
        """The range as a person reads it: ``from 0 to 604800 seconds (7 days)``."""
        unit = f" {self.unit}" if self.unit else ""
        high = f"{_number(self.high)}{unit}{_in_days(self.high, self.unit)}"
        if self.above_low:
            return f"greater than {_number(self.low)} and at most {high}"
        if self.or_zero:
            return f"0 (off) or from {_number(self.low)} to {high}"
        return f"from {_number(self.low)} to {high}"

    def interval(self) -> str:
        """The range as an interval, for tables: ``[0, 100000]``, ``(0, 604800]``."""
        interval = f"{'(' if self.above_low else '['}{_number(self.low)}, {_number(self.high)}]"
        return f"0 or {interval}" if self.or_zero else interval


def _number(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}"


def _in_days(seconds: float, unit: str) -> str:
    if unit != "seconds" or seconds < 2 * _DAY_S:
        return ""
    return f" ({_number(seconds / _DAY_S)} days)"


def _seconds(high: float, *, above_zero: bool = False) -> Range:
    return Range(0.0, high, "seconds", above_zero)


def _seconds_or_off(low: float, high: float) -> Range:
    return Range(low, high, "seconds", or_zero=True)


_COUNT = Range(0, 1_000_000)
_VCPUS = Range(0, 100_000)
_GIB = Range(0, 1_000_000, "GiB")
_GB = Range(0, 10_000_000, "GB")
_USD_PER_HOUR = Range(0, 1_000_000, "USD per hour")
_DELAY = _seconds(7 * _DAY_S)

#: The longest a task may run (``max_runtime``), and the longest simulated task.
MAX_TASK_S = 7 * _DAY_S

#: Every numeric option by name: configuration keys, worker options and ``simulate`` flags.
RANGES: dict[str, Range] = {
    # instance constraints (SPEC §5)
    "min_cpu_rank": Range(0, 1_000_000),
    "max_cpu_rank": Range(0, 1_000_000),
    "min_cpu": _VCPUS,
    "max_cpu": _VCPUS,
    # Tasks per instance = vCPUs / cpus_per_task: 1/100 vCPU is already 100 tasks per vCPU.
    "cpus_per_task": Range(0.01, 10_000, "vCPUs"),
    "min_tasks_per_instance": _COUNT,
    "max_tasks_per_instance": _COUNT,
    "min_total_memory": _GIB,
    "max_total_memory": _GIB,
    "min_memory_per_cpu": _GIB,
    "max_memory_per_cpu": _GIB,
    "min_memory_per_task": _GIB,
    "max_memory_per_task": _GIB,
    "min_local_ssd": _GB,
    "max_local_ssd": _GB,
    "local_ssd_base_size": _GB,
    "min_local_ssd_per_cpu": _GB,
    "max_local_ssd_per_cpu": _GB,
    "min_local_ssd_per_task": _GB,
    "max_local_ssd_per_task": _GB,
    "boot_disk_iops": Range(0, 10_000_000),
    "boot_disk_throughput": Range(0, 1_000_000, "MB/s"),
    "total_boot_disk_size": _GB,
    "boot_disk_base_size": _GB,
    "boot_disk_per_cpu": _GB,
    "boot_disk_per_task": _GB,
    "min_gpus": Range(0, 1_000, "GPUs"),
    "max_gpus": Range(0, 1_000, "GPUs"),
    "gpus_per_task": Range(0.01, 1_000, "GPUs"),
    "min_gpu_memory": _GIB,
    # pool limits (SPEC §6)
    "min_instances": Range(0, 100_000),
    "max_instances": Range(0, 100_000),
    "min_total_cpus": Range(0, 100_000_000),
    "max_total_cpus": Range(0, 100_000_000),
    "min_simultaneous_tasks": Range(0, 100_000_000),
    "max_simultaneous_tasks": Range(0, 100_000_000),
    "min_total_price_per_hour": _USD_PER_HOUR,
    "max_total_price_per_hour": _USD_PER_HOUR,
    "max_total_cost": Range(0, 1_000_000_000, "USD"),
    # retry policy (SPEC §7)
    "max_attempts": _COUNT,
    "max_preemptions": _COUNT,
    # other run options (SPEC §4)
    # Lower bounds on intervals keep a loop from spinning (a cloud API call every nanosecond).
    "scaling_check_interval": Range(0.1, _DAY_S, "seconds"),
    "instance_termination_delay": _DELAY,
    "on_demand_after_preemptions": _COUNT,
    "max_runtime": _seconds(MAX_TASK_S, above_zero=True),
    # RLIMIT_AS of one task process: at least 10 MB, at most 1 PiB (far inside 2**63 bytes).
    "max_memory_allowed_per_task": Range(0.01, 1_000_000, "GB"),
    "speculative_max_extra_cost": Range(0, 10),
    # a fraction of the best price per task slot: 0.1 = within 10 %
    "spot_spread_tolerance": Range(0, 10),
    "keepalive_interval": _seconds_or_off(0.1, _DAY_S),
    "keepalive_startup_timeout": _seconds_or_off(1, 7 * _DAY_S),
    "keepalive_timeout": _seconds_or_off(1, 7 * _DAY_S),
    # worker-only options (SPEC §10)
    "num_cpus": Range(1, 100_000, "vCPUs"),
    "memory": _GB,
    "local_ssd": _GB,
    "boot_disk": _GB,
    "price": _USD_PER_HOUR,
    "num_simultaneous_tasks": Range(1, 100_000),
    "gpus": Range(0, 1_000, "GPUs"),
    "shutdown_grace_period": _DELAY,
    "tasks_to_skip": Range(0, 1_000_000_000_000),
    "max_num_tasks": Range(0, 1_000_000_000_000),
    "simulate_spot_termination_after": _seconds(30 * _DAY_S),
    "simulate_spot_termination_delay": _DELAY,
    "exit_when_idle": _seconds(30 * _DAY_S),
    # SQS's longest visibility timeout (12 hours); the lease is renewed every third of it.
    "visibility_timeout": Range(0.1, 12 * 3600.0, "seconds"),
    # load_queue (SPEC §11)
    "start_task": Range(0, 1_000_000_000_000),
    "limit": Range(0, 1_000_000_000_000),
    # simulate (SPEC §9)
    "task_duration": _seconds(MAX_TASK_S),
    "num_tasks": Range(1, 10_000_000),
    "preemption_rate": Range(0, 3600, "per instance per hour"),
    "pool_preemption_rate": Range(0, 3600, "per capacity pool per hour"),
    "boot_time": _DELAY,
}


def range_problem(name: str, value: Any) -> str | None:
    """Why ``value`` is outside the range of option ``name``, or ``None``.

    NaN and infinities are never in range. A name without a range, a non-number and a bool are
    not this check's business (``None``).
    """
    bounds = RANGES.get(name)
    if bounds is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        shown = "NaN" if math.isnan(value) else str(value)
        return f"must be a finite number, not {shown} (allowed: {bounds.describe()})"
    if value < 0 <= bounds.low:
        return f"must not be negative, got {_shown(value)}"
    too_low = value <= bounds.low if bounds.above_low else value < bounds.low
    if bounds.or_zero and value == 0:
        too_low = False
    if too_low or value > bounds.high:
        return f"must be {bounds.describe()}, got {_shown(value)}"
    return None


def _shown(value: float) -> str:
    if isinstance(value, int) and value.bit_length() > 64:
        # A 5,000-digit integer must not become a 5,000-character message (nor hit Python's
        # limit on converting long integers to text).
        return f"a number of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    return _number(value) if isinstance(value, float) else str(value)


__all__ = ["MAX_TASK_S", "RANGES", "Range", "range_problem"]

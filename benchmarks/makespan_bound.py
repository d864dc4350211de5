"""How short the speculation scenario of ``simulate_scale.py --quality`` could possibly be.

The scenario: 100,000 tasks (``lognormal:4,0.5``, drawn as ``simulate`` draws them for a seed)
on 100 instances of 16 task slots that boot in 30 s. Two lower bounds of its makespan, whatever
the pool manager does (no slow instance, no preemption, speculative copies only add work):

- ideal: boot, then every task-second spread evenly over the slots;
- queue order: the queue hands tasks out in the order they were sent (the manager knows no
  task's duration before it ran, so it has no better order to send them in). When task i
  starts, every earlier task has started and at most ``slots - 1`` of them still run, so at
  least their work minus that of the ``slots - 1`` longest is done:
  ``start_i >= boot + (sum(d_j, j < i) - top(slots - 1)) / slots``, and the job lasts at
  least ``start_i + d_i`` for every i.

Compare with the target of issue 19 (makespan -20 % against the run without speculation);
``simulate_scale.py --quality`` prints this bound next to each seed of its speculation runs.

    .venv/bin/python benchmarks/makespan_bound.py [--seeds 1,2,3,4,5]
"""

from __future__ import annotations

import argparse
import heapq
import math
import random

from cloud_tasks.domain.durations import parse_duration_model

TASKS = 100_000
SLOTS = 100 * 16
BOOT_S = 30.0


def bounds(seed: int) -> tuple[float, float, int, float]:
    """(ideal, queue-order bound, the task that sets it, its start bound) for ``seed``."""
    model = parse_duration_model("lognormal:4,0.5")
    if model is None:
        raise SystemExit("bad duration model")
    rng = random.Random(f"durations:{seed}")  # as simulate() draws them
    durations = [max(0.0, model.sample(rng)) for _ in range(TASKS)]
    longest: list[float] = []  # min-heap of the SLOTS - 1 longest tasks so far
    longest_s = done_before = 0.0
    bound, task, start = 0.0, 0, 0.0
    for index, seconds in enumerate(durations):
        earliest = BOOT_S + (done_before - longest_s) / SLOTS
        if earliest + seconds > bound:
            bound, task, start = earliest + seconds, index, earliest
        done_before += seconds
        if len(longest) < SLOTS - 1:
            heapq.heappush(longest, seconds)
            longest_s += seconds
        elif seconds > longest[0]:
            longest_s += seconds - heapq.heapreplace(longest, seconds)
    ideal = BOOT_S + math.fsum(durations) / SLOTS
    return ideal, bound, task, start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3,4,5")
    args = parser.parse_args()
    for seed in (int(text) for text in args.seeds.split(",")):
        ideal, bound, task, start = bounds(seed)
        print(
            f"seed {seed}: ideal {ideal:.0f} s; in queue order at least {bound:.0f} s "
            f"(task {task} starts at {start:.0f} s at the earliest and runs "
            f"{bound - start:.0f} s)"
        )


if __name__ == "__main__":
    main()

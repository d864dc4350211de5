"""How fast ``cloud_tasks simulate`` is, and how close its pool comes to the cheapest schedule.

Scale (default): 10^4, 10^5 and 10^6 tasks (lognormal durations, median 55 s) over up to
1,000 2-vCPU spot instances preempted at 10 %/h; prints wall and CPU time, peak RSS, simulated
makespan and cost for each. Every size runs in a fresh process so its peak RSS is its own.
Target: 10^6 tasks within 30 s wall and 1 GB on a 2-core machine (the CPU time is the figure
other load on the machine moves least).

Quality (``--quality``): 100,000 lognormal tasks on the bundled catalog with 10 %/h spot
preemptions; prints cost / lower bound (target <= 1.15) and makespan / ideal makespan of the
chosen pool (target <= 1.2); then a tail of 4-hour tasks on a volatile spot market with and
without ``on_demand_after_preemptions``.

    .venv/bin/python benchmarks/simulate_scale.py [--sizes 10000,100000,1000000] [--quality]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DURATION = "lognormal:4,0.5"
RATE = 0.1


def _config(directory: Path, max_instances: int, extra: str = "") -> Path:
    path = directory / f"simulate-{max_instances}.yml"
    path.write_text(
        "provider: aws\n"
        "aws:\n"
        "  job_id: bench\n"
        "  use_spot: true\n"
        f"  max_instances: {max_instances}\n"
        "  max_total_price_per_hour: 1000\n" + extra
    )
    return path


#: Scale runs use 2-vCPU instances (2 task slots): the longest jobs, the most keep-alives.
SMALL_INSTANCES = "  min_cpu: 2\n  max_cpu: 2\n"


def run_one(config: str, tasks: int, duration: str, rate: float, seed: int) -> dict[str, Any]:
    """Simulate in this process; returns the figures plus wall/CPU time and peak RSS."""
    from cloud_tasks.config import load_config
    from cloud_tasks.domain.durations import parse_duration_model
    from cloud_tasks.manager.simulation import simulate

    job = load_config(config, provider_override="memory", cli_overrides={})
    model = parse_duration_model(duration)
    if model is None:
        raise SystemExit(f"bad duration model {duration!r}")
    wall, cpu = time.perf_counter(), time.process_time()
    run = simulate(job, duration=model, num_tasks=tasks, preemption_rate_per_hour=rate, seed=seed)
    figures = run.result.to_dict()
    figures["wall_s"] = time.perf_counter() - wall
    figures["cpu_s"] = time.process_time() - cpu
    figures["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures["events"] = getattr(run.store, "events_applied", 0)
    return figures


def _in_child(config: Path, tasks: int, duration: str, rate: float, seed: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            str(config),
            str(tasks),
            duration,
            str(rate),
            str(seed),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def scale(sizes: list[int]) -> None:
    print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    print(
        f"{'tasks':>9} {'instances':>9} {'wall s':>7} {'cpu s':>7} {'RSS MiB':>8} "
        f"{'makespan':>10} {'cost USD':>10} {'cost/LB':>8} {'span/ideal':>10} {'events':>9}"
    )
    with tempfile.TemporaryDirectory() as directory:
        for tasks in sizes:
            instances = min(1000, max(10, tasks // 100))
            config = _config(Path(directory), instances, SMALL_INSTANCES)
            r = _in_child(config, tasks, DURATION, RATE, 1)
            print(
                f"{tasks:>9} {r['peak_instances']:>9} {r['wall_s']:>7.1f} {r['cpu_s']:>7.1f} "
                f"{r['peak_rss_mib']:>8.0f} {r['makespan_s'] / 3600:>9.2f}h "
                f"{r['cost_usd']:>10.2f} {r['cost_ratio']:>8.3f} {r['makespan_ratio']:>10.3f} "
                f"{r['events']:>9}"
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def quality() -> None:
    tasks = 100_000
    print(
        f"quality: {tasks} tasks, {DURATION}, {RATE:.0%}/h spot preemptions, bundled aws "
        f"catalog; load average {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory() as directory:
        config = _config(Path(directory), 100)
        for seed in (1, 2):
            r = _in_child(config, tasks, DURATION, RATE, seed)
            ok = r["cost_ratio"] <= 1.15 and r["makespan_ratio"] <= 1.2
            print(
                f"  seed {seed}: {r['max_instances']} x {r['instance_type']}, cost "
                f"${r['cost_usd']:.2f} / lower bound ${r['lower_bound_usd']:.2f} = "
                f"{r['cost_ratio']:.3f} (<= 1.15), makespan {r['makespan_s']:.0f} s / ideal "
                f"{r['ideal_makespan_s']:.0f} s = {r['makespan_ratio']:.3f} (<= 1.2), "
                f"{r['preemptions']} preemptions, utilisation {r['utilisation']:.1%}, "
                f"wall {r['wall_s']:.1f} s [{'ok' if ok else 'MISSED'}]"
            )
        print("tail: 8 tasks of 4 h on 4 x 2-vCPU spot instances preempted at 50 %/h")
        for fallback in (1, 0):
            extra = f"{SMALL_INSTANCES}  on_demand_after_preemptions: {fallback}\n"
            config = _config(Path(directory), 4, extra)
            for seed in (0, 1):
                r = _in_child(config, 8, "14400", 0.5, seed)
                print(
                    f"  on_demand_after_preemptions={fallback}, seed {seed}: makespan "
                    f"{r['makespan_s'] / 3600:.1f} h (ideal {r['ideal_makespan_s'] / 3600:.1f} h), "
                    f"{r['preemptions']} preemptions, {r['on_demand_instances']} on-demand, "
                    f"cost ${r['cost_usd']:.2f}"
                )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, config, tasks, duration, rate, seed = sys.argv
        print(json.dumps(run_one(config, int(tasks), duration, float(rate), int(seed))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--quality", action="store_true", help="run the cost-quality scenario")
    args = parser.parse_args()
    if args.quality:
        quality()
    else:
        scale([int(size) for size in args.sizes.split(",")])


if __name__ == "__main__":
    main()

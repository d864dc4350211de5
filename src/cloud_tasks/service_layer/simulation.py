"""What-if runs of a job (SPEC §9): the real pool manager on virtual time and the memory provider.

``simulate`` builds the job as ``run`` would (instance selection, launch options and pool limits
from the configuration), then runs the same ``PoolManager`` against an ``InMemoryCompute``
(boot delay, seeded Poisson spot preemption, injected capacity errors) with event-driven
simulated workers that apply the worker's retry rules to modelled outcomes (a failure
probability, a file of outcomes per task). Nothing is serialized and nothing waits: the clock
jumps from one moment something happens to the next, tasks live in a ``CompactTaskQueue``,
events in a ``CompactEventQueue`` and task states in an ``InMemoryTaskStore``, so a million
tasks on a thousand instances take seconds.

Figures: makespan, cost (every instance's price times its running time, as the manager
accounts spend), instance-hours, task re-runs and preemptions, utilisation (task-seconds run,
including runs lost to preemption, over task-slot-seconds paid for), the lower bound (every
task-second at the cheapest eligible price per task slot) and the ideal makespan of the chosen
pool (boot, then the work spread evenly over every slot, but never less than the longest task).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import hashlib
import itertools
import math
import random
import re
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, ParamSpec, TypeVar

import attrs

from cloud_tasks import bootstrap
from cloud_tasks.adapters.local.taskdb import TaskDatabase
from cloud_tasks.adapters.memory.catalog import MemoryPricing
from cloud_tasks.adapters.memory.compute import InMemoryCompute
from cloud_tasks.adapters.memory.taskstore import InMemoryTaskStore
from cloud_tasks.domain.cost import lower_bound_cost_usd
from cloud_tasks.domain.durations import DurationModel, durations_from_text, parse_duration_model
from cloud_tasks.domain.options import JobConfig
from cloud_tasks.domain.ranges import range_problem
from cloud_tasks.domain.retry import OutcomeKind
from cloud_tasks.domain.selection import Candidate, rank_offers_in_zone
from cloud_tasks.domain.simulated_outcomes import FailureModel, outcomes_from_text
from cloud_tasks.domain.sizing import target_pool_size
from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.exceptions import ConfigError
from cloud_tasks.localfile import read_regular_file
from cloud_tasks.service_layer.plan import ZoneChoice, launch_options, on_demand_options
from cloud_tasks.service_layer.pool import PoolManager, PoolSettings
from cloud_tasks.service_layer.simworkers import (
    EventDrivenWorkers,
    OutcomeModel,
    SimStats,
    run_on_virtual_time,
)

#: Job id of a simulation whose configuration names none.
DEFAULT_JOB_ID: Final = "simulation"
#: Longest simulated job before the simulation gives up.
MAX_VIRTUAL_S: Final = 366 * 24 * 3600.0
_SEND_BATCH: Final = 10_000
# One empty mapping shared by every synthetic task (nothing mutates task data): a million
# tasks need no million dicts. A plain dict, so a task database can store it as JSON.
_EMPTY: Final[Mapping[str, Any]] = {}
_SCRIPT: Final = "#!/bin/bash\n# simulated instance: no script runs\n"


def _check_durations(durations: Sequence[float], model: DurationModel, slots: int) -> None:
    """Refuse durations no simulation can finish: a task longer than ``max_runtime`` may be,
    or a job that would outlast ``MAX_VIRTUAL_S`` on every slot the pool may have.
    """
    longest = max(durations, default=0.0)
    problem = range_problem("task_duration", longest)
    if problem is not None:
        raise ConfigError(
            f"--task-duration {model.describe()}: a task duration {problem}; give shorter durations"
        )
    makespan_s = max(longest, math.fsum(durations) / max(slots, 1))
    if makespan_s > MAX_VIRTUAL_S:
        days = MAX_VIRTUAL_S / 86400
        raise ConfigError(
            f"--task-duration {model.describe()}: the job needs at least "
            f"{makespan_s / 86400:.0f} days on {slots} task slots, longer than the {days:.0f} "
            "days a simulation covers; simulate fewer tasks, shorter ones, or a larger pool"
        )


@attrs.frozen
class SimulationResult:
    """The figures of one simulated job (see the module docstring for their meaning)."""

    status: str
    message: str
    tasks: int
    completed: int
    failed: int
    makespan_s: float
    cost_usd: float
    lower_bound_usd: float
    ideal_makespan_s: float
    instance_hours: float
    retries: int
    preemptions: int
    preempted_runs: int
    utilisation: float
    instance_type: str
    zone: str | None
    region: str
    use_spot: bool
    price_per_hour_usd: float
    tasks_per_instance: int
    max_instances: int
    limited_by: str
    peak_instances: int
    on_demand_instances: int
    total_task_s: float
    duration_model: str
    preemption_rate_per_hour: float
    boot_time_s: float
    seed: int
    speculative_runs: int = 0
    slow_instances: str = ""
    pool_preemption_rate_per_hour: float = 0.0
    #: Capacity pools (type and zone) the job's instances were spread over.
    capacity_pools: int = 1
    #: Chance that an attempt of a task the outcomes file does not list fails.
    failure_rate: float = 0.0
    #: Tasks given up by max_attempts or max_preemptions (part of ``failed``).
    dead_lettered: int = 0
    #: Launches refused with an injected capacity error.
    capacity_errors: int = 0

    @property
    def cost_ratio(self) -> float:
        """Cost over the lower bound (1.0 = no schedule could be cheaper)."""
        if self.lower_bound_usd <= 0:
            return 1.0 if self.cost_usd <= 0 else math.inf
        return self.cost_usd / self.lower_bound_usd

    @property
    def makespan_ratio(self) -> float:
        """Makespan over the ideal makespan of the chosen pool."""
        if self.ideal_makespan_s <= 0:
            return 1.0
        return self.makespan_s / self.ideal_makespan_s

    def to_dict(self) -> dict[str, Any]:
        """The ``--format json`` shape (SPEC §11)."""
        data = attrs.asdict(self)
        data["cost_ratio"] = self.cost_ratio
        data["makespan_ratio"] = self.makespan_ratio
        rounded = {
            key: round(value, 6) if isinstance(value, float) and math.isfinite(value) else value
            for key, value in data.items()
        }
        first = (
            "makespan_s",
            "cost_usd",
            "lower_bound_usd",
            "cost_ratio",
            "ideal_makespan_s",
            "makespan_ratio",
            "instance_hours",
            "retries",
            "preemptions",
            "utilisation",
            "instance_type",
            "max_instances",
        )
        return {**{key: rounded[key] for key in first}, **rounded}


@attrs.frozen
class SimulationRun:
    """A finished simulation with its parts, for tests and benchmarks that look inside."""

    result: SimulationResult
    compute: InMemoryCompute
    store: InMemoryTaskStore | TaskDatabase
    manager: PoolManager
    stats: SimStats
    log: tuple[str, ...]


def duration_model_from_option(text: str, *, base: Path | None = None) -> DurationModel:
    """``--task-duration``: a number, ``uniform:A,B``, ``lognormal:MU,SIGMA`` or a file path.

    Raises:
        ConfigError: a malformed model, or a file that cannot be read or holds no durations.
    """
    model = parse_duration_model(text)
    if model is not None:
        return model
    path = Path(text)
    if base is not None and not path.is_absolute():
        path = base / path
    try:
        content = read_regular_file(path).decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(
            f"--task-duration {text}: not UTF-8 text; is it a file of durations?"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"--task-duration {text}: not a number, uniform:A,B, lognormal:MU,SIGMA or a "
            f"readable file ({exc.strerror or exc})"
        ) from None
    return durations_from_text(content, str(text))


def outcomes_from_option(text: str) -> dict[str, tuple[OutcomeKind, ...]]:
    """``--outcomes FILE``: task id → outcomes of its attempts (``simulated_outcomes``).

    Raises:
        ConfigError: a file that cannot be read or a line that is not a task and outcomes.
    """
    try:
        content = read_regular_file(Path(text)).decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"--outcomes {text}: not UTF-8 text; is it a file of outcomes?") from None
    except OSError as exc:
        raise ConfigError(f"--outcomes {text}: cannot read it ({exc.strerror or exc})") from None
    return outcomes_from_text(content, f"--outcomes {text}")


@attrs.frozen
class CapacityErrors:
    """``--capacity-error``: launches of matching types (a regular expression searched in the
    name; None = every type) in ``zone`` (None = every zone) fail with a capacity error, a
    ``fraction`` of the time (drawn from the seed)."""

    instance_type: str | None = None
    zone: str | None = None
    fraction: float = 1.0


def parse_capacity_error(text: str) -> CapacityErrors:
    """``--capacity-error TYPE[@ZONE][:FRACTION]`` (``*`` or nothing for every type).

    Raises:
        ConfigError: a bad regular expression or a fraction outside (0, 1].
    """
    rest, colon, fraction_text = text.rpartition(":") if ":" in text else (text, "", "")
    try:
        fraction = float(fraction_text) if colon else 1.0
    except ValueError:
        fraction = math.nan
    if not (0 < fraction <= 1):
        raise ConfigError(
            f"--capacity-error {text!r}: the fraction after ':' must be above 0 and at most 1 "
            "(e.g. c6a.large@us-east-1a:0.5)"
        )
    pattern, _, zone = rest.partition("@")
    pattern = pattern.strip()
    if pattern in ("", "*"):
        return CapacityErrors(None, zone.strip() or None, fraction)
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigError(
            f"--capacity-error {text!r}: {pattern!r} is not a regular expression ({exc}); "
            "give TYPE[@ZONE][:FRACTION]"
        ) from None
    return CapacityErrors(pattern, zone.strip() or None, fraction)


def _outcome_model(failures: FailureModel | None, seed: int) -> OutcomeModel | None:
    """The workers' outcome model: the same (seed, task, attempt) always ends the same way."""
    if failures is None or not failures.fails_at_all:
        return None
    rate = failures.rate
    prefix = f"outcome:{seed}:"

    def outcome(task_id: str, _data: Mapping[str, Any], attempt: int) -> OutcomeKind:
        draw = 1.0
        if rate > 0:
            key = f"{prefix}{task_id}:{attempt}".encode()
            draw = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest()) / 2**64
        return failures.outcome(task_id, attempt, draw)

    return outcome


def synthetic_tasks(count: int) -> list[Task]:
    """``count`` tasks with ids ``task-0000000``, ... and no data."""
    width = max(7, len(str(max(count - 1, 0))))
    task_id = f"task-{{:0{width}d}}".format
    return list(map(Task, map(task_id, range(count)), itertools.repeat(_EMPTY, count)))


def _ranked(config: JobConfig, pricing: MemoryPricing, region: str) -> list[Candidate]:
    return rank_offers_in_zone(
        pricing.offers(region), config.run.constraints, config.provider_options.zone
    )


def _region(config: JobConfig, pricing: MemoryPricing) -> str:
    return bootstrap.pricing_region(config, pricing)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _without_cyclic_gc(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``function`` with the cyclic garbage collector off.

    A simulation holds millions of long-lived objects and makes no reference cycles worth
    collecting: collections (each a walk over every container object so far) would take most
    of the time, during the set-up as much as during the run. The peak memory is the same with
    or without the collector.
    """

    @functools.wraps(function)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return wrapper


@_without_cyclic_gc
def simulate(
    config: JobConfig,
    *,
    duration: DurationModel,
    tasks: Sequence[Task] | None = None,
    num_tasks: int | None = None,
    preemption_rate_per_hour: float = 0.0,
    boot_time_s: float = 30.0,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    store: InMemoryTaskStore | TaskDatabase | None = None,
    slow_instances: tuple[float, float] | None = None,
    pool_preemption_rate_per_hour: float = 0.0,
    failures: FailureModel | None = None,
    capacity_errors: Sequence[CapacityErrors] = (),
) -> SimulationRun:
    """Simulate ``config``'s job on the memory provider (see the module docstring).

    Give ``tasks`` (their data is ignored; every task takes a duration drawn from
    ``duration``) or ``num_tasks``. The same arguments always give the same result.
    ``store`` replaces the default ``InMemoryTaskStore`` (e.g. a SQLite ``TaskDatabase``, to
    keep every event of the simulated job). ``slow_instances`` is ``(fraction, factor)``: that
    fraction of the instances (drawn per instance from the seed) runs every task ``factor``
    times slower, as a bad host or a noisy neighbour would. ``pool_preemption_rate_per_hour``:
    reclaim waves per capacity pool (type and zone) per hour, each taking every spot instance
    of that pool. ``failures`` says how attempts end (default: every attempt succeeds); the
    workers apply the configuration's retry policy to it. ``capacity_errors`` makes launches
    fail for lack of capacity, so the pool falls back to other zones and types.

    Raises:
        ConfigError: inconsistent limits, a bad catalog, no tasks.
        SelectionError: no instance type meets the constraints.
    """
    for flag, value in (
        ("--preemption-rate", preemption_rate_per_hour),
        ("--pool-preemption-rate", pool_preemption_rate_per_hour),
        ("--boot-time", boot_time_s),
        ("--num-tasks", num_tasks),
    ):
        problem = range_problem(flag[2:].replace("-", "_"), value)
        if problem is not None:
            raise ConfigError(f"{flag}: {problem}")
    job_tasks = list(tasks) if tasks is not None else synthetic_tasks(num_tasks or 0)
    if not job_tasks:
        raise ConfigError("nothing to simulate: give --tasks FILE or --num-tasks N (> 0)")

    job_id = config.provider_options.job_id or DEFAULT_JOB_ID
    queue_name = config.provider_options.effective_queue_name or job_id
    simulated = bootstrap.build_simulation_adapters(
        config,
        queue_name=queue_name,
        boot_delay_s=boot_time_s,
        preemption_rate_per_hour=preemption_rate_per_hour,
        pool_preemption_rate_per_hour=pool_preemption_rate_per_hour,
        seed=seed,
    )
    pricing, clock, compute = simulated.pricing, simulated.clock, simulated.compute
    region = _region(config, pricing)
    ranked = _ranked(config, pricing, region)
    rules = [
        compute.inject_capacity_error(
            instance_type=errors.instance_type, zone=errors.zone, probability=errors.fraction
        )
        for errors in capacity_errors
    ]
    region_zones: tuple[str, ...] = ()
    for listed in compute.list_regions():
        if listed.name == region:
            region_zones = tuple(listed.zones)
    zones = ZoneChoice(config.provider_options.zone, region_zones)
    options = launch_options(ranked, zones, lambda _c, _z: _SCRIPT)
    twins = on_demand_options(options, lambda _c, _z: _SCRIPT)
    best = options[0].candidate
    run = config.run
    target = target_pool_size(best, run.limits, len(job_tasks))

    rng = random.Random(f"durations:{seed}")
    sample = duration.sample
    durations = array("d", (max(0.0, sample(rng)) for _ in job_tasks))
    _check_durations(durations, duration, target.count * best.tasks_per_instance)
    index_of = {task.task_id: index for index, task in enumerate(job_tasks)}
    if len(index_of) != len(job_tasks):
        raise ConfigError("task ids must be unique")
    if failures is not None:
        if not (0 <= failures.rate <= 1):
            raise ConfigError(f"--failure-rate {failures.rate:g}: give a chance from 0 to 1")
        strangers = [task_id for task_id in failures.table if task_id not in index_of]
        if strangers:
            raise ConfigError(
                f"--outcomes: {len(strangers)} listed task(s) are not tasks of the job (first: "
                f"{strangers[0]!r}); list tasks of --tasks, or task-0000000... for --num-tasks"
            )

    task_queue, event_queue = simulated.task_queue, simulated.event_queue
    task_queue.create()
    event_queue.create()
    for start in range(0, len(job_tasks), _SEND_BATCH):
        task_queue.send(list(map(Envelope, job_tasks[start : start + _SEND_BATCH])))
    if store is None:
        # Only the simulated workers write to this in-process event queue, and they send
        # accepted events only: the store need not check each again.
        store = bootstrap.memory_task_store(trusted_events=True)
    store.add_tasks(job_tasks, 0.0)
    store.set_meta(job_id=job_id, started_at=0.0)

    settings = PoolSettings(
        job_id=job_id,
        image=run.image or compute.default_image(best.offer.architecture),
        limits=run.limits,
        scaling_check_interval_s=run.scaling_check_interval,
        instance_termination_delay_s=run.instance_termination_delay,
        keepalive_interval_s=run.keepalive_interval,
        keepalive_startup_timeout_s=run.keepalive_startup_timeout,
        keepalive_timeout_s=run.keepalive_timeout,
        event_poll_interval_s=min(1.0, max(run.scaling_check_interval, 0.05)),
        offload=False,
        on_demand_after_preemptions=run.on_demand_after_preemptions if best.use_spot else 0,
        speculation=run.speculation,
        spot_spread_tolerance=run.spot_spread_tolerance,
    )
    lines: list[str] = []

    def record(line: str) -> None:
        lines.append(f"[{clock.now():>10.1f}s] {line}")
        if log is not None:
            log(lines[-1])

    manager = PoolManager(
        compute=compute,
        task_queue=task_queue,
        event_queue=event_queue,
        db=store,
        clock=clock,
        options=options,
        settings=settings,
        log=record,
        on_demand_options=twins,
    )
    slots = {option.candidate.name: option.candidate.tasks_per_instance for option in options}
    workers = EventDrivenWorkers(
        job_id=job_id,
        compute=compute,
        task_queue=task_queue,
        event_queue=event_queue,
        clock=clock,
        tasks_per_instance=lambda name: slots.get(name, 1),
        duration=lambda task_id, _data, _attempt: durations[index_of[task_id]],
        outcome=_outcome_model(failures, seed),
        retry=run.retry,
        max_runtime_s=run.max_runtime,
        keepalive_interval_s=run.keepalive_interval,
        slowdown=slowdown_model(slow_instances, seed),
        report_starts=run.speculative_after is not None,
    )
    outcome = asyncio.run(
        run_on_virtual_time(
            clock,
            manager.run(),
            tick_s=None,
            advance_to=workers.advance_to,
            max_virtual_s=MAX_VIRTUAL_S,
        )
    )
    end = clock.now()
    stats = workers.stats
    total_task_s = math.fsum(durations)
    result = SimulationResult(
        status=outcome.status,
        message=outcome.message,
        tasks=len(job_tasks),
        completed=outcome.counts.completed,
        failed=outcome.counts.failed,
        makespan_s=end,
        cost_usd=store.spend_usd(end),
        lower_bound_usd=lower_bound_cost_usd(total_task_s, ranked),
        ideal_makespan_s=ideal_makespan_s(
            total_task_s, max(durations), target.count * best.tasks_per_instance, boot_time_s
        ),
        instance_hours=_instance_hours(stats, end),
        retries=max(0, stats.started - outcome.counts.terminal),
        preemptions=stats.preemptions,
        preempted_runs=stats.preempted_runs,
        utilisation=_utilisation(stats, end),
        instance_type=best.name,
        zone=options[0].zone or None,
        region=region,
        use_spot=best.use_spot,
        price_per_hour_usd=best.price_per_hour_usd,
        tasks_per_instance=best.tasks_per_instance,
        max_instances=target.count,
        limited_by=target.limited_by,
        peak_instances=stats.peak_instances,
        on_demand_instances=manager.launched_on_demand,
        total_task_s=total_task_s,
        duration_model=duration.describe(),
        preemption_rate_per_hour=preemption_rate_per_hour,
        boot_time_s=boot_time_s,
        seed=seed,
        speculative_runs=manager.speculator.copies if manager.speculator else 0,
        slow_instances=f"{slow_instances[0]:g}:{slow_instances[1]:g}" if slow_instances else "",
        pool_preemption_rate_per_hour=pool_preemption_rate_per_hour,
        capacity_pools=len({(spec.instance_type, spec.zone) for spec in compute.launched}),
        failure_rate=failures.rate if failures is not None else 0.0,
        dead_lettered=stats.dead_lettered,
        capacity_errors=sum(rule.hits for rule in rules),
    )
    return SimulationRun(result, compute, store, manager, stats, tuple(lines))


def parse_slow_instances(text: str) -> tuple[float, float]:
    """``--slow-instances FRACTION:FACTOR`` (``0.05:4``: 5 % of instances run 4x slower)."""
    fraction_text, sep, factor_text = text.partition(":")
    try:
        fraction, factor = float(fraction_text), float(factor_text)
    except ValueError:
        fraction, factor = math.nan, math.nan
    if not sep or not (0 <= fraction <= 1) or not (factor >= 1 and math.isfinite(factor)):
        raise ConfigError(
            f"--slow-instances {text!r}: expected FRACTION:FACTOR with a fraction from 0 to 1 "
            "and a factor of at least 1 (e.g. 0.05:4)"
        )
    return fraction, factor


def slowdown_model(
    slow_instances: tuple[float, float] | None, seed: int
) -> Callable[[str], float] | None:
    """Instance id → how many times slower it runs tasks (1.0 for most), seeded per instance."""
    if slow_instances is None or slow_instances[0] <= 0 or slow_instances[1] == 1:
        return None
    fraction, factor = slow_instances

    def slowdown(instance_id: str) -> float:
        draw = random.Random(f"slow:{seed}:{instance_id}").random()
        return factor if draw < fraction else 1.0

    return slowdown


def ideal_makespan_s(
    total_task_s: float, longest_task_s: float, slots: int, boot_s: float
) -> float:
    """Boot, then the work spread evenly over ``slots`` (never shorter than the longest task)."""
    if slots <= 0:
        return math.inf
    return boot_s + max(total_task_s / slots, longest_task_s)


def _lifetimes(stats: SimStats, end: float) -> Iterable[tuple[float, int]]:
    for _type, _price, slots, created, ended in stats.lifetimes.values():
        yield (end if ended is None else ended) - created, slots


def _instance_hours(stats: SimStats, end: float) -> float:
    return math.fsum(seconds for seconds, _ in _lifetimes(stats, end)) / 3600.0


def _utilisation(stats: SimStats, end: float) -> float:
    paid = math.fsum(seconds * slots for seconds, slots in _lifetimes(stats, end))
    return (stats.busy_s + stats.lost_s) / paid if paid > 0 else 0.0


def format_result(result: SimulationResult) -> str:
    """The human form of a simulation's figures."""

    def duration(seconds: float) -> str:
        minutes, secs = divmod(round(seconds), 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours}h{minutes:02d}m{secs:02d}s"

    r = result
    market = "spot" if r.use_spot else "on-demand"
    lines = [
        f"Simulated {r.tasks} tasks ({r.duration_model}), seed {r.seed}",
        f"Pool:        {r.max_instances} x {r.instance_type} ({market}, {r.tasks_per_instance} "
        f"tasks each, ${r.price_per_hour_usd:.4f}/h) in {r.zone or r.region}, "
        f"limited by {r.limited_by}; peak {r.peak_instances} instances",
        f"Outcome:     {r.status}: {r.completed} completed, {r.failed} failed",
        f"Makespan:    {duration(r.makespan_s)} ({r.makespan_s:.0f} s); ideal for this pool "
        f"{duration(r.ideal_makespan_s)}, ratio {r.makespan_ratio:.3f}",
        f"Cost:        ${r.cost_usd:.4f}; lower bound ${r.lower_bound_usd:.4f}, "
        f"ratio {r.cost_ratio:.3f}",
        f"Instances:   {r.instance_hours:.2f} instance-hours, utilisation {r.utilisation:.1%}, "
        f"{r.on_demand_instances} on-demand",
        f"Preemptions: {r.preemptions} ({r.preemption_rate_per_hour:g}/h per instance), "
        f"{r.preempted_runs} task runs lost, {r.retries} re-runs",
    ]
    if r.failure_rate > 0 or r.failed > 0:
        lines.append(
            f"Failures:    {r.failed} tasks failed ({r.dead_lettered} given up by max_attempts "
            f"or max_preemptions); failure rate {r.failure_rate:g} per attempt"
        )
    if r.capacity_errors:
        lines.append(f"Capacity:    {r.capacity_errors} launches refused for lack of capacity")
    if r.slow_instances:
        lines.append(f"Slow hosts:  {r.slow_instances} (fraction:factor)")
    if r.speculative_runs:
        lines.append(f"Speculation: {r.speculative_runs} stragglers started again")
    if r.capacity_pools > 1 or r.pool_preemption_rate_per_hour > 0:
        lines.append(
            f"Spread:      {r.capacity_pools} capacity pools; reclaim waves "
            f"{r.pool_preemption_rate_per_hour:g}/h per pool"
        )
    return "\n".join(lines)


__all__ = [
    "DEFAULT_JOB_ID",
    "CapacityErrors",
    "SimulationResult",
    "SimulationRun",
    "duration_model_from_option",
    "format_result",
    "ideal_makespan_s",
    "outcomes_from_option",
    "parse_capacity_error",
    "parse_slow_instances",
    "simulate",
    "slowdown_model",
    "synthetic_tasks",
]

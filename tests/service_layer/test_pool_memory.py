"""The pool manager on the memory provider and virtual time: hours of a job in seconds."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from cloud_tasks.adapters.local.taskdb import TaskDatabase
from cloud_tasks.adapters.memory.catalog import bundled_catalog
from cloud_tasks.adapters.memory.clock import VirtualClock
from cloud_tasks.adapters.memory.compute import InMemoryCompute
from cloud_tasks.adapters.memory.queue import InMemoryEventQueue, InMemoryTaskQueue
from cloud_tasks.domain.constraints import InstanceConstraints
from cloud_tasks.domain.options import PoolLimits
from cloud_tasks.domain.selection import rank_offers
from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.service_layer.plan import ZoneChoice, launch_options
from cloud_tasks.service_layer.pool import JobOutcome, PoolManager, PoolSettings
from cloud_tasks.service_layer.simworkers import EventDrivenWorkers, run_on_virtual_time

START = 1_800_000_000.0
_DB_NUMBERS = itertools.count()


@attrs.define
class Job:
    clock: VirtualClock
    compute: InMemoryCompute
    task_queue: InMemoryTaskQueue
    event_queue: InMemoryEventQueue
    db: TaskDatabase
    manager: PoolManager
    workers: EventDrivenWorkers
    log: list[str]

    def run(self, hook: Callable[[float], None] | None = None) -> JobOutcome:
        def step() -> None:
            if hook is not None:
                hook(self.clock.now() - START)
            self.workers.step()

        return asyncio.run(
            run_on_virtual_time(
                self.clock, self.manager.run(), step=step, tick_s=5.0, max_virtual_s=48 * 3600
            )
        )


def make_job(
    n_tasks: int = 40,
    *,
    duration_s: float = 60.0,
    limits: PoolLimits | None = None,
    constraints: InstanceConstraints | None = None,
    worker_kw: dict[str, Any] | None = None,
    settings_kw: dict[str, Any] | None = None,
    compute_kw: dict[str, Any] | None = None,
) -> Job:
    clock = VirtualClock(START)
    catalog = bundled_catalog("aws")
    compute = InMemoryCompute(catalog, clock=clock, **{"boot_delay_s": 30.0, **(compute_kw or {})})
    task_queue = InMemoryTaskQueue("job", clock=clock)
    event_queue = InMemoryEventQueue("job-events", clock=clock)
    task_queue.create()
    event_queue.create()
    tasks = [Task(f"t{i:04d}", {"i": i}) for i in range(n_tasks)]
    task_queue.send([Envelope(t) for t in tasks])
    db = TaskDatabase(f"job-{next(_DB_NUMBERS)}.db")
    db.add_tasks(tasks, clock.now())
    db.set_meta(job_id="job", started_at=clock.now())
    offers = [o for _p, o in catalog.offers if o.region == "us-east-1"]
    ranked = rank_offers(
        offers,
        constraints
        or InstanceConstraints(min_cpu=2, max_cpu=2, use_spot=True, instance_types=("^m7",)),
    )
    options = launch_options(
        ranked, ZoneChoice(None, ()), lambda c, z: f"#!/bin/bash\n# {c.name} {z}\n"
    )
    settings = PoolSettings(
        **{
            "job_id": "job",
            "image": "ubuntu-24.04-x86_64",
            "limits": limits or PoolLimits(max_instances=4),
            "scaling_check_interval_s": 30.0,
            "instance_termination_delay_s": 60.0,
            "keepalive_interval_s": 30.0,
            "keepalive_startup_timeout_s": 300.0,
            "keepalive_timeout_s": 120.0,
            "event_poll_interval_s": 5.0,
            "offload": False,
            **(settings_kw or {}),
        }
    )
    log: list[str] = []
    manager = PoolManager(
        compute=compute,
        task_queue=task_queue,
        event_queue=event_queue,
        db=db,
        clock=clock,
        options=options,
        settings=settings,
        log=log.append,
    )
    slots = {o.candidate.name: o.candidate.tasks_per_instance for o in options}
    workers = EventDrivenWorkers(
        job_id="job",
        compute=compute,
        task_queue=task_queue,
        event_queue=event_queue,
        clock=clock,
        tasks_per_instance=lambda name: slots[name],
        duration=lambda _id, _data, _attempt: duration_s,
        **{"keepalive_interval_s": 30.0, **(worker_kw or {})},
    )
    return Job(clock, compute, task_queue, event_queue, db, manager, workers, log)


def test_job_completes_and_leaves_nothing_behind() -> None:
    job = make_job(40)
    outcome = job.run()
    assert outcome.status == "completed", outcome.message
    assert job.db.counts().completed == 40
    assert job.compute.list_instances("job") == []
    assert not job.task_queue.exists() and not job.event_queue.exists()
    assert job.manager.launched == 4
    # 40 tasks / (4 instances x 2 slots) x 60 s = 300 s of work, plus boot: spend is real.
    assert 0 < outcome.spend_usd < 1.0
    assert all(r.ended_at is not None for r in job.db.instances())
    assert job.clock.now() - START < 3600


def test_preempting_half_the_pool_loses_nothing() -> None:
    job = make_job(80, duration_s=120.0)
    preempted: list[str] = []

    def hook(elapsed: float) -> None:
        if elapsed >= 400 and not preempted:
            preempted.extend(job.compute.preempt_fraction(0.5, "job"))

    outcome = job.run(hook)
    assert outcome.status == "completed", outcome.message
    assert len(preempted) == 2
    assert job.db.counts().completed == 80 and job.db.counts().failed == 0
    assert job.manager.replaced >= 2
    assert job.manager.launched >= 6
    assert job.workers.stats.released > 0  # in-flight tasks went back to the queue
    ended = {r.instance_id: r.end_reason for r in job.db.instances()}
    assert all(ended[i] == "preempted" for i in preempted)
    assert job.compute.list_instances("job") == []


def test_capacity_error_moves_to_next_zone_then_next_type() -> None:
    job = make_job(16)
    best = job.manager.options[0]
    job.compute.inject_capacity_error(instance_type=f"^{best.candidate.name}$", zone=best.zone)
    outcome = job.run()
    assert outcome.status == "completed"
    launched = {(s.instance_type, s.zone) for s in job.compute.launched}
    assert (best.candidate.name, best.zone) not in launched
    assert {t for t, _z in launched} == {best.candidate.name}
    assert any("insufficient capacity" in line for line in job.log)

    job = make_job(16)
    best_type = job.manager.options[0].candidate.name
    job.compute.inject_capacity_error(instance_type=f"^{best_type}$")
    outcome = job.run()
    assert outcome.status == "completed"
    assert best_type not in {s.instance_type for s in job.compute.launched}
    assert job.compute.launched


def test_broken_startup_script_stops_the_job_with_a_clear_message() -> None:
    job = make_job(10, worker_kw={"broken_startup": True})
    outcome = job.run()
    assert outcome.status == "broken_startup"
    assert "the startup script is probably broken" in outcome.message
    assert "get-console-output" not in outcome.message or "aws" in outcome.message
    assert job.compute.list_instances("job") == []
    # The queue and the database are kept so the job can be resumed.
    assert job.task_queue.exists() and job.db.counts().pending == 10
    assert job.clock.now() - START <= 300 + 2 * 30 + 60


def test_workers_that_die_after_their_first_keepalive_stop_the_job() -> None:
    # Each worker starts, sends keep-alives, then dies before any task ends: without a check
    # the pool replaces them forever (an endless crash loop of instances).
    job = make_job(10, duration_s=1000.0, worker_kw={"silent_after_s": 40.0})
    outcome = job.run()
    assert outcome.status == "broken_startup", outcome.message
    assert "after a keep-alive" in outcome.message
    assert "the startup script is probably broken" in outcome.message
    assert job.compute.list_instances("job") == []
    assert job.task_queue.exists() and job.db.counts().completed == 0
    assert job.manager.died_before_work >= 1
    assert job.clock.now() - START < 3600


def test_silent_instances_are_replaced() -> None:
    job = make_job(24, duration_s=100.0, worker_kw={"silent_after_s": 150.0})
    outcome = job.run()
    assert outcome.status == "completed", outcome.message
    assert job.db.counts().completed == 24
    assert any("silent for more than 120s" in line for line in job.log)
    assert job.manager.replaced >= 1


def test_cost_cap_drains_and_stops() -> None:
    # Four instances at roughly $0.03/h each running for hours would cost far more than the cap.
    job = make_job(2000, duration_s=600.0, limits=PoolLimits(max_instances=4, max_total_cost=0.05))
    outcome = job.run()
    assert outcome.status == "cost_cap"
    assert "max_total_cost=$0.05 reached" in outcome.message
    assert outcome.spend_usd <= 0.05 + 1e-9
    assert job.compute.list_instances("job") == []
    assert job.db.counts().remaining > 0
    assert job.task_queue.exists()


def test_pool_shrinks_as_work_runs_out() -> None:
    # Short tasks plus one long one: the pool should stop idle instances long before the end.
    job = make_job(30, duration_s=30.0)
    job.workers.duration = lambda task_id, _d, _a: 3000.0 if task_id == "t0000" else 30.0
    outcome = job.run()
    assert outcome.status == "completed"
    idle = [r for r in job.db.instances() if r.end_reason == "idle"]
    assert len(idle) == 3
    assert any("idle" in line for line in job.log)


@pytest.mark.parametrize("interval", [0.0])
def test_keepalives_off_disables_health_checks(interval: float) -> None:
    job = make_job(
        8,
        worker_kw={"keepalive_interval_s": interval, "broken_startup": False},
        settings_kw={"keepalive_interval_s": interval},
    )
    outcome = job.run()
    assert outcome.status == "completed"
    assert job.manager.replaced == 0


def test_a_new_manager_resumes_from_database_and_tagged_instances() -> None:
    job = make_job(60, duration_s=120.0)

    async def first_half() -> None:
        task = asyncio.ensure_future(job.manager.run())
        while job.clock.now() - START < 400:
            for _ in range(100):
                await asyncio.sleep(0)
                if job.clock.pending_sleepers:
                    break
            job.workers.step()
            job.clock.advance(5.0)
        task.cancel()  # the manager process dies; its instances keep running

    asyncio.run(first_half())
    running = job.compute.list_instances("job")
    assert len(running) == 4
    done_before = job.db.counts().completed
    assert 0 < done_before < 60
    spend_before = job.db.spend_usd(job.clock.now())

    resumed = PoolManager(
        compute=job.compute,
        task_queue=job.task_queue,
        event_queue=job.event_queue,
        db=TaskDatabase(job.db.path),
        clock=job.clock,
        options=job.manager.options,
        settings=job.manager.settings,
        log=job.log.append,
    )
    outcome = asyncio.run(
        run_on_virtual_time(job.clock, resumed.run(), step=job.workers.step, tick_s=5.0)
    )
    assert outcome.status == "completed"
    assert resumed.db.counts().completed == 60
    # The running instances were adopted, not replaced: nothing new had to start.
    assert resumed.launched == 0
    assert outcome.spend_usd > spend_before
    assert job.compute.list_instances("job") == []


def test_an_instance_that_never_starts_working_is_replaced() -> None:
    job = make_job(24, duration_s=200.0, worker_kw={"broken_startup": lambda i: i == "mem-000001"})
    outcome = job.run()
    assert outcome.status == "completed", outcome.message
    assert any("mem-000001 sent no keep-alive within 300s" in line for line in job.log)
    ended = {r.instance_id: r.end_reason for r in job.db.instances()}
    assert ended["mem-000001"] == "unhealthy"
    assert job.db.counts().completed == 24


class _LossyEventQueue(InMemoryEventQueue):
    """An event queue that loses outcomes of one task (a worker died after its ack)."""

    lose: int | None = None  # how many outcomes of t0003 to lose (None: all)

    def send(self, events: Any) -> None:
        kept = []
        for event in events:
            if event.get("task_id") == "t0003" and (self.lose is None or self.lose > 0):
                if self.lose is not None:
                    self.lose -= 1
                continue
            kept.append(event)
        super().send(kept)


def _lossy_job(lose: int | None) -> Job:
    job = make_job(10, duration_s=60.0)
    lossy = _LossyEventQueue("job-events", clock=job.clock, service=job.event_queue._service)
    lossy.lose = lose
    job.workers.event_queue = lossy
    return job


def test_a_lost_outcome_runs_the_task_again() -> None:
    job = _lossy_job(lose=1)
    outcome = job.run()
    assert outcome.status == "completed"
    assert job.db.counts().completed == 10
    assert any("sent them again" in line for line in job.log)
    assert job.workers.stats.started == 11


def test_an_outcome_lost_every_time_is_failed_not_waited_on_forever() -> None:
    job = _lossy_job(lose=None)
    outcome = job.run()
    assert outcome.status == "completed"
    row = job.db.task("t0003")
    assert row is not None and row.state == "failed"
    assert row.error is not None and "no outcome event after 4 runs" in row.error
    assert job.db.counts().completed == 9
    assert job.workers.stats.started == 10 + 3


def test_the_simulated_worker_applies_the_retry_policy() -> None:
    from cloud_tasks.domain.options import RetryPolicy
    from cloud_tasks.domain.retry import OutcomeKind

    def outcome(task_id: str, _data: Any, attempt: int) -> OutcomeKind:
        if task_id == "t0001":
            return OutcomeKind.EXCEPTION
        if task_id == "t0002" and attempt == 1:
            return OutcomeKind.EXIT
        return OutcomeKind.SUCCESS

    policy = RetryPolicy(retry_on_exception=True, retry_on_exit=False, max_attempts=3)
    job = make_job(10, worker_kw={"outcome": outcome, "retry": policy})
    outcome_ = job.run()
    assert outcome_.status == "completed", outcome_.message
    assert job.db.counts().completed == 8 and job.db.counts().failed == 2
    dead = job.db.task("t0001")
    assert dead is not None and dead.state == "failed" and dead.error is not None
    assert "max_attempts=3" in dead.error
    exited = job.db.task("t0002")  # retry_on_exit is off: its first exit is final
    assert exited is not None and exited.state == "failed" and exited.attempts == 1
    assert exited.error == "process exited with code 1"
    # t0001 ran three times, every other task once.
    assert job.workers.stats.started == 12
    assert job.workers.stats.dead_lettered == 1 and job.workers.stats.retried == 2

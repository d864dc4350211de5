"""Tail handling: tasks preempted again and again move to on-demand; idle instances stop."""

from __future__ import annotations

from cloud_tasks.adapters.local.taskdb import TaskDatabase
from cloud_tasks.domain.durations import ConstantDuration
from cloud_tasks.service_layer.simulation import simulate
from tests.simulate.helpers import config, run

LONG = ConstantDuration(4 * 3600.0)


def test_a_task_preempted_once_runs_next_on_demand() -> None:
    for seed in range(2):
        with_fallback = run(
            config("  on_demand_after_preemptions: 1\n"), LONG, 8, rate=0.5, seed=seed
        )
        without = run(config("  on_demand_after_preemptions: 0\n"), LONG, 8, rate=0.5, seed=seed)
        assert with_fallback.result.status == without.result.status == "completed"
        # With the fallback no task loses more than one run, and the job ends within two
        # task lengths plus boots and checks; without it the same market costs far more time.
        assert max(with_fallback.stats.preempted_tasks.values(), default=0) <= 1
        assert with_fallback.result.makespan_s <= 2 * LONG.seconds + 3600
        assert with_fallback.result.on_demand_instances >= 1
        assert without.result.on_demand_instances == 0
        assert max(without.stats.preempted_tasks.values(), default=0) >= 2
        assert without.result.makespan_s > with_fallback.result.makespan_s
    on_demand = [s for s in with_fallback.compute.launched if not s.use_spot]
    assert on_demand and all(s.price_per_hour_usd for s in on_demand)


def test_idle_instances_stop_as_the_queue_drains() -> None:
    # 10 instances, 41 short tasks: the last wave needs one instance; the rest stop early.
    result_run = run(config(max_instances=10), ConstantDuration(600.0), 41, seed=1)
    lifetimes = sorted(
        ended - created for *_, created, ended in result_run.stats.lifetimes.values()
    )
    # Nine instances stop within the termination delay and a check after their last task.
    assert lifetimes[-1] >= 3 * 600.0
    assert all(lifetime <= 2 * 600.0 + 30 + 60 + 60 + 1 for lifetime in lifetimes[:-1])


def test_the_sqlite_task_database_gives_the_same_simulation() -> None:
    # The same manager code on the task database of real runs: task_released events from
    # preempted instances reach the on-demand fallback there too, with identical figures.
    job = config("  on_demand_after_preemptions: 1\n")
    memory = run(job, LONG, 8, rate=0.5, seed=0)
    db = TaskDatabase(":memory:")
    sqlite = simulate(
        job, duration=LONG, num_tasks=8, preemption_rate_per_hour=0.5, seed=0, store=db
    )
    assert sqlite.result == memory.result
    assert sqlite.result.on_demand_instances >= 1
    released = [e for e in db.events() if e["event_type"] == "task_released"]
    assert len(released) == memory.result.preempted_runs

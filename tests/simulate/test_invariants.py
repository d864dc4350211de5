"""Invariants of simulated runs over random seeds and shapes (Hypothesis, small sizes)."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud_tasks.domain.durations import ConstantDuration, LogNormalDuration, UniformDuration
from tests.simulate.helpers import config, run

pytestmark = pytest.mark.slow

durations = st.one_of(
    st.floats(1, 900).map(ConstantDuration),
    st.tuples(st.floats(0, 300), st.floats(0, 600)).map(
        lambda pair: UniformDuration(min(pair), max(pair))
    ),
    st.tuples(st.floats(1, 6), st.floats(0, 1.5)).map(lambda p: LogNormalDuration(*p)),
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    tasks=st.integers(1, 120),
    max_instances=st.integers(1, 6),
    rate=st.sampled_from([0.0, 0.5, 2.0]),
    duration=durations,
    price_cap=st.sampled_from([None, 0.05, 10.0]),
    fallback=st.sampled_from([0, 1, 3]),
)
def test_simulated_runs_keep_every_invariant(
    seed: int,
    tasks: int,
    max_instances: int,
    rate: float,
    duration: ConstantDuration | UniformDuration | LogNormalDuration,
    price_cap: float | None,
    fallback: int,
) -> None:
    extra = f"  on_demand_after_preemptions: {fallback}\n"
    if price_cap is not None:
        extra += f"  max_total_price_per_hour: {price_cap}\n"
    job = config(extra, max_instances=max_instances)
    result_run = run(job, duration, tasks, rate=rate, seed=seed)
    result, stats = result_run.result, result_run.stats

    # Every task is terminal (here: completed; nothing fails in the model).
    assert result.status == "completed", result.message
    assert result.completed == tasks and result.failed == 0
    assert result_run.store.counts().remaining == 0
    # No instance is left running, and the manager tracks none.
    assert result_run.compute.list_instances("sim") == []
    assert result_run.manager.tracked == {}
    assert all(lifetime[4] is not None for lifetime in stats.lifetimes.values())
    # Spend = Σ price x running time, from the provider's view of every instance.
    expected = math.fsum(
        price * (ended - created) / 3600.0
        for _type, price, _slots, created, ended in stats.lifetimes.values()
    )
    assert math.isclose(result.cost_usd, expected, rel_tol=1e-9, abs_tol=1e-12)
    # The pool never exceeds its limits.
    assert stats.peak_instances <= max_instances
    if price_cap is not None:
        assert stats.peak_price_per_hour_usd <= price_cap + 1e-9
    # Work is conserved: every task ran to completion once, lost runs were re-run.
    assert stats.completed == tasks
    assert stats.started == tasks + stats.released
    assert result.retries == stats.started - tasks
    assert 0 <= result.utilisation <= 1 + 1e-9
    assert result.cost_usd >= result.lower_bound_usd * (1 - 1e-9)
    # No schedule on this pool beats boot + max(work / slots, longest task).
    assert result.makespan_s >= result.ideal_makespan_s - 1e-6
    if rate == 0:
        assert result.preemptions == 0 and result.retries == 0


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), tasks=st.integers(1, 200))
def test_the_same_seed_gives_the_same_simulation(seed: int, tasks: int) -> None:
    job = config(max_instances=5)
    model = LogNormalDuration(4.0, 0.7)
    first = run(job, model, tasks, rate=1.0, seed=seed)
    second = run(job, model, tasks, rate=1.0, seed=seed)
    assert first.result.to_dict() == second.result.to_dict()
    assert first.log == second.log

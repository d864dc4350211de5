"""Speculative re-runs: the domain rule (which stragglers to start again) and its option."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_tasks.domain.speculation import (
    RunningMedian,
    SpeculationPolicy,
    choose_speculative_runs,
    parse_speculative_after,
)
from cloud_tasks.exceptions import ConfigError


def test_parse_seconds_and_multiples() -> None:
    assert parse_speculative_after("600") == SpeculationPolicy(after_s=600.0)
    assert parse_speculative_after("3x") == SpeculationPolicy(median_factor=3.0)
    assert parse_speculative_after(" 2.5X ", 0.1) == SpeculationPolicy(
        median_factor=2.5, max_extra_cost=0.1
    )
    assert SpeculationPolicy(median_factor=3.0).threshold_s(50.0) == 150.0
    assert SpeculationPolicy(median_factor=3.0).threshold_s(None) is None
    assert SpeculationPolicy(after_s=600.0).threshold_s(None) == 600.0


@pytest.mark.parametrize("text", ["0", "-5", "1x", "0.5x", "abc", "3y", "nan", "inf", ""])
def test_bad_values_are_one_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match=r"speculative_after: .* \(600\) or a multiple"):
        parse_speculative_after(text)


def _choose(**overrides: object) -> list[str]:
    arguments: dict[str, object] = {
        "policy": SpeculationPolicy(after_s=100.0),
        "now_s": 1000.0,
        "started_at_s": {"a": 850.0, "b": 700.0, "c": 950.0, "d": 880.0},
        "speculated": {},
        "queue_depth": 0,
        "idle_slots": 10,
        "median_s": 60.0,
        "slot_price_per_hour_usd": 0.1,
        "spent_usd": 100.0,
        "extra_spent_usd": 0.0,
    }
    arguments.update(overrides)
    return choose_speculative_runs(**arguments)  # type: ignore[arg-type]


def test_stragglers_longest_running_first() -> None:
    assert _choose() == ["b", "a", "d"]  # c has run 50 s only


def test_nothing_while_tasks_wait_or_no_slot_is_idle() -> None:
    assert _choose(queue_depth=1) == []
    assert _choose(idle_slots=0) == []
    assert _choose(idle_slots=2) == ["b", "a"]


def test_relative_threshold_waits_for_a_median() -> None:
    policy = SpeculationPolicy(median_factor=3.0)
    assert _choose(policy=policy, median_s=None) == []
    assert _choose(policy=policy, median_s=40.0) == ["b", "a"]  # running > 120 s


def test_copies_per_task_are_capped() -> None:
    assert _choose(speculated={"b": 2, "a": 1}) == ["a", "d"]
    one = SpeculationPolicy(after_s=100.0, max_copies=1)
    assert _choose(policy=one, speculated={"b": 1}) == ["a", "d"]


def test_extra_cost_cap() -> None:
    # Each copy is expected to cost 3600 s at 1 USD/h = 1 USD; 5 % of 50 USD allows 2.5.
    capped = _choose(median_s=3600.0, slot_price_per_hour_usd=1.0, spent_usd=50.0)
    assert capped == ["b", "a"]
    assert _choose(median_s=3600.0, slot_price_per_hour_usd=1.0, spent_usd=50.0,
                   extra_spent_usd=2.0) == []  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    starts=st.dictionaries(st.text("abcdef", min_size=1, max_size=3), st.floats(0, 1000)),
    idle=st.integers(0, 5),
    depth=st.integers(0, 3),
    after=st.floats(1, 500),
)
def test_choice_properties(starts: dict[str, float], idle: int, depth: int, after: float) -> None:
    chosen = _choose(
        policy=SpeculationPolicy(after_s=after),
        started_at_s=starts,
        idle_slots=idle,
        queue_depth=depth,
    )
    assert len(chosen) <= idle and len(set(chosen)) == len(chosen)
    assert depth == 0 or chosen == []
    assert all(1000.0 - starts[t] > after for t in chosen)
    stragglers = [t for t, s in starts.items() if 1000.0 - s > after]
    if depth == 0:
        assert len(chosen) == min(idle, len(stragglers))
        # No straggler left out has run longer than one chosen.
        left = [starts[t] for t in stragglers if t not in chosen]
        assert not chosen or not left or min(left) >= max(starts[t] for t in chosen)


def test_running_median_is_exact_while_small_and_close_when_thinned() -> None:
    median = RunningMedian(capacity=64)
    assert median.value is None
    values = [float(v) for v in (5, 1, 9, 3)]
    for v in values:
        median.add(v)
    assert median.value == statistics.median(values)
    rng = random.Random(3)
    many = [rng.lognormvariate(4, 0.5) for _ in range(20_000)]
    big = RunningMedian(capacity=256)
    for v in many:
        big.add(v)
    assert big.value == pytest.approx(statistics.median(many), rel=0.1)


def test_tasks_on_slow_hosts_come_first_whatever_their_running_time() -> None:
    from cloud_tasks.domain.speculation import NO_TIMES, add_log_time, slow_hosts

    def times(*seconds: float) -> tuple[int, float, float]:
        out = NO_TIMES
        for value in seconds:
            out = add_log_time(out, value)
        return out

    policy = SpeculationPolicy(after_s=100.0)
    job = times(*([50.0, 60.0, 70.0] * 30), *([240.0] * 10), 1000.0, 1000.0)
    seconds = {"fast": times(50.0, 60.0, 70.0), "slow": times(*[240.0] * 10)}
    seconds["new"] = times(1000.0, 1000.0)
    assert slow_hosts(policy, seconds, job) == {"slow"}  # "new" has too few tasks yet
    assert slow_hosts(policy, seconds, NO_TIMES) == set()
    # c has run 50 s only, but on a slow host: first in line.
    assert _choose(on_slow_hosts={"c"}) == ["c", "b", "a", "d"]
    assert _choose(on_slow_hosts={"c"}, idle_slots=1) == ["c"]
    assert _choose(on_slow_hosts={"c"}, queue_depth=2) == []

"""Duration models: parsing, measured-duration files, and sampling with an injected RNG."""

from __future__ import annotations

import json
import math
import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud_tasks.domain.durations import (
    ConstantDuration,
    LogNormalDuration,
    MeasuredDuration,
    UniformDuration,
    durations_from_text,
    parse_duration_model,
)
from cloud_tasks.exceptions import ConfigError


def test_models_parse() -> None:
    assert parse_duration_model("90") == ConstantDuration(90.0)
    assert parse_duration_model(" uniform: 10, 20 ") == UniformDuration(10.0, 20.0)
    assert parse_duration_model("lognormal:5,0.8") == LogNormalDuration(5.0, 0.8)
    assert parse_duration_model("constant:3") == ConstantDuration(3.0)
    assert parse_duration_model("durations.txt") is None
    assert parse_duration_model("C:/data/durations.txt") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-5", "non-negative"),
        ("uniform:20,10", "0 <= LOW <= HIGH"),
        ("uniform:1", "expected 2 numbers"),
        ("lognormal:a,1", "'a' is not a number"),
        ("lognormal:1,-1", "SIGMA must be >= 0"),
        ("gamma:1,2", "unknown duration model 'gamma'"),
        ("inf", "non-negative number"),
    ],
)
def test_malformed_models_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_duration_model(text)


@given(st.floats(0, 1e6), st.floats(0, 1e6), st.integers(0, 2**32))
def test_uniform_samples_stay_within_bounds(a: float, b: float, seed: int) -> None:
    low, high = min(a, b), max(a, b)
    model = UniformDuration(low, high)
    rng = random.Random(seed)
    assert all(low <= model.sample(rng) <= high for _ in range(20))


def test_lognormal_sampling_matches_its_parameters() -> None:
    model = LogNormalDuration(4.0, 0.5)
    rng = random.Random(7)
    values = [model.sample(rng) for _ in range(20000)]
    assert statistics.median(values) == pytest.approx(math.exp(4.0), rel=0.03)
    assert statistics.fmean(values) == pytest.approx(model.mean_s, rel=0.03)


def test_measured_durations_from_every_file_form() -> None:
    lines = durations_from_text("12.5\n\n# comment\n30\n", "d.txt")
    assert lines == MeasuredDuration((12.5, 30.0), "d.txt")
    assert durations_from_text("[1, 2.5, 3]", "d.json") == MeasuredDuration(
        (1.0, 2.5, 3.0), "d.json"
    )
    events = [
        {"event_type": "task_completed", "success": True, "elapsed_time": 4.0},
        {"event_type": "task_completed", "success": False, "elapsed_time": 99.0},
        {"event_type": "task_exception", "elapsed_time": 98.0},
        {"event_type": "task_completed", "success": True, "elapsed_time": 6.5},
    ]
    jsonl = "\n".join(json.dumps(event) for event in events) + "\n"
    assert durations_from_text(jsonl, "e.jsonl") == MeasuredDuration((4.0, 6.5), "e.jsonl")
    status = {
        "job_id": "j",
        "task_elapsed_s": {
            "count": 10,
            "mean_s": 30.0,
            "median_s": 20.0,
            "p95_s": 60.0,
            "min_s": 1.0,
            "max_s": 70.0,
        },
    }
    fitted = durations_from_text(json.dumps(status, indent=2), "status.json")
    assert isinstance(fitted, LogNormalDuration)
    assert math.exp(fitted.mu) == pytest.approx(20.0)
    assert math.exp(fitted.mu + 1.6448536 * fitted.sigma) == pytest.approx(60.0, rel=1e-6)
    rng = random.Random(3)
    assert durations_from_text("7\n", "one").sample(rng) == 7.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("12\nabc\n", "d.txt, line 2: 'abc' is not a number"),
        ("12\n-3\n", "line 2: '-3' is not a duration"),
        ('[1, "x"]', "item 1 is 'x'"),
        ("", "no durations found"),
        ('{"job_id": "j", "task_elapsed_s": {"count": 0}}', "no elapsed times"),
        ('{"event_type": "keep_alive"}\n', "no durations found"),
    ],
)
def test_bad_duration_files_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        durations_from_text(text, "d.txt")

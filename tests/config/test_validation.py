"""Pure validation rules (domain/validation.py): named examples and properties."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from cloud_tasks.domain import validation

job_ids = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(string.ascii_lowercase),
    st.text(string.ascii_lowercase + string.digits + "-", max_size=23),
)


@given(job_ids)
def test_every_id_of_the_documented_form_is_accepted(job_id: str) -> None:
    assert validation.job_id_problem(job_id) is None


@given(st.text(max_size=40))
def test_an_accepted_id_has_the_documented_form(job_id: str) -> None:
    if validation.job_id_problem(job_id) is None:
        assert 1 <= len(job_id) <= 24
        assert job_id[0] in string.ascii_lowercase
        assert set(job_id) <= set(string.ascii_lowercase + string.digits + "-")


def test_region_of_zone_examples() -> None:
    assert validation.region_of_zone("us-central1-a") == "us-central1"
    assert validation.region_of_zone("europe-west4-c") == "europe-west4"
    assert validation.region_of_zone("us-east-1a") == "us-east-1"
    assert validation.region_of_zone("us-gov-west-1b") == "us-gov-west-1"
    assert validation.region_of_zone("us-west-2-lax-1a") == "us-west-2"
    assert validation.region_of_zone("local") is None


@given(
    st.dictionaries(
        st.sampled_from(["min_cpu", "max_cpu", "min_instances", "max_instances", "use_spot"]),
        st.none() | st.integers(-5, 5),
    )
)
def test_min_max_problems_are_exactly_the_inverted_pairs(values: dict[str, int | None]) -> None:
    reported = {(low, high) for low, high, _ in validation.min_max_problems(values)}
    expected = {
        (f"min_{name}", f"max_{name}")
        for name in ("cpu", "instances")
        if values.get(f"min_{name}") is not None
        and values.get(f"max_{name}") is not None
        and values[f"min_{name}"] > values[f"max_{name}"]  # type: ignore[operator]
    }
    assert reported == expected


def test_negative_and_positive_rules() -> None:
    assert validation.negative_problem(-1) == "must not be negative, got -1"
    assert validation.negative_problem(0) is None
    assert validation.negative_problem(True) is None
    assert validation.positive_problem(0.0) == "must be greater than 0"
    assert validation.positive_problem(0.5) is None

"""GPU constraints in the price-per-task choice (SPEC §5, GPUs)."""

from __future__ import annotations

import math

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_tasks.domain.constraints import InstanceConstraints
from cloud_tasks.domain.offers import InstanceOffer
from cloud_tasks.domain.selection import (
    rank_offers,
    select_instance_type,
    tasks_per_instance,
)
from cloud_tasks.exceptions import ConfigError, SelectionError


def offer(
    name: str,
    vcpus: int,
    price: float,
    *,
    gpu_type: str = "",
    gpus: int = 0,
    gpu_memory: float = 0.0,
    memory: float | None = None,
) -> InstanceOffer:
    return InstanceOffer(
        name=name,
        vcpus=vcpus,
        memory_gib=memory if memory is not None else 4.0 * vcpus,
        architecture="x86_64",
        region="r",
        price_per_hour_usd=price,
        spot_price_per_hour_usd=price / 3,
        gpu_type=gpu_type,
        gpus=gpus,
        gpu_memory_gib=gpu_memory,
    )


CPU = offer("c.8", 8, 0.4)
T4_1 = offer("g4dn.xlarge", 4, 0.526, gpu_type="nvidia-t4", gpus=1, gpu_memory=16)
T4_4 = offer("g4dn.12xlarge", 48, 3.912, gpu_type="nvidia-t4", gpus=4, gpu_memory=16)
A10G_1 = offer("g5.xlarge", 4, 1.006, gpu_type="nvidia-a10g", gpus=1, gpu_memory=24)
A100_8 = offer("p4d.24xlarge", 96, 32.77, gpu_type="nvidia-a100", gpus=8, gpu_memory=40)
GCP_T4 = offer("n1-standard-4", 4, 0.54, gpu_type="nvidia-tesla-t4", gpus=1, gpu_memory=16)
OFFERS = [CPU, T4_1, T4_4, A10G_1, A100_8, GCP_T4]


def names(constraints: InstanceConstraints) -> list[str]:
    return [c.name for c in rank_offers(OFFERS, constraints)]


def test_without_gpu_constraints_every_offer_qualifies_and_gpus_do_not_limit_tasks() -> None:
    assert set(names(InstanceConstraints())) == {o.name for o in OFFERS}
    assert tasks_per_instance(T4_4, InstanceConstraints()) == 48


def test_gpu_type_is_a_case_insensitive_regex_over_both_providers_names() -> None:
    got = names(InstanceConstraints(gpu_type=("T4",)))
    assert set(got) == {"g4dn.xlarge", "g4dn.12xlarge", "n1-standard-4"}
    assert set(names(InstanceConstraints(gpu_type=("^nvidia-a10", "a100")))) == {
        "g5.xlarge",
        "p4d.24xlarge",
    }


def test_gpu_count_and_memory_bounds() -> None:
    assert set(names(InstanceConstraints(min_gpus=4))) == {"g4dn.12xlarge", "p4d.24xlarge"}
    assert set(names(InstanceConstraints(min_gpus=1, max_gpus=1))) == {
        "g4dn.xlarge",
        "g5.xlarge",
        "n1-standard-4",
    }
    assert set(names(InstanceConstraints(min_gpu_memory=24))) == {"g5.xlarge", "p4d.24xlarge"}


def test_gpus_per_task_limits_slots_and_the_slot_price_includes_the_gpus() -> None:
    constraints = InstanceConstraints(gpus_per_task=1)
    ranked = rank_offers(OFFERS, constraints)
    assert "c.8" not in [c.name for c in ranked]  # no GPU: no task slot
    slots = {c.name: c.tasks_per_instance for c in ranked}
    assert slots == {
        "g4dn.xlarge": 1,
        "g4dn.12xlarge": 4,
        "g5.xlarge": 1,
        "p4d.24xlarge": 8,
        "n1-standard-4": 1,
    }
    best = ranked[0]
    assert best.name == "g4dn.xlarge"  # 0.526 per GPU slot beats 3.912 / 4 = 0.978
    assert best.price_per_task_slot_hour_usd == pytest.approx(0.526)
    assert tasks_per_instance(T4_4, constraints) == 4
    assert tasks_per_instance(CPU, constraints) == 0
    # Half a GPU per task: two tasks share each GPU.
    assert tasks_per_instance(T4_4, attrs.evolve(constraints, gpus_per_task=0.5)) == 8


def test_no_gpu_offer_left_names_the_gpu_constraint() -> None:
    with pytest.raises(SelectionError, match=r"gpu_type=\['h100'\] eliminated the last"):
        select_instance_type(OFFERS, InstanceConstraints(gpu_type=("h100",)))
    with pytest.raises(SelectionError, match=r"gpus_per_task=2 \(fewer GPUs than one task"):
        select_instance_type([T4_1, A10G_1], InstanceConstraints(gpus_per_task=2))


@pytest.mark.parametrize(
    ("constraints", "message"),
    [
        (InstanceConstraints(gpu_type=("[",)), r"gpu_type\[0\]: '\[' is not a valid regular"),
        (InstanceConstraints(gpus_per_task=0), "gpus_per_task: must be greater than 0"),
    ],
)
def test_malformed_gpu_constraints_are_config_errors(
    constraints: InstanceConstraints, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        select_instance_type(OFFERS, constraints)


gpu_offers = st.builds(
    offer,
    name=st.sampled_from(["a", "b", "c", "d"]),
    vcpus=st.integers(1, 96),
    price=st.integers(1, 5000).map(lambda m: m / 1000),
    gpu_type=st.sampled_from(["", "nvidia-t4", "nvidia-l4", "nvidia-a100"]),
    gpus=st.integers(0, 8),
    gpu_memory=st.sampled_from([0.0, 16.0, 24.0, 40.0, 80.0]),
)


@settings(max_examples=200, deadline=None)
@given(
    offers=st.lists(gpu_offers, max_size=12),
    per_task=st.one_of(st.none(), st.sampled_from([0.5, 1.0, 2.0])),
    min_gpus=st.one_of(st.none(), st.integers(0, 4)),
    min_memory=st.one_of(st.none(), st.sampled_from([16.0, 40.0])),
)
def test_selection_is_the_cheapest_slot_among_offers_meeting_the_gpu_constraints(
    offers: list[InstanceOffer],
    per_task: float | None,
    min_gpus: int | None,
    min_memory: float | None,
) -> None:
    constraints = InstanceConstraints(
        gpus_per_task=per_task, min_gpus=min_gpus, min_gpu_memory=min_memory
    )

    def slots(o: InstanceOffer) -> int:
        tasks = o.vcpus
        if per_task is not None:
            tasks = min(tasks, math.floor(o.gpus / per_task + 1e-9))
        return tasks

    def ok(o: InstanceOffer) -> bool:
        return (
            (min_gpus is None or o.gpus >= min_gpus)
            and (min_memory is None or (o.gpus > 0 and o.gpu_memory_gib >= min_memory))
            and slots(o) > 0
        )

    eligible = [o for o in offers if ok(o)]
    if not eligible:
        with pytest.raises(SelectionError):
            select_instance_type(offers, constraints)
        return
    chosen = select_instance_type(offers, constraints)
    assert ok(chosen.offer)
    assert chosen.tasks_per_instance == slots(chosen.offer)
    cheapest = min(o.price_per_hour_usd / slots(o) for o in eligible)  # type: ignore[operator]
    assert chosen.price_per_task_slot_hour_usd == pytest.approx(cheapest, rel=1e-9)

"""Instance selection (SPEC §5): properties against an independent reading of the spec."""

from __future__ import annotations

import math
import random
import re

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_tasks.domain.constraints import InstanceConstraints
from cloud_tasks.domain.offers import BootDiskOption, InstanceOffer
from cloud_tasks.domain.selection import (
    FILTERS,
    Candidate,
    boot_disk_gb,
    choose_boot_disk,
    filter_offers,
    rank_offers,
    select_instance_type,
    tasks_per_instance,
)
from cloud_tasks.exceptions import ConfigError, SelectionError
from tests.domain.strategies import catalogs, constraints

TOL = 1e-9
PROPERTY = settings(max_examples=200, deadline=None)
ARCH = {"amd64": "x86_64", "x86-64": "x86_64", "aarch64": "arm64"}


class Reference:
    """SPEC §5 read independently: ordered named checks, each a plain reading of one constraint."""

    def __init__(self, offer: InstanceOffer, c: InstanceConstraints) -> None:
        self.offer = offer
        self.c = c
        self.failed: str | None = None
        self.tasks = 0
        self.disk_gb = 0
        self.price = 0.0
        self._run()

    @property
    def ok(self) -> bool:
        return self.failed is None

    @property
    def slot_price(self) -> float:
        return self.price / self.tasks

    def _fail(self, name: str) -> None:
        self.failed = name

    def _run(self) -> None:
        o, c = self.offer, self.c
        checks: list[tuple[str, bool]] = []

        def arch(value: str) -> str:
            return ARCH.get(value.lower(), value.lower())

        checks.append(
            ("architecture", c.architecture is None or arch(o.architecture) == arch(c.architecture))
        )
        checks.append(
            (
                "instance_types",
                not c.instance_types or any(re.search(p, o.name) for p in c.instance_types),
            )
        )
        checks.append(
            ("cpu_family", c.cpu_family is None or c.cpu_family.lower() in o.cpu_family.lower())
        )
        checks.append(("min_cpu_rank", c.min_cpu_rank is None or o.cpu_rank >= c.min_cpu_rank))
        checks.append(("max_cpu_rank", c.max_cpu_rank is None or o.cpu_rank <= c.max_cpu_rank))
        checks.append(("min_cpu", c.min_cpu is None or o.vcpus >= c.min_cpu))
        checks.append(("max_cpu", c.max_cpu is None or o.vcpus <= c.max_cpu))
        checks.append(
            (
                "min_total_memory",
                c.min_total_memory is None or o.memory_gib >= c.min_total_memory - TOL,
            )
        )
        checks.append(
            (
                "max_total_memory",
                c.max_total_memory is None or o.memory_gib <= c.max_total_memory + TOL,
            )
        )
        per_cpu = o.memory_gib / o.vcpus
        checks.append(
            (
                "min_memory_per_cpu",
                c.min_memory_per_cpu is None or per_cpu >= c.min_memory_per_cpu - TOL,
            )
        )
        checks.append(
            (
                "max_memory_per_cpu",
                c.max_memory_per_cpu is None or per_cpu <= c.max_memory_per_cpu + TOL,
            )
        )
        for name, passed in checks:
            if not passed:
                return self._fail(name)

        tasks = math.floor(o.vcpus / c.cpus_per_task + TOL)
        if tasks < 1:
            return self._fail("cpus_per_task")
        if c.max_tasks_per_instance is not None:
            tasks = min(tasks, c.max_tasks_per_instance)
            if tasks < 1:
                return self._fail("max_tasks_per_instance")
        if c.min_memory_per_task:
            tasks = min(tasks, math.floor(o.memory_gib / c.min_memory_per_task + TOL))
            if tasks < 1:
                return self._fail("min_memory_per_task")
        if c.min_tasks_per_instance is not None and tasks < c.min_tasks_per_instance:
            return self._fail("min_tasks_per_instance")
        if c.max_memory_per_task is not None and o.memory_gib / tasks > c.max_memory_per_task + TOL:
            return self._fail("max_memory_per_task")
        ssd, base = o.local_ssd_gib, c.local_ssd_base_size
        ssd_checks = [
            ("min_local_ssd", c.min_local_ssd is None or ssd >= c.min_local_ssd - TOL),
            ("max_local_ssd", c.max_local_ssd is None or ssd <= c.max_local_ssd + TOL),
            (
                "min_local_ssd_per_cpu",
                c.min_local_ssd_per_cpu is None
                or ssd >= base + c.min_local_ssd_per_cpu * o.vcpus - TOL,
            ),
            (
                "max_local_ssd_per_cpu",
                c.max_local_ssd_per_cpu is None
                or ssd <= base + c.max_local_ssd_per_cpu * o.vcpus + TOL,
            ),
            (
                "min_local_ssd_per_task",
                c.min_local_ssd_per_task is None
                or ssd >= base + c.min_local_ssd_per_task * tasks - TOL,
            ),
            (
                "max_local_ssd_per_task",
                c.max_local_ssd_per_task is None
                or ssd <= base + c.max_local_ssd_per_task * tasks + TOL,
            ),
        ]
        for name, passed in ssd_checks:
            if not passed:
                return self._fail(name)
        sizes = [c.total_boot_disk_size]
        if c.boot_disk_per_cpu is not None:
            sizes.append(c.boot_disk_base_size + c.boot_disk_per_cpu * o.vcpus)
        if c.boot_disk_per_task is not None:
            sizes.append(c.boot_disk_base_size + c.boot_disk_per_task * tasks)
        disk_gb = math.ceil(max(sizes) - TOL)
        allowed = [
            d for d in o.boot_disks if not c.boot_disk_types or d.disk_type in c.boot_disk_types
        ]
        if c.boot_disk_types and not allowed:
            return self._fail("boot_disk_types")
        disk_price = min((d.price_per_gib_hour_usd * disk_gb for d in allowed), default=0.0)
        vm = o.spot_price_per_hour_usd if c.use_spot else o.price_per_hour_usd
        if vm is None:
            return self._fail("use_spot" if c.use_spot else "price")
        self.tasks, self.disk_gb, self.price = tasks, disk_gb, vm + disk_price
        return None


def spec_key(offer: InstanceOffer, slot_price: float) -> tuple[float, int, str, str, str]:
    return (round(slot_price, 10), -offer.vcpus, offer.name, offer.zone or "", offer.region)


# --- properties ------------------------------------------------------------------------------


@PROPERTY
@given(catalogs(min_size=1), constraints, st.randoms(use_true_random=False))
def test_the_choice_meets_every_constraint_nothing_is_cheaper_and_order_does_not_matter(
    offers: list[InstanceOffer], c: InstanceConstraints, rnd: random.Random
) -> None:
    refs = [Reference(offer, c) for offer in offers]
    eligible = [ref for ref in refs if ref.ok]
    shuffled = list(offers)
    rnd.shuffle(shuffled)
    ranked = rank_offers(offers, c)
    assert rank_offers(shuffled, c) == ranked
    assert [cand.offer for cand in filter_offers(offers, c)] == [ref.offer for ref in eligible]
    if not eligible:
        with pytest.raises(SelectionError):
            select_instance_type(offers, c)
        return
    chosen = select_instance_type(offers, c)
    assert select_instance_type(shuffled, c) == chosen == ranked[0]
    ref = Reference(chosen.offer, c)
    assert ref.ok, f"chosen {chosen.name} fails {ref.failed}"
    assert chosen.tasks_per_instance == ref.tasks
    assert chosen.boot_disk_gb == ref.disk_gb
    assert chosen.price_per_hour_usd == pytest.approx(ref.price)
    assert chosen.price_per_task_slot_hour_usd == pytest.approx(ref.price / ref.tasks)
    assert chosen.use_spot == c.use_spot
    for other in eligible:
        assert other.slot_price >= chosen.price_per_task_slot_hour_usd - TOL, other.offer
    # Among equally cheap offers, the spec's tie-breaks decide.
    best = min(spec_key(r.offer, r.slot_price) for r in eligible)
    assert spec_key(chosen.offer, chosen.price_per_task_slot_hour_usd) == best
    keys = [spec_key(cand.offer, cand.price_per_task_slot_hour_usd) for cand in ranked]
    assert keys == sorted(keys)
    for cand in ranked:
        cand_ref = Reference(cand.offer, c)
        assert cand.tasks_per_instance == tasks_per_instance(cand.offer, c) == cand_ref.tasks
        assert cand.boot_disk_gb == boot_disk_gb(cand.offer, c, cand.tasks_per_instance)
        # Two disk types may cost the same; the price is what must agree.
        assert cand.price_per_hour_usd == pytest.approx(cand_ref.price)
        assert cand.boot_disk_iops == c.boot_disk_iops
        assert cand.boot_disk_throughput == c.boot_disk_throughput


@PROPERTY
@given(catalogs(min_size=1), constraints)
def test_an_empty_result_names_the_constraint_that_eliminated_the_last_candidates(
    offers: list[InstanceOffer], c: InstanceConstraints
) -> None:
    refs = [Reference(offer, c) for offer in offers]
    if any(ref.ok for ref in refs):
        # Adding a bound no offer meets must be reported against that bound.
        too_big = max(offer.vcpus for offer in offers) + 1
        with pytest.raises(SelectionError, match=rf": min_cpu={too_big} eliminated the last"):
            select_instance_type(offers, attrs.evolve(c, min_cpu=too_big))
        return
    with pytest.raises(SelectionError) as caught:
        select_instance_type(offers, c)
    message = str(caught.value)
    last = max((ref.failed for ref in refs if ref.failed), key=FILTERS.index)
    victims = [ref.offer for ref in refs if ref.failed == last]
    match = re.match(
        r"no instance type meets the constraints: (\w+).* eliminated the last (\d+) "
        r"candidates? \((.*)\); ",
        message,
    )
    assert match, message
    assert match.group(1) == last
    assert int(match.group(2)) == len(victims)
    shown = [name for name in match.group(3).split(", ") if name != "..."]
    assert shown and set(shown) <= {offer.name for offer in victims}


# --- named examples --------------------------------------------------------------------------


def gcp(
    name: str, vcpus: int, memory_gib: float, price: float, spot: float | None = None, **kw: object
) -> InstanceOffer:
    return InstanceOffer(
        name=name,
        vcpus=vcpus,
        memory_gib=memory_gib,
        architecture=str(kw.pop("architecture", "x86_64")),
        region="us-central1",
        zone=str(kw.pop("zone", "us-central1-a")),
        cpu_family=str(kw.pop("cpu_family", "Intel Cascade Lake")),
        boot_disks=(
            BootDiskOption("pd-standard", 0.00005),
            BootDiskOption("pd-balanced", 0.000137),
        ),
        price_per_hour_usd=price,
        spot_price_per_hour_usd=spot,
        **kw,  # type: ignore[arg-type]
    )


CATALOG = [
    gcp("n2-standard-2", 2, 8, 0.097118, 0.0235),
    gcp("n2-standard-4", 4, 16, 0.194236, 0.0470),
    gcp("n2-standard-8", 8, 32, 0.388472, 0.0940),
    gcp("n2-standard-16", 16, 64, 0.776944, 0.1880),
    gcp("n2-highcpu-8", 8, 8, 0.286832, 0.0694),
    gcp("n2-highmem-8", 8, 64, 0.524048, 0.1268),
    gcp("e2-standard-8", 8, 32, 0.268112, 0.0804),
    gcp("t2a-standard-8", 8, 32, 0.308, 0.0740, architecture="arm64", cpu_family="Ampere Altra"),
]


def quickstart_constraints() -> InstanceConstraints:
    """The Quick Start's constraints: ``max_cpu: 8``, ``min_memory_per_cpu: 4``, ``n2-``."""
    return InstanceConstraints(max_cpu=8, min_memory_per_cpu=4, instance_types=("n2-",))


def test_quickstart_constraints_pick_n2_standard_8() -> None:
    chosen = select_instance_type(CATALOG, quickstart_constraints())
    assert chosen.name == "n2-standard-8"
    assert chosen.tasks_per_instance == 8
    assert chosen.boot_disk_gb == 10
    assert chosen.boot_disk_type == "pd-standard"
    assert chosen.price_per_hour_usd == pytest.approx(0.388472 + 10 * 0.00005)
    # n2-standard-2/4/8 cost the same per vCPU; the disk is per instance, so the larger wins.
    assert [c.name for c in rank_offers(CATALOG, quickstart_constraints())] == [
        "n2-standard-8",
        "n2-standard-4",
        "n2-standard-2",
        "n2-highmem-8",
    ]


def test_equal_slot_prices_go_to_more_vcpus_then_name_then_zone() -> None:
    free = InstanceConstraints(total_boot_disk_size=0)
    small = gcp("b-small-2", 2, 8, 0.2)
    big = gcp("z-big-4", 4, 16, 0.4)
    assert select_instance_type([small, big], free).name == "z-big-4"
    same_a = gcp("a-type-4", 4, 16, 0.4, zone="us-central1-b")
    assert select_instance_type([big, same_a], free).name == "a-type-4"
    zone_b = gcp("a-type-4", 4, 16, 0.4, zone="us-central1-b")
    zone_a = gcp("a-type-4", 4, 16, 0.4, zone="us-central1-a")
    assert select_instance_type([zone_b, zone_a], free).offer.zone == "us-central1-a"


def test_spot_uses_the_spot_price_and_skips_offers_without_one() -> None:
    offers = [gcp("n2-standard-8", 8, 32, 0.388, None), gcp("e2-standard-8", 8, 32, 0.268, 0.08)]
    chosen = select_instance_type(
        offers, InstanceConstraints(use_spot=True, total_boot_disk_size=0)
    )
    assert chosen.name == "e2-standard-8"
    assert chosen.vm_price_per_hour_usd == 0.08
    with pytest.raises(
        SelectionError,
        match=r"use_spot=true \(no spot price in the catalog\) eliminated the last 1 candidate "
        r"\(n2-standard-8\)",
    ):
        select_instance_type(offers, InstanceConstraints(use_spot=True, instance_types=("^n2",)))


def test_offers_without_a_price_are_not_eligible_and_the_error_says_so() -> None:
    unpriced = attrs.evolve(gcp("n2-standard-8", 8, 32, 0.388), price_per_hour_usd=None)
    with pytest.raises(
        SelectionError, match=r"price \(no on-demand price in the catalog\) eliminated"
    ):
        select_instance_type([unpriced], InstanceConstraints())


def test_the_error_names_the_constraint_and_the_types_it_eliminated() -> None:
    highcpu = [gcp(f"n2-highcpu-{n}", n, n, 0.036 * n) for n in (2, 4, 8, 16, 32)]
    highcpu += [
        gcp(f"n2-highcpu-{n}", n, n, 0.036 * n, zone="us-central1-b") for n in (2, 4, 8, 16, 32)
    ]
    highcpu += [gcp("n2-highcpu-48", 48, 48, 1.7), gcp("n2-highcpu-64", 64, 64, 2.3)]
    highcpu += [gcp("m1-megamem-96", 96, 1433.6, 10.6, architecture="arm64")]
    with pytest.raises(SelectionError) as caught:
        select_instance_type(highcpu, InstanceConstraints(min_memory_per_cpu=4))
    assert str(caught.value) == (
        "no instance type meets the constraints: min_memory_per_cpu=4 eliminated the last 12 "
        "candidates (n2-highcpu-2, n2-highcpu-4, n2-highcpu-8, n2-highcpu-16, n2-highcpu-32, "
        "...); "
        "relax min_memory_per_cpu or the other constraints"
    )


def test_an_empty_catalog_says_so() -> None:
    with pytest.raises(SelectionError, match="the catalog has no instance types"):
        select_instance_type([], InstanceConstraints())


def test_instance_type_patterns_match_anywhere_unless_anchored() -> None:
    names = {
        c.name for c in filter_offers(CATALOG, InstanceConstraints(instance_types=("standard-8",)))
    }
    assert names == {"n2-standard-8", "e2-standard-8"}
    anchored = InstanceConstraints(instance_types=("^n2-standard-\\d$",))
    assert {c.name for c in filter_offers(CATALOG, anchored)} == {
        "n2-standard-2",
        "n2-standard-4",
        "n2-standard-8",
    }
    with pytest.raises(
        ConfigError, match=r"instance_types\[1\]: '\(n2' is not a valid regular expression"
    ):
        filter_offers(CATALOG, InstanceConstraints(instance_types=("n2", "(n2")))


def test_tasks_per_instance_is_cpu_bound_then_capped_then_memory_bound() -> None:
    offer = gcp("n2-standard-8", 8, 32, 0.388)
    assert tasks_per_instance(offer, InstanceConstraints()) == 8
    assert tasks_per_instance(offer, InstanceConstraints(cpus_per_task=3)) == 2
    assert tasks_per_instance(offer, InstanceConstraints(cpus_per_task=0.1)) == 80
    assert tasks_per_instance(offer, InstanceConstraints(max_tasks_per_instance=5)) == 5
    assert tasks_per_instance(offer, InstanceConstraints(min_memory_per_task=6)) == 5
    assert (
        tasks_per_instance(
            offer, InstanceConstraints(min_memory_per_task=6, min_tasks_per_instance=6)
        )
        == 0
    )
    assert tasks_per_instance(offer, InstanceConstraints(min_memory_per_task=40)) == 0
    with pytest.raises(ConfigError, match="cpus_per_task: must be greater than 0"):
        tasks_per_instance(offer, InstanceConstraints(cpus_per_task=0))


def test_boot_disk_size_is_the_largest_of_floor_per_cpu_and_per_task() -> None:
    offer = gcp("n2-standard-8", 8, 32, 0.388)
    assert boot_disk_gb(offer, InstanceConstraints(), 8) == 10
    per_cpu = InstanceConstraints(boot_disk_base_size=5, boot_disk_per_cpu=2.5)
    assert boot_disk_gb(offer, per_cpu, 8) == 25
    per_task = InstanceConstraints(
        boot_disk_base_size=5, boot_disk_per_cpu=1, boot_disk_per_task=3.1
    )
    assert boot_disk_gb(offer, per_task, 4) == 18  # 5 + 3.1 * 4 = 17.4, rounded up
    assert boot_disk_gb(offer, InstanceConstraints(total_boot_disk_size=100), 8) == 100


def test_boot_disk_type_is_the_cheapest_allowed_one() -> None:
    offer = gcp("n2-standard-8", 8, 32, 0.388)
    assert choose_boot_disk(offer, InstanceConstraints(), 10) == ("pd-standard", 10 * 0.00005)
    balanced = InstanceConstraints(boot_disk_types=("pd-balanced", "pd-ssd"))
    assert choose_boot_disk(offer, balanced, 10) == ("pd-balanced", 10 * 0.000137)
    assert choose_boot_disk(offer, InstanceConstraints(boot_disk_types=("pd-ssd",)), 10) is None
    with pytest.raises(SelectionError, match=r"boot_disk_types=\['pd-ssd'\] eliminated"):
        select_instance_type([offer], InstanceConstraints(boot_disk_types=("pd-ssd",)))


def test_local_ssd_per_cpu_and_per_task_count_on_top_of_the_base_size() -> None:
    offer = attrs.evolve(gcp("n2-standard-8", 8, 32, 0.388), local_ssd_gib=375.0)
    ok = InstanceConstraints(local_ssd_base_size=175, min_local_ssd_per_cpu=25)  # needs 375
    assert [c.name for c in filter_offers([offer], ok)] == ["n2-standard-8"]
    short = InstanceConstraints(local_ssd_base_size=176, min_local_ssd_per_cpu=25)
    with pytest.raises(SelectionError, match="min_local_ssd_per_cpu=25 eliminated"):
        select_instance_type([offer], short)
    per_task = InstanceConstraints(
        cpus_per_task=2, max_local_ssd_per_task=90
    )  # 4 tasks: at most 360
    with pytest.raises(SelectionError, match="max_local_ssd_per_task=90 eliminated"):
        select_instance_type([offer], per_task)


def test_cpu_family_rank_and_architecture() -> None:
    assert {
        c.name for c in filter_offers(CATALOG, InstanceConstraints(architecture="aarch64"))
    } == {"t2a-standard-8"}
    assert {c.name for c in filter_offers(CATALOG, InstanceConstraints(architecture=None))} == {
        o.name for o in CATALOG
    }
    assert {
        c.name
        for c in filter_offers(CATALOG, InstanceConstraints(architecture=None, cpu_family="ampere"))
    } == {"t2a-standard-8"}
    ranked = [attrs.evolve(o, cpu_rank=i) for i, o in enumerate(CATALOG)]
    names = {
        c.name for c in filter_offers(ranked, InstanceConstraints(min_cpu_rank=2, max_cpu_rank=3))
    }
    assert names == {"n2-standard-8", "n2-standard-16"}


def test_candidate_exposes_name_and_vcpus() -> None:
    chosen: Candidate = select_instance_type(CATALOG, quickstart_constraints())
    assert (chosen.name, chosen.vcpus) == ("n2-standard-8", 8)

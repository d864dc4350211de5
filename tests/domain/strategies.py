"""Hypothesis strategies for instance offers, constraints and pool limits.

Values come from small sets (a handful of names, vCPU counts, prices in tenths of a cent) so that
generated catalogs contain ties, duplicates across zones and offers that a constraint just
meets or just misses. Strategies are built once at import: building them per draw is slow.
"""

from __future__ import annotations

from typing import TypeVar

from hypothesis import strategies as st

from cloud_tasks.domain.constraints import InstanceConstraints
from cloud_tasks.domain.offers import BootDiskOption, InstanceOffer
from cloud_tasks.domain.options import PoolLimits
from cloud_tasks.domain.selection import Candidate

__all__ = [
    "BOOT_DISK_TYPES",
    "boot_disks",
    "candidates",
    "catalogs",
    "constraints",
    "offers",
    "pool_limits",
    "prices",
]

T = TypeVar("T")

FAMILIES = ("n2-standard", "n2-highcpu", "n2-highmem", "e2-standard", "c6a", "m6g", "t2d-standard")
VCPUS = (1, 2, 4, 8, 16, 32)
MEMORY_PER_CPU_GIB = (0.5, 1.0, 2.0, 4.0, 8.0)
CPU_FAMILIES = ("Intel Cascade Lake", "Intel Ice Lake", "AMD Milan", "AMD Rome", "Ampere Altra")
ZONES = ("us-central1-a", "us-central1-b", "us-east1-c")
BOOT_DISK_TYPES = ("pd-standard", "pd-balanced", "pd-ssd")
INSTANCE_TYPE_PATTERNS = ("n2-", "^e2-", "standard", "-8$", "c6a|m6g", "^n2-standard-\\d+$")


def prices(max_thousandths: int = 2000) -> st.SearchStrategy[float]:
    """Prices in USD with three decimals, so equal slot prices are common."""
    return st.integers(min_value=1, max_value=max_thousandths).map(lambda n: n / 1000)


def _maybe(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    # Unset most of the time, so that typical constraint sets leave some offers standing.
    return st.tuples(st.integers(0, 7), strategy).map(
        lambda pair: pair[1] if pair[0] == 3 else None
    )


_DISK_PRICE = st.sampled_from((0.0, 0.00005, 0.0001, 0.0002))
boot_disks: st.SearchStrategy[tuple[BootDiskOption, ...]] = st.lists(
    st.builds(BootDiskOption, st.sampled_from(BOOT_DISK_TYPES), _DISK_PRICE),
    max_size=3,
    unique_by=lambda disk: disk.disk_type,
).map(tuple)
"""A subset of the disk types, each priced per GiB-hour."""


def _offer(
    family: str,
    vcpus: int,
    memory_per_cpu: float,
    zone: str,
    has_zone: bool,
    **fields: object,
) -> InstanceOffer:
    return InstanceOffer(
        name=f"{family}-{vcpus}",
        vcpus=vcpus,
        memory_gib=vcpus * memory_per_cpu,
        region=zone.rsplit("-", 1)[0],
        zone=zone if has_zone else None,
        **fields,  # type: ignore[arg-type]
    )


offers: st.SearchStrategy[InstanceOffer] = st.builds(
    _offer,
    family=st.sampled_from(FAMILIES),
    vcpus=st.sampled_from(VCPUS),
    memory_per_cpu=st.sampled_from(MEMORY_PER_CPU_GIB),
    zone=st.sampled_from(ZONES),
    has_zone=st.booleans(),
    architecture=st.sampled_from(("x86_64", "x86_64", "arm64")),
    cpu_family=st.sampled_from(CPU_FAMILIES),
    cpu_rank=st.integers(min_value=0, max_value=5),
    local_ssd_gib=st.sampled_from((0.0, 375.0, 750.0, 1500.0)),
    boot_disks=boot_disks,
    price_per_hour_usd=st.one_of(prices(), prices(), prices(), st.none()),
    spot_price_per_hour_usd=st.one_of(prices(500), prices(500), st.none()),
)
"""One offer with a realistic name (``<family>-<vcpus>``) and maybe-missing prices."""


def catalogs(min_size: int = 0, max_size: int = 20) -> st.SearchStrategy[list[InstanceOffer]]:
    """A list of offers, possibly with duplicates of the same name in several zones."""
    return st.lists(offers, min_size=min_size, max_size=max_size)


_SMALL = st.sampled_from((0.0, 0.5, 1.0, 2.0, 4.0, 8.0))
_SSD = st.sampled_from((0.0, 100.0, 375.0, 750.0, 1500.0))
_SSD_MIN_PER = st.sampled_from((0.0, 10.0, 50.0))
_SSD_MAX_PER = st.sampled_from((10.0, 50.0, 200.0))
_DISK_PER = st.sampled_from((0.5, 2.0, 10.0))

constraints: st.SearchStrategy[InstanceConstraints] = st.builds(
    InstanceConstraints,
    architecture=st.sampled_from((None, "x86_64", "x86_64", "arm64", "AMD64")),
    cpu_family=_maybe(st.sampled_from(("intel", "AMD Milan", "ampere"))),
    min_cpu_rank=_maybe(st.integers(0, 5)),
    max_cpu_rank=_maybe(st.integers(0, 5)),
    instance_types=st.one_of(
        st.just(()),
        st.just(()),
        st.lists(st.sampled_from(INSTANCE_TYPE_PATTERNS), max_size=2, unique=True).map(tuple),
    ),
    min_cpu=_maybe(st.sampled_from(VCPUS)),
    max_cpu=_maybe(st.sampled_from(VCPUS)),
    cpus_per_task=st.sampled_from((1.0, 1.0, 0.5, 1.5, 2.0, 4.0)),
    min_tasks_per_instance=_maybe(st.integers(0, 8)),
    max_tasks_per_instance=_maybe(st.integers(0, 16)),
    min_total_memory=_maybe(st.sampled_from((1.0, 4.0, 16.0, 64.0))),
    max_total_memory=_maybe(st.sampled_from((4.0, 16.0, 64.0, 256.0))),
    min_memory_per_cpu=_maybe(_SMALL),
    max_memory_per_cpu=_maybe(_SMALL),
    min_memory_per_task=_maybe(_SMALL),
    max_memory_per_task=_maybe(_SMALL),
    min_local_ssd=_maybe(_SSD),
    max_local_ssd=_maybe(_SSD),
    local_ssd_base_size=st.sampled_from((0.0, 0.0, 100.0)),
    min_local_ssd_per_cpu=_maybe(_SSD_MIN_PER),
    max_local_ssd_per_cpu=_maybe(_SSD_MAX_PER),
    min_local_ssd_per_task=_maybe(_SSD_MIN_PER),
    max_local_ssd_per_task=_maybe(_SSD_MAX_PER),
    boot_disk_types=st.one_of(
        st.just(()),
        st.lists(st.sampled_from(BOOT_DISK_TYPES), max_size=2, unique=True).map(tuple),
    ),
    boot_disk_iops=_maybe(st.integers(3000, 10000)),
    boot_disk_throughput=_maybe(st.integers(140, 1000)),
    total_boot_disk_size=st.sampled_from((10.0, 20.0, 50.5)),
    boot_disk_base_size=st.sampled_from((0.0, 5.0)),
    boot_disk_per_cpu=_maybe(_DISK_PER),
    boot_disk_per_task=_maybe(_DISK_PER),
    use_spot=st.booleans(),
)
"""Any combination of the §5 constraints, each unset more often than set."""

_OPTIONAL_COUNT = st.one_of(st.none(), st.integers(0, 200))
_OPTIONAL_MIN = st.one_of(st.none(), st.none(), st.integers(0, 64))

pool_limits: st.SearchStrategy[PoolLimits] = st.builds(
    PoolLimits,
    min_instances=st.integers(0, 5),
    max_instances=st.integers(0, 50),
    min_total_cpus=_OPTIONAL_MIN,
    max_total_cpus=_OPTIONAL_COUNT,
    min_simultaneous_tasks=_OPTIONAL_MIN,
    max_simultaneous_tasks=_OPTIONAL_COUNT,
    min_total_price_per_hour=st.one_of(st.none(), st.none(), prices(3000)),
    max_total_price_per_hour=st.one_of(st.none(), prices(20000)),
    max_total_cost=st.one_of(st.none(), prices(100000)),
)
"""Pool limits, minimums included, often inconsistent with each other on purpose."""


def _candidate(vcpus: int, slots_per_cpu: float, price: float, use_spot: bool) -> Candidate:
    offer = InstanceOffer(
        name=f"n2-standard-{vcpus}",
        vcpus=vcpus,
        memory_gib=4.0 * vcpus,
        architecture="x86_64",
        region="us-central1",
        zone="us-central1-a",
        price_per_hour_usd=price,
        spot_price_per_hour_usd=price,
    )
    slots = max(int(vcpus * slots_per_cpu), 1)
    return Candidate(
        offer=offer,
        tasks_per_instance=slots,
        boot_disk_gb=10,
        boot_disk_type=None,
        use_spot=use_spot,
        vm_price_per_hour_usd=price,
        boot_disk_price_per_hour_usd=0.0,
        price_per_hour_usd=price,
        price_per_task_slot_hour_usd=price / slots,
    )


candidates: st.SearchStrategy[Candidate] = st.builds(
    _candidate,
    vcpus=st.sampled_from(VCPUS),
    slots_per_cpu=st.sampled_from((0.25, 0.5, 1.0, 1.0, 2.0)),
    price=st.one_of(st.just(0.0), prices(3000)),
    use_spot=st.booleans(),
)
"""A selected instance type as sizing sees it: vCPUs, task slots and an all-in price (maybe 0)."""

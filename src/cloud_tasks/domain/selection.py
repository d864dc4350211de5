"""Instance type selection (SPEC §5): which offers meet the constraints, and which one is cheapest.

Constraints are applied as an ordered sequence of named filters (:data:`FILTERS`). An offer is
rejected by the first filter it fails, so when nothing is left the last filter that removed
anything is the one that "eliminated the last candidates", and the error says so.

Semantics of each constraint, where the name alone does not say it:

- ``architecture``: case-insensitive; ``amd64`` means ``x86_64`` and ``aarch64`` means ``arm64``.
- ``cpu_family``: case-insensitive substring of the offer's family (``"intel"`` matches
  ``"Intel Cascade Lake"``).
- ``instance_types``: regular expressions; an offer qualifies when any of them matches anywhere in
  its name (``re.search``), so anchor them (``^n2-standard-\\d+$``) to match whole names.
- ``min_cpu_rank``/``max_cpu_rank``: bounds on the catalog's CPU performance rank.
- ``cpus_per_task`` with ``min_tasks_per_instance``/``max_tasks_per_instance`` and
  ``min_memory_per_task`` define :func:`tasks_per_instance`; an offer that cannot run
  ``min_tasks_per_instance`` tasks (or any task) is rejected. ``max_memory_per_task`` rejects
  offers whose memory per task slot (memory / tasks per instance) is larger.
- Local SSD: ``min_local_ssd``/``max_local_ssd`` bound the offer's local SSD. The per-CPU and
  per-task bounds are on top of ``local_ssd_base_size``: the offer needs at least
  ``local_ssd_base_size + min_local_ssd_per_cpu * vCPUs`` and at most
  ``local_ssd_base_size + max_local_ssd_per_cpu * vCPUs`` (likewise per task slot).
- ``boot_disk_types``: the boot disk is the cheapest type the offer supports among these (ties
  go to the order the user listed them in); with none given, the cheapest type the offer lists.
  An offer that lists no boot disk types is priced without a disk unless types are required.
- ``boot_disk_iops``/``boot_disk_throughput``: not used for choosing; they are carried on the
  :class:`Candidate` so the compute adapter provisions the disk with them (providers that price
  provisioned IOPS or throughput separately are not yet priced here).
- GPUs: ``gpu_type`` holds regular expressions matched case-insensitively anywhere in the
  offer's GPU type (``t4`` matches AWS ``nvidia-t4`` and GCP ``nvidia-tesla-t4``); an offer
  without GPUs never matches. ``min_gpus``/``max_gpus`` bound the GPUs per instance,
  ``min_gpu_memory`` the memory of each GPU (GiB). ``gpus_per_task`` also limits the tasks per
  instance to ``floor(gpus / gpus_per_task)``, so the price per task slot includes the GPUs.
- ``use_spot``: the spot price is used, and offers without one are rejected; otherwise the
  on-demand price is used, and offers without one are rejected too.

Sizes are compared with a tolerance of 1e-9 so that ``32 GiB / 8 vCPUs`` meets
``min_memory_per_cpu=4`` however the catalog's floats were rounded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Final

import attrs

from cloud_tasks.domain.constraints import InstanceConstraints
from cloud_tasks.domain.offers import InstanceOffer
from cloud_tasks.exceptions import ConfigError, SelectionError

__all__ = [
    "FILTERS",
    "Candidate",
    "boot_disk_gb",
    "choose_boot_disk",
    "filter_offers",
    "rank_offers",
    "rank_offers_in_zone",
    "select_instance_type",
    "selection_key",
    "tasks_per_instance",
]

_EPS: Final = 1e-9
# Slot prices are compared at this many decimals so that float noise (0.3 / 3 vs 0.1) never
# decides between two offers that a person would call equally priced.
_PRICE_DECIMALS: Final = 10
_NAMES_SHOWN: Final = 5

#: The named filters, in the order they are applied.
FILTERS: Final[tuple[str, ...]] = (
    "architecture",
    "instance_types",
    "cpu_family",
    "min_cpu_rank",
    "max_cpu_rank",
    "min_cpu",
    "max_cpu",
    "gpu_type",
    "min_gpus",
    "max_gpus",
    "min_gpu_memory",
    "min_total_memory",
    "max_total_memory",
    "min_memory_per_cpu",
    "max_memory_per_cpu",
    "cpus_per_task",
    "max_tasks_per_instance",
    "min_memory_per_task",
    "gpus_per_task",
    "min_tasks_per_instance",
    "max_memory_per_task",
    "min_local_ssd",
    "max_local_ssd",
    "min_local_ssd_per_cpu",
    "max_local_ssd_per_cpu",
    "min_local_ssd_per_task",
    "max_local_ssd_per_task",
    "boot_disk_types",
    "price",
    "use_spot",
)
(
    _ARCHITECTURE,
    _INSTANCE_TYPES,
    _CPU_FAMILY,
    _MIN_CPU_RANK,
    _MAX_CPU_RANK,
    _MIN_CPU,
    _MAX_CPU,
    _GPU_TYPE,
    _MIN_GPUS,
    _MAX_GPUS,
    _MIN_GPU_MEMORY,
    _MIN_TOTAL_MEMORY,
    _MAX_TOTAL_MEMORY,
    _MIN_MEMORY_PER_CPU,
    _MAX_MEMORY_PER_CPU,
    _CPUS_PER_TASK,
    _MAX_TASKS_PER_INSTANCE,
    _MIN_MEMORY_PER_TASK,
    _GPUS_PER_TASK,
    _MIN_TASKS_PER_INSTANCE,
    _MAX_MEMORY_PER_TASK,
    _MIN_LOCAL_SSD,
    _MAX_LOCAL_SSD,
    _MIN_LOCAL_SSD_PER_CPU,
    _MAX_LOCAL_SSD_PER_CPU,
    _MIN_LOCAL_SSD_PER_TASK,
    _MAX_LOCAL_SSD_PER_TASK,
    _BOOT_DISK_TYPES,
    _PRICE,
    _USE_SPOT,
) = range(len(FILTERS))
_DIGITS: Final = re.compile(r"(\d+)")
_ARCH_ALIASES: Final = {"amd64": "x86_64", "x86-64": "x86_64", "aarch64": "arm64"}


@attrs.frozen
class Candidate:
    """An offer that meets the constraints, with everything derived from it, priced all-in.

    ``price_per_hour_usd`` is the VM (spot or on-demand per ``use_spot``) plus the boot disk;
    ``price_per_task_slot_hour_usd`` is that divided by ``tasks_per_instance``, the quantity
    selection minimises. ``boot_disk_iops``/``boot_disk_throughput`` are passed through from the
    constraints for the compute adapter.
    """

    offer: InstanceOffer
    tasks_per_instance: int
    boot_disk_gb: int
    boot_disk_type: str | None
    use_spot: bool
    vm_price_per_hour_usd: float
    boot_disk_price_per_hour_usd: float
    price_per_hour_usd: float
    price_per_task_slot_hour_usd: float
    boot_disk_iops: int | None = None
    boot_disk_throughput: int | None = None

    @property
    def name(self) -> str:
        return self.offer.name

    @property
    def vcpus(self) -> int:
        return self.offer.vcpus


def _floor(value: float) -> int:
    return math.floor(value + _EPS)


def _ceil(value: float) -> int:
    return math.ceil(value - _EPS)


def _check_cpus_per_task(constraints: InstanceConstraints) -> None:
    if not constraints.cpus_per_task > 0:
        raise ConfigError(f"cpus_per_task: must be greater than 0, got {constraints.cpus_per_task}")


def tasks_per_instance(offer: InstanceOffer, constraints: InstanceConstraints) -> int:
    """How many tasks run at once on ``offer``; 0 means it cannot run the job.

    ``floor(vcpus / cpus_per_task)``, capped at ``max_tasks_per_instance``, lowered so that each
    task gets ``min_memory_per_task`` and ``gpus_per_task``; 0 when that leaves fewer than
    ``min_tasks_per_instance``.
    """
    _check_cpus_per_task(constraints)
    tasks = _floor(offer.vcpus / constraints.cpus_per_task)
    if constraints.max_tasks_per_instance is not None:
        tasks = min(tasks, constraints.max_tasks_per_instance)
    if constraints.min_memory_per_task is not None and constraints.min_memory_per_task > 0:
        tasks = min(tasks, _floor(offer.memory_gib / constraints.min_memory_per_task))
    if constraints.gpus_per_task is not None and constraints.gpus_per_task > 0:
        tasks = min(tasks, _floor(offer.gpus / constraints.gpus_per_task))
    tasks = max(tasks, 0)
    if (
        constraints.min_tasks_per_instance is not None
        and tasks < constraints.min_tasks_per_instance
    ):
        return 0
    return tasks


def boot_disk_gb(offer: InstanceOffer, constraints: InstanceConstraints, tasks: int) -> int:
    """Boot disk size in GB, rounded up.

    ``max(total_boot_disk_size, base + per_cpu * vcpus, base + per_task * tasks)``, where the
    per-CPU and per-task terms count only when set.
    """
    size = constraints.total_boot_disk_size
    base = constraints.boot_disk_base_size
    if constraints.boot_disk_per_cpu is not None:
        size = max(size, base + constraints.boot_disk_per_cpu * offer.vcpus)
    if constraints.boot_disk_per_task is not None:
        size = max(size, base + constraints.boot_disk_per_task * tasks)
    return max(_ceil(size), 0)


def choose_boot_disk(
    offer: InstanceOffer, constraints: InstanceConstraints, size_gb: int
) -> tuple[str | None, float] | None:
    """The cheapest allowed boot disk type for ``offer`` and its price per hour at ``size_gb``.

    Returns ``(None, 0.0)`` when the offer lists no disk types and none are required, and
    ``None`` when the required types and the offer's types do not intersect.
    """
    return _BootDiskChooser(constraints.boot_disk_types).choose(offer, size_gb)


class _BootDiskChooser:
    def __init__(self, wanted: Sequence[str]) -> None:
        self._preference = {disk_type: index for index, disk_type in enumerate(wanted)}

    def choose(self, offer: InstanceOffer, size_gb: int) -> tuple[str | None, float] | None:
        preference = self._preference
        best: tuple[float, int, str] | None = None
        for disk in offer.boot_disks:
            if preference:
                rank = preference.get(disk.disk_type)
                if rank is None:
                    continue
            else:
                rank = 0
            key = (disk.price_per_gib_hour_usd * size_gb, rank, disk.disk_type)
            if best is None or key < best:
                best = key
        if best is None:
            return None if preference else (None, 0.0)
        return best[2], best[0]


# What evaluating one offer yields when it passes: tasks, disk size, disk type, VM and disk price.
_Passed = tuple[int, int, str | None, float, float]


class _Evaluator:
    """The constraints, compiled once, applied to one offer at a time in :data:`FILTERS` order.

    Thresholds are precomputed with their tolerance (and as infinities when unset) so the
    per-offer work is plain comparisons. Name, architecture and CPU family verdicts are cached
    per distinct string: a catalog repeats each type name in every zone.
    """

    def __init__(self, constraints: InstanceConstraints) -> None:
        _check_cpus_per_task(constraints)
        c = constraints
        self.constraints = c
        arch = c.architecture.lower() if c.architecture else None
        self.architecture = _ARCH_ALIASES.get(arch, arch) if arch else None
        self.patterns = [_compile(index, text) for index, text in enumerate(c.instance_types)]
        self.cpu_family = c.cpu_family.lower() if c.cpu_family else None
        self.arch_ok: dict[str, bool] = {}
        self.name_ok: dict[str, bool] = {}
        self.family_ok: dict[str, bool] = {}
        inf = math.inf
        self.min_rank = c.min_cpu_rank if c.min_cpu_rank is not None else -inf
        self.max_rank = c.max_cpu_rank if c.max_cpu_rank is not None else inf
        self.min_cpu = c.min_cpu if c.min_cpu is not None else -inf
        self.max_cpu = c.max_cpu if c.max_cpu is not None else inf
        self.min_mem = _lo(c.min_total_memory)
        self.max_mem = _hi(c.max_total_memory)
        self.min_mem_cpu = _lo(c.min_memory_per_cpu)
        self.max_mem_cpu = _hi(c.max_memory_per_cpu)
        self.cpus_per_task = c.cpus_per_task
        self.max_tasks = c.max_tasks_per_instance
        self.min_mem_task = c.min_memory_per_task if c.min_memory_per_task else None
        self.min_tasks = c.min_tasks_per_instance if c.min_tasks_per_instance is not None else 0
        self.max_mem_task = _hi(c.max_memory_per_task)
        self.min_ssd = _lo(c.min_local_ssd)
        self.max_ssd = _hi(c.max_local_ssd)
        self.ssd_per_cpu = (
            c.min_local_ssd_per_cpu is not None or c.max_local_ssd_per_cpu is not None
        )
        self.ssd_per_task = (
            c.min_local_ssd_per_task is not None or c.max_local_ssd_per_task is not None
        )
        self.disk_chooser = _BootDiskChooser(c.boot_disk_types)
        self.gpu = _GpuFilter(c) if _wants_gpus(c) else None

    def _arch_ok(self, arch: str) -> bool:
        lowered = arch.lower()
        verdict = _ARCH_ALIASES.get(lowered, lowered) == self.architecture
        self.arch_ok[arch] = verdict
        return verdict

    def _name_ok(self, name: str) -> bool:
        verdict = any(pattern.search(name) for pattern in self.patterns)
        self.name_ok[name] = verdict
        return verdict

    def _family_ok(self, family: str) -> bool:
        verdict = self.cpu_family is not None and self.cpu_family in family.lower()
        self.family_ok[family] = verdict
        return verdict

    def evaluate(self, offer: InstanceOffer) -> _Passed | int:
        """The derived values of a passing offer, or the index of the filter that rejects it."""
        if self.architecture is not None:
            verdict = self.arch_ok.get(offer.architecture)
            if not (self._arch_ok(offer.architecture) if verdict is None else verdict):
                return _ARCHITECTURE
        if self.patterns:
            verdict = self.name_ok.get(offer.name)
            if not (self._name_ok(offer.name) if verdict is None else verdict):
                return _INSTANCE_TYPES
        if self.cpu_family is not None:
            verdict = self.family_ok.get(offer.cpu_family)
            if not (self._family_ok(offer.cpu_family) if verdict is None else verdict):
                return _CPU_FAMILY
        rank = offer.cpu_rank
        if rank < self.min_rank:
            return _MIN_CPU_RANK
        if rank > self.max_rank:
            return _MAX_CPU_RANK
        vcpus = offer.vcpus
        if vcpus < self.min_cpu:
            return _MIN_CPU
        if vcpus > self.max_cpu:
            return _MAX_CPU
        if self.gpu is not None:
            rejected_by = self.gpu.check(offer)
            if rejected_by is not None:
                return rejected_by
        memory = offer.memory_gib
        if memory < self.min_mem:
            return _MIN_TOTAL_MEMORY
        if memory > self.max_mem:
            return _MAX_TOTAL_MEMORY
        if vcpus <= 0:
            return _CPUS_PER_TASK
        per_cpu = memory / vcpus
        if per_cpu < self.min_mem_cpu:
            return _MIN_MEMORY_PER_CPU
        if per_cpu > self.max_mem_cpu:
            return _MAX_MEMORY_PER_CPU
        tasks = math.floor(vcpus / self.cpus_per_task + _EPS)
        if tasks <= 0:
            return _CPUS_PER_TASK
        if self.max_tasks is not None and tasks > self.max_tasks:
            tasks = self.max_tasks
            if tasks <= 0:
                return _MAX_TASKS_PER_INSTANCE
        if self.min_mem_task is not None:
            tasks = min(tasks, math.floor(memory / self.min_mem_task + _EPS))
            if tasks <= 0:
                return _MIN_MEMORY_PER_TASK
        if self.gpu is not None and self.gpu.per_task is not None:
            tasks = min(tasks, math.floor(offer.gpus / self.gpu.per_task + _EPS))
            if tasks <= 0:
                return _GPUS_PER_TASK
        if tasks < self.min_tasks:
            return _MIN_TASKS_PER_INSTANCE
        if memory / tasks > self.max_mem_task:
            return _MAX_MEMORY_PER_TASK
        ssd = offer.local_ssd_gib
        if ssd < self.min_ssd:
            return _MIN_LOCAL_SSD
        if ssd > self.max_ssd:
            return _MAX_LOCAL_SSD
        c = self.constraints
        if self.ssd_per_cpu or self.ssd_per_task:
            rejected = _check_ssd_per_unit(c, ssd, vcpus, tasks)
            if rejected is not None:
                return rejected
        disk_gb = boot_disk_gb(offer, c, tasks)
        disk = self.disk_chooser.choose(offer, disk_gb)
        if disk is None:
            return _BOOT_DISK_TYPES
        if c.use_spot:
            vm_price = offer.spot_price_per_hour_usd
            if vm_price is None:
                return _USE_SPOT
        else:
            vm_price = offer.price_per_hour_usd
            if vm_price is None:
                return _PRICE
        return tasks, disk_gb, disk[0], vm_price, disk[1]

    def candidate(self, offer: InstanceOffer, passed: _Passed) -> Candidate:
        tasks, disk_gb, disk_type, vm_price, disk_price = passed
        total = vm_price + disk_price
        return Candidate(
            offer=offer,
            tasks_per_instance=tasks,
            boot_disk_gb=disk_gb,
            boot_disk_type=disk_type,
            use_spot=self.constraints.use_spot,
            vm_price_per_hour_usd=vm_price,
            boot_disk_price_per_hour_usd=disk_price,
            price_per_hour_usd=total,
            price_per_task_slot_hour_usd=total / tasks,
            boot_disk_iops=self.constraints.boot_disk_iops,
            boot_disk_throughput=self.constraints.boot_disk_throughput,
        )


def _wants_gpus(c: InstanceConstraints) -> bool:
    return bool(c.gpu_type) or any(
        value is not None for value in (c.min_gpus, c.max_gpus, c.gpus_per_task, c.min_gpu_memory)
    )


class _GpuFilter:
    """The GPU constraints, compiled once; built only when the job asks for GPUs."""

    def __init__(self, c: InstanceConstraints) -> None:
        if c.gpus_per_task is not None and not c.gpus_per_task > 0:
            raise ConfigError(f"gpus_per_task: must be greater than 0, got {c.gpus_per_task}")
        self.patterns = [_compile_gpu(index, text) for index, text in enumerate(c.gpu_type)]
        self.min_gpus = c.min_gpus if c.min_gpus is not None else -math.inf
        self.max_gpus = c.max_gpus if c.max_gpus is not None else math.inf
        self.min_memory = _lo(c.min_gpu_memory)
        self.per_task = c.gpus_per_task
        self.type_ok: dict[str, bool] = {}

    def check(self, offer: InstanceOffer) -> int | None:
        """The index of the GPU filter that rejects ``offer``, or None."""
        if self.patterns:
            verdict = self.type_ok.get(offer.gpu_type)
            if verdict is None:
                verdict = bool(offer.gpu_type) and any(
                    pattern.search(offer.gpu_type) for pattern in self.patterns
                )
                self.type_ok[offer.gpu_type] = verdict
            if not verdict:
                return _GPU_TYPE
        if offer.gpus < self.min_gpus:
            return _MIN_GPUS
        if offer.gpus > self.max_gpus:
            return _MAX_GPUS
        if offer.gpus > 0 and offer.gpu_memory_gib < self.min_memory:
            return _MIN_GPU_MEMORY
        if offer.gpus == 0 and self.min_memory > -math.inf:
            return _MIN_GPU_MEMORY
        return None


def _compile_gpu(index: int, text: str) -> re.Pattern[str]:
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(
            f"gpu_type[{index}]: {text!r} is not a valid regular expression ({exc})"
        ) from None


def _check_ssd_per_unit(c: InstanceConstraints, ssd: float, vcpus: int, tasks: int) -> int | None:
    base = c.local_ssd_base_size
    if c.min_local_ssd_per_cpu is not None and ssd < base + c.min_local_ssd_per_cpu * vcpus - _EPS:
        return _MIN_LOCAL_SSD_PER_CPU
    if c.max_local_ssd_per_cpu is not None and ssd > base + c.max_local_ssd_per_cpu * vcpus + _EPS:
        return _MAX_LOCAL_SSD_PER_CPU
    if (
        c.min_local_ssd_per_task is not None
        and ssd < base + c.min_local_ssd_per_task * tasks - _EPS
    ):
        return _MIN_LOCAL_SSD_PER_TASK
    if (
        c.max_local_ssd_per_task is not None
        and ssd > base + c.max_local_ssd_per_task * tasks + _EPS
    ):
        return _MAX_LOCAL_SSD_PER_TASK
    return None


def _lo(value: float | None) -> float:
    return -math.inf if value is None else value - _EPS


def _hi(value: float | None) -> float:
    return math.inf if value is None else value + _EPS


def _compile(index: int, text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise ConfigError(
            f"instance_types[{index}]: {text!r} is not a valid regular expression ({exc})"
        ) from None


def _primary_key(offer: InstanceOffer, slot_price: float) -> tuple[float, int, str, str, str]:
    return (
        round(slot_price, _PRICE_DECIMALS),
        -offer.vcpus,
        offer.name,
        offer.zone or "",
        offer.region,
    )


def _fallback_key(offer: InstanceOffer) -> tuple[object, ...]:
    # Only reached when two offers agree on price, vCPUs, name, zone and region: compare the
    # rest so the result never depends on input order.
    return (
        -offer.memory_gib,
        offer.architecture,
        offer.cpu_family,
        offer.cpu_rank,
        offer.local_ssd_gib,
        offer.gpus,
        offer.gpu_type,
        -1.0 if offer.price_per_hour_usd is None else offer.price_per_hour_usd,
        -1.0 if offer.spot_price_per_hour_usd is None else offer.spot_price_per_hour_usd,
        tuple((disk.disk_type, disk.price_per_gib_hour_usd) for disk in offer.boot_disks),
    )


def selection_key(candidate: Candidate) -> tuple[object, ...]:
    """The sort key of SPEC §5: slot price, then more vCPUs, name, zone (then region, the rest)."""
    offer = candidate.offer
    return (*_primary_key(offer, candidate.price_per_task_slot_hour_usd), *_fallback_key(offer))


def filter_offers(
    offers: Iterable[InstanceOffer], constraints: InstanceConstraints
) -> list[Candidate]:
    """Every offer that meets ``constraints``, as candidates, in input order."""
    evaluator = _Evaluator(constraints)
    result: list[Candidate] = []
    for offer in offers:
        passed = evaluator.evaluate(offer)
        if not isinstance(passed, int):
            result.append(evaluator.candidate(offer, passed))
    return result


def rank_offers(
    offers: Iterable[InstanceOffer], constraints: InstanceConstraints
) -> list[Candidate]:
    """Every offer that meets ``constraints``, best first: the order ``list_instance_types`` shows.

    The first element is what :func:`select_instance_type` returns.
    """
    return sorted(filter_offers(offers, constraints), key=selection_key)


def rank_offers_in_zone(
    offers: Sequence[InstanceOffer], constraints: InstanceConstraints, zone: str | None
) -> list[Candidate]:
    """:func:`rank_offers` of the offers in ``zone`` (and those with no zone); never empty.

    A falsy ``zone`` keeps every offer.

    Raises:
        SelectionError: no offer qualifies; the message names the constraint that eliminated
            the last candidates.
    """
    if zone:
        offers = [o for o in offers if o.zone in (None, zone)]
    ranked = rank_offers(offers, constraints)
    if not ranked:
        select_instance_type(offers, constraints)
    return ranked


def select_instance_type(
    offers: Iterable[InstanceOffer], constraints: InstanceConstraints
) -> Candidate:
    """The offer meeting ``constraints`` with the lowest all-in price per task slot.

    Ties go to more vCPUs, then the name, then the zone and region, so the result does not
    depend on the order of ``offers``. One pass, no sorting.

    Raises:
        SelectionError: no offer qualifies; the message names the constraint that eliminated
            the last candidates and some of their names.
        ConfigError: a constraint is malformed (an invalid regular expression,
            ``cpus_per_task`` ≤ 0).
    """
    evaluator = _Evaluator(constraints)
    evaluate = evaluator.evaluate
    best_offer: InstanceOffer | None = None
    best_passed: _Passed | None = None
    best_key: tuple[float, int, str, str, str] | None = None
    # Per filter, the offers it rejected; only the last non-empty one is reported.
    rejected: dict[int, list[InstanceOffer]] = {}
    for offer in offers:
        passed = evaluate(offer)
        if isinstance(passed, int):
            if best_offer is None:
                rejected.setdefault(passed, []).append(offer)
            continue
        tasks, _, _, vm_price, disk_price = passed
        slot_price = round((vm_price + disk_price) / tasks, _PRICE_DECIMALS)
        if best_key is not None and slot_price > best_key[0]:
            continue  # the common case: dearer than the best so far, no key needed
        key = _primary_key(offer, slot_price)
        if (
            best_key is None
            or key < best_key
            or (
                key == best_key
                and best_offer is not None
                and _fallback_key(offer) < _fallback_key(best_offer)
            )
        ):
            best_offer, best_passed, best_key = offer, passed, key
            rejected.clear()
    if best_offer is None or best_passed is None:
        raise SelectionError(_explain(rejected, constraints))
    return evaluator.candidate(best_offer, best_passed)


def _explain(rejected: dict[int, list[InstanceOffer]], constraints: InstanceConstraints) -> str:
    prefix = "no instance type meets the constraints: "
    if not rejected:
        return prefix + "the catalog has no instance types for this provider and region"
    index = max(rejected)
    victims = rejected[index]
    names = sorted({offer.name for offer in victims}, key=_natural)
    shown = ", ".join(names[:_NAMES_SHOWN]) + (", ..." if len(names) > _NAMES_SHOWN else "")
    count = len(victims)
    noun = "candidate" if count == 1 else "candidates"
    what = _describe_filter(FILTERS[index], constraints)
    return f"{prefix}{what} eliminated the last {count} {noun} ({shown}); {_advice(FILTERS[index])}"


def _natural(name: str) -> tuple[object, ...]:
    # n2-highcpu-2 before n2-highcpu-16; split() alternates text and digits, so types align.
    return tuple(int(part) if part.isdigit() else part for part in _DIGITS.split(name))


def _describe_filter(name: str, constraints: InstanceConstraints) -> str:
    describers: dict[str, Callable[[InstanceConstraints], str]] = {
        "cpus_per_task": lambda c: (
            f"cpus_per_task={_fmt(c.cpus_per_task)} (fewer vCPUs than one task needs)"
        ),
        "min_memory_per_task": lambda c: (
            f"min_memory_per_task={_fmt(c.min_memory_per_task)} (less memory than one task needs)"
        ),
        "boot_disk_types": lambda c: f"boot_disk_types={list(c.boot_disk_types)}",
        "instance_types": lambda c: f"instance_types={list(c.instance_types)}",
        "gpu_type": lambda c: f"gpu_type={list(c.gpu_type)}",
        "gpus_per_task": lambda c: (
            f"gpus_per_task={_fmt(c.gpus_per_task)} (fewer GPUs than one task needs)"
        ),
        "price": lambda _c: "price (no on-demand price in the catalog)",
        "use_spot": lambda _c: "use_spot=true (no spot price in the catalog)",
    }
    describe = describers.get(name)
    if describe is not None:
        return describe(constraints)
    return f"{name}={_fmt(getattr(constraints, name))}"


def _advice(name: str) -> str:
    if name == "price":
        return "pick another region or catalog, or restrict instance_types to priced types"
    if name == "use_spot":
        return "set use_spot=false or pick types that are sold as spot"
    return f"relax {name} or the other constraints"


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)

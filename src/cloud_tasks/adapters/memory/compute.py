"""Simulated VMs for tests, dry runs and ``simulate`` (SPEC §9).

Instances exist only in this process. Their state follows the injected clock: an instance is
``PENDING`` for ``boot_delay_s`` after it was created, then ``RUNNING``; a spot instance can be
preempted on demand (``preempt``) or at random at ``preemption_rate_per_hour`` (seeded, so runs
repeat). Capacity, quota and permanent errors can be injected per type and zone so the pool
manager's fallbacks (next zone, next type) and its handling of rejections can be exercised.

Launch calls take ``api_latency_s`` each and the simulated API serves ``api_concurrency`` of
them at once (later calls queue): an instance becomes ``RUNNING`` ``boot_delay_s`` after its
call is served. A manager that launches one instance per call therefore fills a large pool
slowly here, as it would on a cloud, while batched, concurrent launches fill it at once.
"""

from __future__ import annotations

import bisect
import itertools
import random
import re
import threading
from collections.abc import Callable, Sequence
from typing import Literal

import attrs

from cloud_tasks.adapters.clock import SystemClock
from cloud_tasks.adapters.memory.catalog import bundled_catalog
from cloud_tasks.adapters.offer_records import Catalog
from cloud_tasks.exceptions import CapacityError, ProviderError, QuotaError, RejectedError
from cloud_tasks.ports import Clock, Image, Instance, InstanceSpec, InstanceState, Region

MEMORY_IMAGES: tuple[Image, ...] = (
    Image("ubuntu-24.04-x86_64", "x86_64", "Simulated Ubuntu 24.04 LTS (x86_64)"),
    Image("ubuntu-24.04-arm64", "arm64", "Simulated Ubuntu 24.04 LTS (arm64)"),
)


@attrs.define
class CapacityRule:
    """An injected failure: launches matching ``instance_type``/``zone`` fail.

    ``instance_type`` is a regular expression searched in the type name; ``None`` matches
    every type or zone. ``remaining`` counts the failures left (``None``: forever).
    ``available``: instances that may still start before launches fail (``None``: none).
    ``setting``: the launch is refused for good (``RejectedError`` naming this setting).
    ``probability``: the share of matching launches that fail (drawn from the compute's seed).
    ``hits``: how many launches this rule failed.
    """

    instance_type: str | None = None
    zone: str | None = None
    remaining: int | None = None
    quota: bool = False
    available: int | None = None
    setting: str | None = None
    probability: float = 1.0
    hits: int = 0

    def matches(self, spec: InstanceSpec) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.instance_type is not None and not re.search(self.instance_type, spec.instance_type):
            return False
        return self.zone is None or self.zone == spec.zone


@attrs.frozen
class ComputeChange:
    """What a watcher of an ``InMemoryCompute`` is told: an instance was created, preempted
    on demand (``preempt``) or terminated. ``ready_at`` is when it is (or was) ``RUNNING``;
    ``preempt_at`` when it is reclaimed, known in advance for random preemptions."""

    kind: Literal["created", "preempted", "terminated"]
    instance: Instance
    ready_at: float
    preempt_at: float | None


@attrs.define
class _Vm:
    instance: Instance
    spec: InstanceSpec
    ready_at: float
    preempt_at: float | None = None
    # One Instance per state, built once: listing a large pool often must stay cheap.
    views: dict[InstanceState, Instance] = attrs.field(factory=dict)

    def view(self, state: InstanceState) -> Instance:
        instance = self.views.get(state)
        if instance is None:
            instance = self.views[state] = attrs.evolve(self.instance, state=state)
        return instance

    def change(self, kind: Literal["created", "preempted", "terminated"]) -> ComputeChange:
        return ComputeChange(kind, self.instance, self.ready_at, self.preempt_at)


class InMemoryCompute:
    """The ``Compute`` port on simulated VMs.

    Args:
        catalog: offers and zones that exist (default: the bundled catalog of every provider).
        clock: anything with ``now()``; a ``VirtualClock`` makes boots and preemptions
            happen on virtual time.
        boot_delay_s: seconds from ``create_instance`` until the instance is ``RUNNING``.
        preemption_rate_per_hour: expected preemptions per spot instance per hour (Poisson);
            0 disables random preemption.
        seed: seeds the random preemption times.
    """

    provider = "memory"

    def __init__(
        self,
        catalog: Catalog | None = None,
        *,
        clock: Clock | None = None,
        boot_delay_s: float = 30.0,
        preemption_rate_per_hour: float = 0.0,
        seed: int = 0,
        api_latency_s: float = 0.0,
        api_concurrency: int = 8,
        pool_preemption_rate_per_hour: float = 0.0,
    ) -> None:
        if min(boot_delay_s, preemption_rate_per_hour, api_latency_s) < 0 or (
            pool_preemption_rate_per_hour < 0
        ):
            raise ValueError(
                "boot_delay_s, preemption_rate_per_hour and api_latency_s must be non-negative"
            )
        self.catalog = catalog if catalog is not None else bundled_catalog("all")
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.boot_delay_s = boot_delay_s
        self.preemption_rate_per_hour = preemption_rate_per_hour
        self.capacity_rules: list[CapacityRule] = []
        self.launched: list[InstanceSpec] = []
        self.pool_preemption_rate_per_hour = pool_preemption_rate_per_hour
        self._seed = seed
        #: (type, zone) -> the times spot reclaim waves hit that capacity pool, generated as
        #: needed from a generator of its own: the same seed gives the same waves whatever
        #: else the simulation does.
        self._waves: dict[tuple[str, str], tuple[random.Random, list[float]]] = {}
        self.api_latency_s = api_latency_s
        #: When each of the simulated API's ``api_concurrency`` workers is free again.
        self._api_free_at = [0.0] * max(1, api_concurrency)
        #: Launch calls made (``create_instance`` and ``create_instances``).
        self.launch_calls = 0
        self._random = random.Random(seed)
        # A generator of its own: injected capacity errors do not move the preemption times.
        self._capacity_random = random.Random(f"capacity:{seed}")
        self._ids = itertools.count(1)
        self._vms: dict[str, _Vm] = {}
        self._lock = threading.Lock()
        self._watchers: list[Callable[[ComputeChange], None]] = []
        self._zone_region = {
            zone: region
            for region in self.catalog.region_names()
            for zone in self.catalog.zones(region)
        }

    # -- knobs for tests and simulation ---------------------------------------------------

    def inject_capacity_error(
        self,
        *,
        instance_type: str | None = None,
        zone: str | None = None,
        times: int | None = None,
        quota: bool = False,
        probability: float = 1.0,
    ) -> CapacityRule:
        """Make launches of matching type/zone fail ``times`` times (``None``: always), each
        with ``probability`` (seeded)."""
        rule = CapacityRule(instance_type, zone, times, quota, probability=probability)
        with self._lock:
            self.capacity_rules.append(rule)
        return rule

    def inject_rejection(
        self, *, setting: str, instance_type: str | None = None, zone: str | None = None
    ) -> CapacityRule:
        """Make launches of matching type/zone fail for good, as an unknown image would."""
        rule = CapacityRule(instance_type, zone, None, setting=setting)
        with self._lock:
            self.capacity_rules.append(rule)
        return rule

    def limit_capacity(
        self, instances: int, *, instance_type: str | None = None, zone: str | None = None
    ) -> CapacityRule:
        """Let only ``instances`` more matching instances start (whatever rules come after);
        later launches get fewer, then a capacity error."""
        rule = CapacityRule(instance_type, zone, None, available=instances)
        with self._lock:
            self.capacity_rules.append(rule)
        return rule

    def watch(self, callback: Callable[[ComputeChange], None]) -> None:
        """Call ``callback`` on every creation, on-demand preemption and termination.

        Random preemption times are known at creation (``ComputeChange.preempt_at``), so a
        simulation learns every state change without listing the pool (O(changes)).
        """
        self._watchers.append(callback)

    def _notify(self, changes: Sequence[ComputeChange]) -> None:
        for change in changes:
            for callback in self._watchers:
                callback(change)

    def clear_capacity_errors(self) -> None:
        with self._lock:
            self.capacity_rules.clear()

    def preempt(self, instance_ids: Sequence[str]) -> None:
        """Reclaim these instances now, as the provider would a spot VM."""
        now = self.clock.now()
        changes = []
        with self._lock:
            for instance_id in instance_ids:
                vm = self._vms.get(instance_id)
                if vm is None:
                    raise ProviderError(f"no simulated instance {instance_id!r} to preempt")
                if vm.preempt_at is None or vm.preempt_at > now:
                    vm.preempt_at = now
                    changes.append(vm.change("preempted"))
        self._notify(changes)

    def preempt_fraction(self, fraction: float, job_id: str | None = None) -> list[str]:
        """Preempt ``fraction`` (0..1) of the live instances, oldest first; returns their ids."""
        live = [
            i.instance_id
            for i in self.list_instances(job_id)
            if i.state in (InstanceState.PENDING, InstanceState.RUNNING)
        ]
        chosen = live[: round(len(live) * min(max(fraction, 0.0), 1.0))]
        self.preempt(chosen)
        return chosen

    # -- the Compute port -----------------------------------------------------------------

    def create_instance(self, spec: InstanceSpec) -> Instance:
        return self.create_instances(spec, 1)[0]

    def create_instances(self, spec: InstanceSpec, count: int) -> list[Instance]:
        if count < 1:
            raise ValueError("count must be at least 1")
        region = self._zone_region.get(spec.zone)
        if region is None:
            raise RejectedError(
                f"zone {spec.zone!r} is not in the instance catalog; "
                f"known zones: {', '.join(sorted(self._zone_region)) or 'none'}",
                setting="zone",
            )
        offer = next(
            (
                o
                for _p, o in self.catalog.offers
                if o.name == spec.instance_type
                and o.region == region
                and o.zone in (None, spec.zone)
            ),
            None,
        )
        if offer is None:
            raise RejectedError(
                f"instance type {spec.instance_type!r} is not offered in {spec.zone} "
                "in the instance catalog",
                setting="instance_types",
            )
        if spec.use_spot and offer.spot_price_per_hour_usd is None:
            raise CapacityError(
                f"{spec.instance_type} cannot run as spot in {spec.zone}",
                instance_type=spec.instance_type,
                zone=spec.zone,
            )
        now = self.clock.now()
        created = []
        with self._lock:
            self.launch_calls += 1
            count = self._admit(spec, count)
            # The call waits for a free API worker, then takes api_latency_s.
            worker = min(range(len(self._api_free_at)), key=self._api_free_at.__getitem__)
            served_at = max(now, self._api_free_at[worker]) + self.api_latency_s
            self._api_free_at[worker] = served_at
            price = spec.price_per_hour_usd
            if price is None:
                price = (
                    offer.spot_price_per_hour_usd if spec.use_spot else offer.price_per_hour_usd
                ) or 0.0
            for _ in range(count):
                number = next(self._ids)
                instance = Instance(
                    instance_id=f"mem-{number:06d}",
                    name=f"{spec.job_id}-{number:06d}",
                    job_id=spec.job_id,
                    instance_type=spec.instance_type,
                    zone=spec.zone,
                    state=InstanceState.PENDING,
                    is_spot=spec.use_spot,
                    price_per_hour_usd=price,
                    launched_at=now,
                )
                preempt_at = None
                if spec.use_spot and self.preemption_rate_per_hour > 0:
                    preempt_at = served_at + self._random.expovariate(
                        self.preemption_rate_per_hour / 3600
                    )
                if spec.use_spot and self.pool_preemption_rate_per_hour > 0:
                    wave = self._next_wave((spec.instance_type, spec.zone), served_at)
                    preempt_at = wave if preempt_at is None else min(preempt_at, wave)
                vm = _Vm(instance, spec, served_at + self.boot_delay_s, preempt_at)
                self._vms[instance.instance_id] = vm
                self.launched.append(spec)
                created.append(vm)
        self._notify([vm.change("created") for vm in created])
        return [self._current(vm, now) for vm in created]

    def _next_wave(self, pool: tuple[str, str], after: float) -> float:
        """The first reclaim wave of ``pool`` after ``after``: every spot instance of a
        capacity pool is reclaimed at once (``pool_preemption_rate_per_hour`` waves per pool
        per hour, Poisson)."""
        if pool not in self._waves:
            generator = random.Random(f"waves:{self._seed}:{pool[0]}:{pool[1]}")
            self._waves[pool] = (generator, [])
        generator, times = self._waves[pool]
        rate_per_s = self.pool_preemption_rate_per_hour / 3600
        while not times or times[-1] <= after:
            times.append((times[-1] if times else 0.0) + generator.expovariate(rate_per_s))
        return times[bisect.bisect_right(times, after)]

    def _admit(self, spec: InstanceSpec, count: int) -> int:
        """How many of ``count`` instances the injected rules let start; raises when none."""
        for rule in self.capacity_rules:
            if not rule.matches(spec):
                continue
            if rule.setting is not None:
                raise RejectedError(
                    f"simulated rejection of {spec.instance_type} in {spec.zone}; fix "
                    f"{rule.setting}",
                    setting=rule.setting,
                )
            if rule.available:
                # Capacity set aside for these launches: later rules do not apply to them.
                count = min(count, rule.available)
                rule.available -= count
                return count
            if rule.probability < 1.0 and self._capacity_random.random() >= rule.probability:
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
            rule.hits += 1
            kind = QuotaError if rule.quota else CapacityError
            what = "quota exceeded" if rule.quota else "insufficient capacity"
            raise kind(
                f"simulated {what} for {spec.instance_type} in {spec.zone}",
                instance_type=spec.instance_type,
                zone=spec.zone,
            )
        return count

    def list_instances(self, job_id: str | None) -> list[Instance]:
        now = self.clock.now()
        with self._lock:
            vms = list(self._vms.values())
        return [
            self._current(vm, now) for vm in vms if job_id is None or vm.instance.job_id == job_id
        ]

    def terminate(self, instance_ids: Sequence[str]) -> None:
        changes = []
        with self._lock:
            for instance_id in instance_ids:
                vm = self._vms.pop(instance_id, None)
                if vm is not None:
                    changes.append(vm.change("terminated"))
        self._notify(changes)

    def list_regions(self) -> list[Region]:
        return [
            Region(name=r, zones=self.catalog.zones(r), description="simulated")
            for r in self.catalog.region_names()
        ]

    def list_images(self, architecture: str | None = None) -> list[Image]:
        return [i for i in MEMORY_IMAGES if architecture in (None, i.architecture)]

    def default_image(self, architecture: str) -> str:
        for image in MEMORY_IMAGES:
            if image.architecture == architecture:
                return image.name
        raise ProviderError(f"no simulated image for architecture {architecture!r}")

    def startup_log_hint(self, instance_id: str) -> str | None:
        """Simulated instances run no startup script."""
        return None

    def _current(self, vm: _Vm, now: float) -> Instance:
        if vm.preempt_at is not None and now >= vm.preempt_at:
            state = InstanceState.PREEMPTED
        elif now < vm.ready_at:
            state = InstanceState.PENDING
        else:
            state = InstanceState.RUNNING
        return vm.view(state)

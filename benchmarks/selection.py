"""Benchmark: instance selection over a large catalog.

Target: ``select_instance_type`` over >= 50,000 offers with a dozen constraints in <= 200 ms.

    .venv/bin/python benchmarks/selection.py [--offers 50400] [--seed 7] [--repeat 5]

The catalog is synthetic and reproducible from the seed: families x sizes x zones, with
memory ratios, CPU families, ranks, local SSD, boot disks and on-demand/spot prices (some
missing) drawn from small realistic sets.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import attrs

from cloud_tasks.domain.constraints import InstanceConstraints
from cloud_tasks.domain.offers import BootDiskOption, InstanceOffer
from cloud_tasks.domain.selection import filter_offers, rank_offers, select_instance_type

SERIES = ("n1", "n2", "n2d", "e2", "c2", "c3", "t2d", "t2a", "m5", "c6a", "c7g", "r6i")
RATIOS = {"standard": 4.0, "highcpu": 1.0, "highmem": 8.0, "custom": 2.0, "large": 6.0}
SIZES = (1, 2, 4, 8, 16, 32, 48, 64, 96, 128)
CPU_FAMILIES = ("Intel Cascade Lake", "Intel Ice Lake", "AMD Milan", "AMD Genoa", "Ampere Altra")
DISKS = (("pd-standard", 0.00005), ("pd-balanced", 0.000137), ("pd-ssd", 0.000233))


def make_catalog(count: int, seed: int) -> list[InstanceOffer]:
    """``count`` offers drawn reproducibly from ``seed``."""
    rnd = random.Random(seed)
    offers: list[InstanceOffer] = []
    zone_index = 0
    while len(offers) < count:
        region = f"region{zone_index // 3}"
        zone = f"{region}-{'abc'[zone_index % 3]}"
        zone_index += 1
        regional_factor = rnd.uniform(0.9, 1.3)
        for series in SERIES:
            arm = series in ("t2a", "c7g")
            for kind, ratio in RATIOS.items():
                for vcpus in SIZES:
                    if len(offers) >= count:
                        break
                    price = round(vcpus * (0.02 + ratio * 0.006) * regional_factor, 6)
                    disks = tuple(
                        BootDiskOption(name, gib_hour)
                        for name, gib_hour in DISKS
                        if rnd.random() < 0.8
                    )
                    offers.append(
                        InstanceOffer(
                            name=f"{series}-{kind}-{vcpus}",
                            vcpus=vcpus,
                            memory_gib=vcpus * ratio,
                            architecture="arm64" if arm else "x86_64",
                            region=region,
                            zone=zone,
                            cpu_family=rnd.choice(CPU_FAMILIES[4:] if arm else CPU_FAMILIES[:4]),
                            cpu_rank=rnd.randint(0, 9),
                            local_ssd_gib=rnd.choice((0.0, 0.0, 375.0, 750.0, 1500.0)),
                            boot_disks=disks,
                            price_per_hour_usd=price if rnd.random() < 0.97 else None,
                            spot_price_per_hour_usd=(
                                round(price * rnd.uniform(0.2, 0.4), 6)
                                if rnd.random() < 0.9
                                else None
                            ),
                        )
                    )
    return offers


GPUS = (("nvidia-t4", 16.0), ("nvidia-l4", 24.0), ("nvidia-a100", 40.0), ("nvidia-h100", 80.0))


def with_gpus(offers: list[InstanceOffer], seed: int, share: float = 0.2) -> list[InstanceOffer]:
    """``offers`` with GPUs on about ``share`` of them (a separate stream: the rest is kept)."""
    rnd = random.Random(seed + 1)
    result = []
    for offer in offers:
        if rnd.random() < share:
            gpu_type, memory = rnd.choice(GPUS)
            gpus = rnd.choice((1, 1, 2, 4, 8))
            extra = gpus * rnd.uniform(0.3, 3.0)
            offer = attrs.evolve(
                offer,
                gpu_type=gpu_type,
                gpus=gpus,
                gpu_memory_gib=memory,
                price_per_hour_usd=None
                if offer.price_per_hour_usd is None
                else offer.price_per_hour_usd + extra,
                spot_price_per_hour_usd=None
                if offer.spot_price_per_hour_usd is None
                else offer.spot_price_per_hour_usd + extra / 3,
            )
        result.append(offer)
    return result


NARROW = InstanceConstraints(
    architecture="x86_64",
    instance_types=("^n2d?-", "^c3-standard", r"^(m5|r6i)-highmem-\d+$"),
    min_cpu_rank=2,
    min_cpu=4,
    max_cpu=64,
    min_total_memory=8.0,
    min_memory_per_cpu=2.0,
    max_memory_per_cpu=8.0,
    cpus_per_task=2.0,
    min_memory_per_task=4.0,
    max_tasks_per_instance=24,
    boot_disk_types=("pd-balanced", "pd-ssd"),
    boot_disk_per_task=2.0,
    use_spot=True,
)
# The worst case: every constraint is checked and a quarter of the catalog reaches the price
# comparison (the pattern matches every name).
BROAD = attrs.evolve(NARROW, instance_types=(r"-\d+$",), min_cpu_rank=2)
# GPU constraints on top of the broad case: a fifth of the offers carry GPUs.
GPU = attrs.evolve(BROAD, gpu_type=("t4|l4", "a100"), gpus_per_task=1.0, min_gpu_memory=16.0)
SCENARIOS = {"narrow": NARROW, "broad": BROAD, "gpu": GPU}


def _time_ms(function: object, repeat: int) -> list[float]:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()  # type: ignore[operator]
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offers", type=int, default=50_400)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    catalog = with_gpus(make_catalog(args.offers, args.seed), args.seed)
    for scenario, constraints in SCENARIOS.items():
        eligible = filter_offers(catalog, constraints)
        chosen = select_instance_type(catalog, constraints)
        set_fields = sum(
            getattr(constraints, field.name) != field.default
            for field in attrs.fields(InstanceConstraints)
        )
        print(
            f"[{scenario}] offers: {len(catalog)}, constraints set: {set_fields}, "
            f"eligible: {len(eligible)}; chosen: {chosen.name} in {chosen.offer.zone}, "
            f"{chosen.tasks_per_instance} slots, {chosen.price_per_hour_usd:.4f} USD/h, "
            f"{chosen.boot_disk_gb} GB {chosen.boot_disk_type}"
        )
        for label, function in (
            ("select_instance_type", lambda c=constraints: select_instance_type(catalog, c)),
            ("filter_offers", lambda c=constraints: filter_offers(catalog, c)),
            ("rank_offers", lambda c=constraints: rank_offers(catalog, c)),
        ):
            timings = _time_ms(function, args.repeat)
            print(
                f"[{scenario}] {label:22s} median {statistics.median(timings):7.1f} ms  "
                f"best {min(timings):7.1f} ms"
            )
    print("target: select_instance_type <= 200 ms")


if __name__ == "__main__":
    main()

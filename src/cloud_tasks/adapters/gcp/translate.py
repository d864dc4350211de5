"""Pure translations from Compute Engine and Cloud Billing Catalog payloads (REST JSON shape).

No SDK import here: adapters convert the client's messages to plain dicts first, so these
functions are unit-tested on recorded-shape payloads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import attrs

from cloud_tasks.domain.offers import BootDiskOption, InstanceOffer
from cloud_tasks.domain.text import collapse_whitespace
from cloud_tasks.exceptions import (
    CapacityError,
    CloudTasksError,
    CredentialsError,
    ProviderError,
    QuotaError,
    RejectedError,
)
from cloud_tasks.ports import Instance, InstanceState

COMPUTE_SERVICE_ID = "6F81-5844-456A"
JOB_LABEL = "rms-cloud-tasks-job-id"
MANAGED_LABEL = "rms-cloud-tasks-managed"
PRICE_METADATA = "rms-cloud-tasks-price-per-hour"
HOURS_PER_MONTH = 730.0
LOCAL_SSD_PARTITION_GIB = 375.0
UBUNTU_PROJECT = "ubuntu-os-cloud"
UBUNTU_FAMILIES = {"x86_64": "ubuntu-2404-lts-amd64", "arm64": "ubuntu-2404-lts-arm64"}

#: family: (words the billing SKU descriptions use, CPU name, CPU rank)
FAMILIES: dict[str, tuple[str, str, int]] = {
    "e2": ("E2", "Intel/AMD (E2)", 2),
    "n1": ("N1 Predefined", "Intel Skylake (N1)", 2),
    "n2": ("N2", "Intel Cascade Lake", 4),
    "n2d": ("N2D AMD", "AMD Milan", 4),
    "n4": ("N4", "Intel Emerald Rapids", 6),
    "t2d": ("T2D AMD", "AMD Milan", 5),
    "t2a": ("T2A Arm", "Ampere Altra", 4),
    "c2": ("Compute optimized", "Intel Cascade Lake", 5),
    "c2d": ("C2D AMD", "AMD Milan", 6),
    "c3": ("C3", "Intel Sapphire Rapids", 7),
    "c3d": ("C3D", "AMD Genoa", 7),
    "c4": ("C4", "Intel Emerald Rapids", 8),
    "c4a": ("C4A Arm", "Google Axion", 7),
    "m1": ("Memory-optimized", "Intel Skylake (M1)", 3),
    "a2": ("A2", "Intel Cascade Lake", 4),
    "a3": ("A3", "Intel Sapphire Rapids", 7),
    "g2": ("G2", "Intel Cascade Lake", 4),
}
#: GPU model as the billing SKUs name it ("Nvidia Tesla T4 GPU running in ...") → the
#: accelerator type Compute Engine names it, and its memory in GiB.
GPU_SKU_MODELS: dict[str, tuple[str, float]] = {
    "Tesla T4": ("nvidia-tesla-t4", 16.0),
    "Tesla V100": ("nvidia-tesla-v100", 16.0),
    "Tesla P100": ("nvidia-tesla-p100", 16.0),
    "Tesla P4": ("nvidia-tesla-p4", 8.0),
    "Tesla A100": ("nvidia-tesla-a100", 40.0),
    "A100 80GB": ("nvidia-a100-80gb", 80.0),
    "Tesla A100 80GB": ("nvidia-a100-80gb", 80.0),
    "L4": ("nvidia-l4", 24.0),
    "H100 80GB": ("nvidia-h100-80gb", 80.0),
}
GPU_MEMORY_GIB: dict[str, float] = dict(GPU_SKU_MODELS.values())
#: GPUs an N1 machine can have attached: type → {count: most vCPUs of the machine}.
N1_ATTACHABLE: dict[str, dict[int, int]] = {
    "nvidia-tesla-t4": {1: 24, 2: 48, 4: 96},
    "nvidia-tesla-v100": {1: 12, 2: 24, 4: 48, 8: 96},
    "nvidia-tesla-p100": {1: 16, 2: 32, 4: 64},
}
_GPU_SKU = re.compile(
    r"^(?:Spot Preemptible )?Nvidia (?P<model>.+?) GPU (?:attached to .*?)?running in "
)
_ARM_FAMILIES = frozenset({"t2a", "c4a", "n4a"})
_HYPERDISK_ONLY = frozenset({"c4", "c4a", "n4"})
_DISKS = {
    "Balanced PD Capacity": "pd-balanced",
    "SSD backed PD Capacity": "pd-ssd",
    "Storage PD Capacity": "pd-standard",
    "Hyperdisk Balanced Capacity": "hyperdisk-balanced",
}


def family_of(machine_type: str) -> str:
    return machine_type.split("-", 1)[0]


def boot_disk_types(family: str) -> tuple[str, ...]:
    """Boot disk types a family supports (the API does not say; from the machine docs)."""
    if family in _HYPERDISK_ONLY:
        return ("hyperdisk-balanced",)
    if family in ("c3", "c3d"):
        return ("pd-balanced", "pd-ssd", "hyperdisk-balanced")
    return ("pd-balanced", "pd-ssd", "pd-standard")


@attrs.frozen
class MachineTypeInfo:
    """What the machine types list says about one type."""

    name: str
    vcpus: int
    memory_gib: float
    architecture: str
    local_ssd_gib: float
    shared_cpu: bool
    gpu_type: str = ""
    gpus: int = 0


def machine_type_info(item: Mapping[str, Any]) -> MachineTypeInfo:
    """One ``machineTypes`` item."""
    name = str(item["name"])
    arch = str(item.get("architecture") or "").upper()
    if arch == "ARM64" or (not arch.startswith("X86") and family_of(name) in _ARM_FAMILIES):
        architecture = "arm64"
    else:
        architecture = "x86_64"
    partitions = int((item.get("bundledLocalSsds") or {}).get("partitionCount") or 0)
    accelerators = item.get("accelerators") or []
    return MachineTypeInfo(
        name=name,
        vcpus=int(item["guestCpus"]),
        memory_gib=round(int(item["memoryMb"]) / 1024.0, 3),
        architecture=architecture,
        local_ssd_gib=partitions * LOCAL_SSD_PARTITION_GIB,
        shared_cpu=bool(item.get("isSharedCpu", False)),
        gpu_type=str(accelerators[0].get("guestAcceleratorType", "")) if accelerators else "",
        gpus=sum(int(a.get("guestAcceleratorCount") or 0) for a in accelerators),
    )


def money(value: Mapping[str, Any]) -> float:
    """A ``google.type.Money`` (``units`` may be a string, ``nanos`` an int) in currency units."""
    return int(value.get("units") or 0) + int(value.get("nanos") or 0) / 1e9


def unit_price(sku: Mapping[str, Any]) -> tuple[float, str] | None:
    """The first positive tier price of a SKU and its usage unit (``h``, ``GiBy.h``, ...)."""
    for info in sku.get("pricingInfo", []):
        expression = info.get("pricingExpression", {})
        for tier in expression.get("tieredRates", []):
            price = money(tier.get("unitPrice", {}))
            if price > 0:
                return price, str(expression.get("usageUnit", ""))
    return None


def _per_hour(price: float, unit: str) -> float:
    return price / HOURS_PER_MONTH if unit.endswith(".mo") else price


@attrs.frozen
class RegionRates:
    """Billing rates of one region, per hour.

    ``cores``/``ram``: (family, spot) → USD per vCPU-hour / GiB-hour; ``local_ssd``: spot →
    USD per GiB-hour; ``disks``: disk type → USD per GiB-hour; ``gpus``: (accelerator type,
    spot) → USD per GPU-hour.
    """

    cores: Mapping[tuple[str, bool], float]
    ram: Mapping[tuple[str, bool], float]
    local_ssd: Mapping[bool, float]
    disks: Mapping[str, float]
    gpus: Mapping[tuple[str, bool], float] = attrs.field(factory=dict)


_SKU_NAMES = {words: family for family, (words, _cpu, _rank) in FAMILIES.items()}
_RESOURCE = re.compile(r"^(?P<words>.+?) (?:Instance )?(?P<kind>Core|Ram) running in ")


def region_rates(skus: Iterable[Mapping[str, Any]], region: str) -> RegionRates:
    """Pick the core, RAM, local SSD and boot disk SKUs of ``region`` out of the catalog."""
    cores: dict[tuple[str, bool], float] = {}
    ram: dict[tuple[str, bool], float] = {}
    local_ssd: dict[bool, float] = {}
    disks: dict[str, float] = {}
    gpus: dict[tuple[str, bool], float] = {}
    for sku in skus:
        if region not in sku.get("serviceRegions", []):
            continue
        usage = sku.get("category", {}).get("usageType")
        if usage not in ("OnDemand", "Preemptible"):
            continue
        spot = usage == "Preemptible"
        priced = unit_price(sku)
        if priced is None:
            continue
        price = _per_hour(*priced)
        description = str(sku.get("description", ""))
        plain = description.removeprefix("Spot Preemptible ")
        match = _RESOURCE.match(plain)
        if match and match.group("words") in _SKU_NAMES:
            family = _SKU_NAMES[match.group("words")]
            (cores if match.group("kind") == "Core" else ram)[(family, spot)] = price
            continue
        gpu = _GPU_SKU.match(description)
        if gpu and gpu.group("model") in GPU_SKU_MODELS:
            gpus[(GPU_SKU_MODELS[gpu.group("model")][0], spot)] = price
            continue
        if description.startswith("SSD backed Local Storage"):
            local_ssd[spot] = price
            continue
        for prefix, disk_type in _DISKS.items():
            if description.startswith(prefix) and not spot:
                disks[disk_type] = price
    return RegionRates(cores, ram, local_ssd, disks, gpus)


def build_offers(
    types: Iterable[MachineTypeInfo], rates: RegionRates, region: str
) -> list[InstanceOffer]:
    """One offer per machine type of the region whose family has core and RAM prices.

    Shared-core types (``e2-micro``...) and families without billing SKUs are left out. A type
    with built-in GPUs (A2, A3, G2) adds its GPUs' own SKU price, and is left out without one;
    each N1 type is also offered with the GPUs that can be attached to it
    (:data:`N1_ATTACHABLE`) where the region prices them, machine plus GPUs.
    """
    offers = []
    for info in types:
        family = family_of(info.name)
        if info.shared_cpu or family not in FAMILIES:
            continue
        core, gib = rates.cores.get((family, False)), rates.ram.get((family, False))
        if core is None or gib is None:
            continue
        ssd_on_demand = info.local_ssd_gib * rates.local_ssd.get(False, 0.0)
        price = info.vcpus * core + info.memory_gib * gib + ssd_on_demand
        spot_core, spot_gib = rates.cores.get((family, True)), rates.ram.get((family, True))
        spot = None
        if spot_core is not None and spot_gib is not None:
            ssd_spot = info.local_ssd_gib * rates.local_ssd.get(
                True, rates.local_ssd.get(False, 0.0)
            )
            spot = round(info.vcpus * spot_core + info.memory_gib * spot_gib + ssd_spot, 6)
        if info.gpus:
            gpu_rate = rates.gpus.get((info.gpu_type, False))
            if gpu_rate is None:
                continue
            price += info.gpus * gpu_rate
            spot_gpu = rates.gpus.get((info.gpu_type, True))
            spot = (
                None if spot is None or spot_gpu is None else round(spot + info.gpus * spot_gpu, 6)
            )
        _words, cpu, rank = FAMILIES[family]
        offers.append(
            InstanceOffer(
                name=info.name,
                vcpus=info.vcpus,
                memory_gib=info.memory_gib,
                architecture=info.architecture,
                region=region,
                cpu_family=cpu,
                cpu_rank=rank,
                local_ssd_gib=info.local_ssd_gib,
                boot_disks=tuple(
                    BootDiskOption(d, rates.disks[d])
                    for d in boot_disk_types(family)
                    if d in rates.disks
                ),
                price_per_hour_usd=round(price, 6),
                spot_price_per_hour_usd=spot,
                gpu_type=info.gpu_type,
                gpus=info.gpus,
                gpu_memory_gib=GPU_MEMORY_GIB.get(info.gpu_type, 0.0) if info.gpus else 0.0,
            )
        )
        if family == "n1":
            offers.extend(_with_attached_gpus(offers[-1], rates))
    return offers


def _with_attached_gpus(machine: InstanceOffer, rates: RegionRates) -> list[InstanceOffer]:
    """``machine`` (an N1 offer) with each GPU count that may be attached to it."""
    offers = []
    for gpu_type, counts in N1_ATTACHABLE.items():
        rate = rates.gpus.get((gpu_type, False))
        if rate is None:
            continue
        spot_rate = rates.gpus.get((gpu_type, True))
        for count, most_vcpus in counts.items():
            if machine.vcpus > most_vcpus:
                continue
            spot = machine.spot_price_per_hour_usd
            offers.append(
                attrs.evolve(
                    machine,
                    price_per_hour_usd=round((machine.price_per_hour_usd or 0.0) + count * rate, 6),
                    spot_price_per_hour_usd=None
                    if spot is None or spot_rate is None
                    else round(spot + count * spot_rate, 6),
                    gpu_type=gpu_type,
                    gpus=count,
                    gpu_memory_gib=GPU_MEMORY_GIB[gpu_type],
                    attach_gpus=True,
                )
            )
    return offers


_STATES = {
    "PROVISIONING": InstanceState.PENDING,
    "STAGING": InstanceState.PENDING,
    "REPAIRING": InstanceState.PENDING,
    "RUNNING": InstanceState.RUNNING,
    "STOPPING": InstanceState.STOPPING,
    "SUSPENDING": InstanceState.STOPPING,
    "SUSPENDED": InstanceState.TERMINATED,
    "STOPPED": InstanceState.TERMINATED,
    "TERMINATED": InstanceState.TERMINATED,
}


def _basename(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def instance_from_gce(item: Mapping[str, Any]) -> Instance:
    """One ``instances`` item as an ``Instance``; its id is the instance name."""
    labels = item.get("labels") or {}
    scheduling = item.get("scheduling") or {}
    is_spot = scheduling.get("provisioningModel") == "SPOT" or bool(scheduling.get("preemptible"))
    state = _STATES.get(str(item.get("status", "")), InstanceState.FAILED)
    if state is InstanceState.TERMINATED and is_spot:
        # A spot VM we did not delete stopped on its own: it was preempted.
        state = InstanceState.PREEMPTED
    metadata = {m.get("key"): m.get("value") for m in (item.get("metadata") or {}).get("items", [])}
    try:
        price = float(metadata.get(PRICE_METADATA) or 0.0)
    except ValueError:
        price = 0.0
    created = item.get("creationTimestamp")
    try:
        launched = datetime.fromisoformat(str(created)).timestamp() if created else 0.0
    except ValueError:
        launched = 0.0
    return Instance(
        instance_id=str(item["name"]),
        name=str(item["name"]),
        job_id=str(labels.get(JOB_LABEL, "")),
        instance_type=_basename(str(item.get("machineType", ""))),
        zone=_basename(str(item.get("zone", ""))),
        state=state,
        is_spot=is_spot,
        price_per_hour_usd=price,
        launched_at=launched,
    )


_CAPACITY = ("ZONE_RESOURCE_POOL_EXHAUSTED", "RESOURCE_POOL_EXHAUSTED", "STOCKOUT")
_QUOTA = ("QUOTA_EXCEEDED", "quotaExceeded", "RESOURCE_EXHAUSTED")
#: Operation error codes another try cannot fix.
_REJECTED_CODES = (
    "RESOURCE_NOT_FOUND",
    "INVALID_FIELD_VALUE",
    "INVALID_ARGUMENT",
    "INVALID_USAGE",
    "BAD_REQUEST",
    "CONDITION_NOT_MET",
)
#: Words of a rejection → (the setting it is about, what to do); the first match wins.
_SETTINGS: tuple[tuple[str, str, str], ...] = (
    ("serviceaccount", "service_account", "name a service account of the project"),
    ("service account", "service_account", "name a service account of the project"),
    ("/images/", "image", "set 'image' to an image that exists ('cloud_tasks list_images')"),
    ("image", "image", "set 'image' to an image that exists ('cloud_tasks list_images')"),
    ("machinetype", "instance_types", "pick another type ('list_instance_types')"),
    ("subnetwork", "network", "use a subnetwork of this region"),
    ("network", "network", "use a VPC network of the project"),
    ("metadata", "startup_script", "shorten the startup script"),
    ("disk", "boot disk", "check boot_disk_types and the disk size"),
    ("projects/", "project_id", "check project_id"),
)
CREDENTIALS_HINT = (
    "check Application Default Credentials (gcloud auth application-default login) or "
    "credentials_file in the config, and the account's roles; see docs/providers.md"
)


def translate_error(
    text: str, operation: str, *, status: int = 0, instance_type: str = "", zone: str = ""
) -> CloudTasksError:
    """Our exception for a Compute Engine error whose codes/messages are in ``text`` (made
    one line)."""
    text = collapse_whitespace(text)
    where = f" for {instance_type} in {zone}" if instance_type or zone else ""
    if any(code in text for code in _CAPACITY):
        return CapacityError(
            f"GCP has no capacity{where} ({text}); trying another zone or type may help",
            instance_type=instance_type,
            zone=zone,
        )
    if any(code in text for code in _QUOTA):
        return QuotaError(
            f"GCP quota reached{where} ({text}); request more quota or lower max_instances",
            instance_type=instance_type,
            zone=zone,
        )
    if status in (401, 403):
        return CredentialsError(f"GCP refused {operation} ({text}); {CREDENTIALS_HINT}")
    if status in (400, 404) or any(code in text for code in _REJECTED_CODES):
        lowered = text.lower()
        setting, fix = next(
            ((name, what) for words, name, what in _SETTINGS if words in lowered),
            ("", "check the configuration"),
        )
        about = f" (setting: {setting})" if setting else ""
        return RejectedError(
            f"GCP refused {operation}{where} ({text}); {fix}{about}", setting=setting
        )
    return ProviderError(f"GCP {operation} failed ({text})")


def operation_error_text(operation: Mapping[str, Any]) -> str | None:
    """The errors of a finished operation as one line, or ``None`` when it succeeded."""
    errors = (operation.get("error") or {}).get("errors") or []
    if not errors:
        return None
    return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors)

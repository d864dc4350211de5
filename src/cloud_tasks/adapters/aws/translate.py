"""Pure translations from EC2 and Pricing API payloads to offers and instances.

No SDK import here: the functions take the plain dicts boto3 returns, so they are unit-tested
on recorded-shape payloads.
"""

from __future__ import annotations

import json
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

JOB_TAG = "rms-cloud-tasks-job-id"
MANAGED_TAG = "rms-cloud-tasks-managed"
PRICE_TAG = "rms-cloud-tasks-price-per-hour"
HOURS_PER_MONTH = 730.0
BOOT_DISK_TYPES: tuple[str, ...] = ("gp3", "gp2")

#: CPU names by family prefix; the API only gives the manufacturer.
_CPU_FAMILIES: dict[str, str] = {
    "m7i": "Intel Sapphire Rapids",
    "c7i": "Intel Sapphire Rapids",
    "r7i": "Intel Sapphire Rapids",
    "m7a": "AMD Genoa",
    "c7a": "AMD Genoa",
    "r7a": "AMD Genoa",
    "m7g": "AWS Graviton3",
    "c7g": "AWS Graviton3",
    "r7g": "AWS Graviton3",
    "m8g": "AWS Graviton4",
    "c8g": "AWS Graviton4",
    "r8g": "AWS Graviton4",
    "m6i": "Intel Ice Lake",
    "c6i": "Intel Ice Lake",
    "r6i": "Intel Ice Lake",
    "i4i": "Intel Ice Lake",
    "m6a": "AMD Milan",
    "c6a": "AMD Milan",
    "r6a": "AMD Milan",
    "m6g": "AWS Graviton2",
    "c6g": "AWS Graviton2",
    "r6g": "AWS Graviton2",
    "t4g": "AWS Graviton2",
    "m5": "Intel Xeon Platinum 8000",
    "c5": "Intel Xeon Platinum 8000",
    "r5": "Intel Xeon Platinum 8000",
    "t3": "Intel Xeon Platinum 8000",
}

#: EC2 error codes meaning "no capacity for this launch here, now" (try another zone or type).
CAPACITY_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity",
        "Unsupported",
        "SpotMaxPriceTooLow",
        "InsufficientFreeAddressesInSubnet",
    }
)
_QUOTA_CODES = frozenset(
    {
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
        "MaxSpotInstanceCountExceeded",
        "AddressLimitExceeded",
    }
)
_AUTH_CODES = frozenset(
    {
        "AuthFailure",
        "UnauthorizedOperation",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
    }
)
#: Errors another try cannot fix: (code prefix, the setting to change, what to do).
_REJECTED: tuple[tuple[str, str, str], ...] = (
    ("InvalidAMIID", "image", "set 'image' to an AMI id of this region and architecture"),
    ("InvalidInstanceType", "instance_types", "pick another type ('list_instance_types')"),
    ("InvalidSubnet", "subnet", "use a subnet of this region"),
    ("InvalidGroup", "security group", "use a security group of this region"),
    ("InvalidSecurityGroup", "security group", "use a security group of this region"),
    ("InvalidVpcID", "network", "use a VPC of this region"),
    ("VPCIdNotSpecified", "network", "the account has no default VPC; create one"),
    ("InvalidUserData", "startup_script", "check the startup script"),
    ("InvalidBlockDeviceMapping", "boot disk", "check boot_disk_types and the disk size"),
    ("InvalidParameter", "", "check the configuration"),
    ("MissingParameter", "", "check the configuration"),
    ("NoSuchEntity", "", "check the configuration"),
    ("OptInRequired", "account", "subscribe the account to EC2 in this region"),
    ("PendingVerification", "account", "wait until AWS has verified the account"),
    ("Blocked", "account", "contact AWS support"),
)
#: Words of an ``InvalidParameterValue`` message → the setting it is about.
_PARAMETER_SETTINGS: tuple[tuple[str, str, str], ...] = (
    ("iaminstanceprofile", "service_account", "name an existing instance profile"),
    ("instanceprofile", "service_account", "name an existing instance profile"),
    ("instancetype", "instance_types", "pick another type ('list_instance_types')"),
    ("imageid", "image", "set 'image' to an AMI id of this region and architecture"),
    ("userdata", "startup_script", "check the startup script"),
    ("volume", "boot disk", "check boot_disk_types and the disk size"),
)
CREDENTIALS_HINT = (
    "check the AWS credentials (aws configure, AWS_PROFILE, or access_key/secret_key in the "
    "config) and their permissions; see docs/providers.md"
)


@attrs.frozen
class TypeInfo:
    """What ``describe_instance_types`` says about one instance type."""

    name: str
    vcpus: int
    memory_gib: float
    architecture: str
    local_ssd_gib: float
    spot_supported: bool
    cpu_family: str
    cpu_rank: int
    gpu_type: str = ""
    gpus: int = 0
    gpu_memory_gib: float = 0.0


def gpu_fields(item: Mapping[str, Any]) -> dict[str, Any]:
    """GPU type, count and GiB per GPU from an item's ``GpuInfo`` (empty without GPUs).

    The type is ``manufacturer-name`` in lower case (``nvidia-t4``, ``nvidia-a10g``).
    """
    gpus = (item.get("GpuInfo") or {}).get("Gpus") or []
    if not gpus:
        return {}
    first = gpus[0]
    name = "-".join(
        str(part).strip().lower().replace(" ", "-")
        for part in (first.get("Manufacturer"), first.get("Name"))
        if part
    )
    count = sum(int(g.get("Count") or 0) for g in gpus)
    memory = float((first.get("MemoryInfo") or {}).get("SizeInMiB") or 0) / 1024.0
    return {"gpu_type": name, "gpus": count, "gpu_memory_gib": round(memory, 3)} if count else {}


def _family(name: str) -> str:
    return name.split(".", 1)[0]


def cpu_rank(name: str) -> int:
    """The generation in the type name (``m7i.large`` → 7), 0 when there is none."""
    match = re.match(r"[a-z]+(\d+)", _family(name))
    return int(match.group(1)) if match else 0


def cpu_family(name: str, manufacturer: str = "") -> str:
    family = _family(name)
    if family in _CPU_FAMILIES:
        return _CPU_FAMILIES[family]
    prefix = re.sub(r"(?<=\d)[a-z]*$", "", family)
    for suffix in ("i", "a", "g", ""):
        if prefix + suffix in _CPU_FAMILIES and family.startswith(prefix + suffix):
            return _CPU_FAMILIES[prefix + suffix]
    return manufacturer


def type_info(item: Mapping[str, Any]) -> TypeInfo | None:
    """One ``InstanceTypes`` item, or ``None`` when it cannot run our images (not x86_64/arm64)."""
    architectures = item.get("ProcessorInfo", {}).get("SupportedArchitectures", [])
    if "arm64" in architectures:
        architecture = "arm64"
    elif "x86_64" in architectures:
        architecture = "x86_64"
    else:
        return None
    storage = item.get("InstanceStorageInfo") or {}
    ssd_gib = 0.0
    disks = storage.get("Disks") or []
    if any(d.get("Type") == "ssd" for d in disks):
        ssd_gib = float(storage.get("TotalSizeInGB", 0))
    name = str(item["InstanceType"])
    return TypeInfo(
        name=name,
        vcpus=int(item["VCpuInfo"]["DefaultVCpus"]),
        memory_gib=round(float(item["MemoryInfo"]["SizeInMiB"]) / 1024.0, 3),
        architecture=architecture,
        local_ssd_gib=ssd_gib,
        spot_supported="spot" in item.get("SupportedUsageClasses", []),
        cpu_family=cpu_family(name, str(item.get("ProcessorInfo", {}).get("Manufacturer", ""))),
        cpu_rank=cpu_rank(name),
        **gpu_fields(item),
    )


def _first_usd_price(product: Mapping[str, Any], unit: str | None) -> float | None:
    for term in product.get("terms", {}).get("OnDemand", {}).values():
        for dimension in term.get("priceDimensions", {}).values():
            if unit is not None and dimension.get("unit") != unit:
                continue
            usd = dimension.get("pricePerUnit", {}).get("USD")
            if usd is None:
                continue
            value = float(usd)
            if value > 0:
                return value
    return None


def on_demand_prices(price_list: Iterable[str | Mapping[str, Any]]) -> dict[str, float]:
    """Instance type → on-demand USD per hour, from ``get_products`` ``PriceList`` entries.

    The entries are JSON strings (one product each); the cheapest positive hourly price wins
    when a type appears twice.
    """
    prices: dict[str, float] = {}
    for entry in price_list:
        product = json.loads(entry) if isinstance(entry, str) else entry
        name = product.get("product", {}).get("attributes", {}).get("instanceType")
        price = _first_usd_price(product, "Hrs")
        if name and price is not None:
            prices[name] = min(price, prices.get(name) or price)
    return prices


def storage_prices(price_list: Iterable[str | Mapping[str, Any]]) -> dict[str, float]:
    """EBS volume type (``gp3``, ``gp2``) → USD per GiB-hour, from ``get_products`` entries."""
    prices: dict[str, float] = {}
    for entry in price_list:
        product = json.loads(entry) if isinstance(entry, str) else entry
        volume = product.get("product", {}).get("attributes", {}).get("volumeApiName")
        per_month = _first_usd_price(product, "GB-Mo")
        if volume and per_month is not None:
            prices[volume] = per_month / HOURS_PER_MONTH
    return prices


def latest_spot_prices(history: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], float]:
    """``(instance type, zone)`` → the newest spot price in ``describe_spot_price_history``."""
    latest: dict[tuple[str, str], tuple[str, float]] = {}
    for item in history:
        key = (str(item["InstanceType"]), str(item["AvailabilityZone"]))
        stamp = item.get("Timestamp", "")
        stamp_text = stamp.isoformat() if isinstance(stamp, datetime) else str(stamp)
        if key not in latest or stamp_text > latest[key][0]:
            latest[key] = (stamp_text, float(item["SpotPrice"]))
    return {key: price for key, (_stamp, price) in latest.items()}


def build_offers(
    types: Iterable[TypeInfo],
    on_demand: Mapping[str, float],
    spot: Mapping[tuple[str, str], float],
    disk_prices: Mapping[str, float],
    region: str,
) -> list[InstanceOffer]:
    """Join types and prices: one offer per zone with a spot price, else one for the region.

    Types without an on-demand Linux price in the region are left out (not sold there).
    """
    disks = tuple(
        BootDiskOption(disk, disk_prices[disk]) for disk in BOOT_DISK_TYPES if disk in disk_prices
    )
    zones_by_type: dict[str, list[tuple[str, float]]] = {}
    for (name, zone), spot_price in spot.items():
        zones_by_type.setdefault(name, []).append((zone, spot_price))
    offers = []
    for info in types:
        price = on_demand.get(info.name)
        if price is None:
            continue
        base = InstanceOffer(
            name=info.name,
            vcpus=info.vcpus,
            memory_gib=info.memory_gib,
            architecture=info.architecture,
            region=region,
            cpu_family=info.cpu_family,
            cpu_rank=info.cpu_rank,
            local_ssd_gib=info.local_ssd_gib,
            boot_disks=disks,
            price_per_hour_usd=price,
            gpu_type=info.gpu_type,
            gpus=info.gpus,
            gpu_memory_gib=info.gpu_memory_gib,
        )
        zones = sorted(zones_by_type.get(info.name, [])) if info.spot_supported else []
        if not zones:
            offers.append(base)
        for zone, zone_price in zones:
            offers.append(attrs.evolve(base, zone=zone, spot_price_per_hour_usd=zone_price))
    return offers


_STATES = {
    "pending": InstanceState.PENDING,
    "running": InstanceState.RUNNING,
    "stopping": InstanceState.STOPPING,
    "stopped": InstanceState.TERMINATED,
    "shutting-down": InstanceState.STOPPING,
    "terminated": InstanceState.TERMINATED,
}


def instance_from_ec2(item: Mapping[str, Any]) -> Instance:
    """One ``Reservations[].Instances[]`` item as an ``Instance``."""
    tags = {t["Key"]: t["Value"] for t in item.get("Tags", [])}
    state = _STATES.get(item.get("State", {}).get("Name", ""), InstanceState.FAILED)
    reason = item.get("StateReason", {}).get("Code", "")
    if reason == "Server.SpotInstanceTermination":
        state = InstanceState.PREEMPTED
    launched = item.get("LaunchTime")
    try:
        price = float(tags.get(PRICE_TAG, "0"))
    except ValueError:
        price = 0.0
    return Instance(
        instance_id=str(item["InstanceId"]),
        name=tags.get("Name", ""),
        job_id=tags.get(JOB_TAG, ""),
        instance_type=str(item.get("InstanceType", "")),
        zone=str(item.get("Placement", {}).get("AvailabilityZone", "")),
        state=state,
        is_spot=item.get("InstanceLifecycle") == "spot",
        price_per_hour_usd=price,
        launched_at=launched.timestamp() if isinstance(launched, datetime) else 0.0,
    )


def translate_error(
    code: str, message: str, operation: str, *, instance_type: str = "", zone: str = ""
) -> CloudTasksError:
    """Our exception for an AWS error ``code`` raised by ``operation``; the message is one
    line (AWS messages may hold line breaks)."""
    message = collapse_whitespace(message)
    where = f" for {instance_type} in {zone}" if instance_type or zone else ""
    if code in CAPACITY_CODES:
        return CapacityError(
            f"AWS has no capacity{where} ({code}: {message}); trying another zone or type may help",
            instance_type=instance_type,
            zone=zone,
        )
    if code in _QUOTA_CODES:
        return QuotaError(
            f"AWS quota reached{where} ({code}: {message}); raise the quota in the Service "
            "Quotas console or lower max_instances",
            instance_type=instance_type,
            zone=zone,
        )
    if code in _AUTH_CODES:
        return CredentialsError(f"AWS rejected {operation} ({code}: {message}); {CREDENTIALS_HINT}")
    if code.isdigit():
        # botocore's code for an answer that was not AWS's (an HTML page from a proxy).
        return ProviderError(
            f"AWS {operation} failed: the endpoint answered HTTP {code} {message} with a page "
            "that is not an AWS answer, after every retry (a proxy or load balancer in the "
            "way, or an outage); try again later or check AWS_ENDPOINT_URL and proxy settings"
        )
    rejected = rejected_setting(code, message)
    if rejected is not None:
        setting, fix = rejected
        about = f" (setting: {setting})" if setting else ""
        return RejectedError(
            f"AWS refused {operation}{where} ({code}: {message}); {fix}{about}", setting=setting
        )
    return ProviderError(f"AWS {operation} failed ({code}: {message})")


def rejected_setting(code: str, message: str) -> tuple[str, str] | None:
    """``(setting, what to do)`` when ``code`` is an error another try cannot fix."""
    for prefix, setting, fix in _REJECTED:
        if code.startswith(prefix):
            if not setting:
                lowered = message.lower().replace(" ", "")
                for words, named, named_fix in _PARAMETER_SETTINGS:
                    if words in lowered:
                        return named, named_fix
            return setting, fix
    return None

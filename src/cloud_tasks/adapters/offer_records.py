"""The JSON form of instance offers, shared by catalogs, the price cache and the CLI.

One record per offer::

    {"provider": "aws", "name": "m7i.large", "vcpus": 2, "memory_gib": 8.0,
     "architecture": "x86_64", "region": "us-east-1", "zone": "us-east-1a",
     "cpu_family": "Intel Sapphire Rapids", "cpu_rank": 7, "local_ssd_gib": 0.0,
     "boot_disks": [{"disk_type": "gp3", "price_per_gib_hour_usd": 0.00011}],
     "price_per_hour": 0.1008, "spot_price_per_hour": 0.0391,
     "gpu_type": null, "gpus": 0, "gpu_memory_gib": 0.0}

GPU offers name their GPU type (``nvidia-t4``, ``nvidia-tesla-t4``), count and memory per GPU;
``"attach_gpus": true`` marks GPUs attached to a general machine type at launch (GCP N1). The
GPU keys are optional when reading (a record without them has no GPU).

A catalog file is either a list of such records (what ``list_instance_types --format json``
writes; extra keys are ignored) or an object ``{"snapshot_date", "note", "regions", "offers"}``
where ``regions`` maps each region to its zones.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from cloud_tasks.domain.offers import ARCHITECTURES, BootDiskOption, InstanceOffer
from cloud_tasks.exceptions import ConfigError


@attrs.frozen
class Catalog:
    """Offers of one or more providers, with the regions and zones they cover."""

    offers: tuple[tuple[str, InstanceOffer], ...]
    regions: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    snapshot_date: str = ""
    note: str = ""

    def region_names(self) -> list[str]:
        """Every region, in catalog order."""
        names = list(self.regions)
        for _provider, offer in self.offers:
            if offer.region not in names:
                names.append(offer.region)
        return names

    def zones(self, region: str) -> tuple[str, ...]:
        """Zones of ``region``: listed ones, else those the offers name."""
        listed = self.regions.get(region)
        if listed:
            return listed
        found = {o.zone for _p, o in self.offers if o.region == region and o.zone}
        return tuple(sorted(z for z in found if z))


def offer_to_record(offer: InstanceOffer, provider: str) -> dict[str, Any]:
    """The JSON record of ``offer``."""
    return {
        "provider": provider,
        "name": offer.name,
        "vcpus": offer.vcpus,
        "memory_gib": offer.memory_gib,
        "architecture": offer.architecture,
        "region": offer.region,
        "zone": offer.zone,
        "cpu_family": offer.cpu_family,
        "cpu_rank": offer.cpu_rank,
        "local_ssd_gib": offer.local_ssd_gib,
        "boot_disks": [
            {"disk_type": d.disk_type, "price_per_gib_hour_usd": d.price_per_gib_hour_usd}
            for d in offer.boot_disks
        ],
        "price_per_hour": offer.price_per_hour_usd,
        "spot_price_per_hour": offer.spot_price_per_hour_usd,
        "gpu_type": offer.gpu_type or None,
        "gpus": offer.gpus,
        "gpu_memory_gib": offer.gpu_memory_gib,
        **({"attach_gpus": True} if offer.attach_gpus else {}),
    }


class _RecordError(Exception):
    pass


def _get(record: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in record:
        raise _RecordError(f"missing key '{key}'")
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise _RecordError(f"'{key}': expected {_kind_name(kind)}, got {value!r}")
    return value


def _optional(record: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if record.get(key) is None:
        return None
    return _get(record, key, kind)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {"int": "an integer", "float": "a number", "str": "a string", "list": "a list"}
    return " or ".join(sorted({names.get(k.__name__, k.__name__) for k in kinds}))


def _price(record: Mapping[str, Any], key: str) -> float | None:
    value = _optional(record, key, (int, float))
    if value is not None and (value < 0 or not math.isfinite(value)):
        raise _RecordError(f"'{key}': expected a non-negative price, got {value!r}")
    return None if value is None else float(value)


def offer_from_record(
    record: Mapping[str, Any], default_provider: str = ""
) -> tuple[str, InstanceOffer]:
    """Parse one record into ``(provider, offer)``; raises ``ValueError`` naming the key."""
    try:
        if not isinstance(record, Mapping):
            raise _RecordError(f"expected an object, got {record!r}")
        architecture = _get(record, "architecture", str)
        if architecture not in ARCHITECTURES:
            raise _RecordError(
                f"'architecture': expected one of {', '.join(ARCHITECTURES)}, got {architecture!r}"
            )
        disks = []
        for disk in _optional(record, "boot_disks", list) or []:
            if not isinstance(disk, Mapping):
                raise _RecordError(f"'boot_disks': expected objects, got {disk!r}")
            disks.append(
                BootDiskOption(
                    disk_type=_get(disk, "disk_type", str),
                    price_per_gib_hour_usd=float(
                        _optional(disk, "price_per_gib_hour_usd", (int, float)) or 0.0
                    ),
                )
            )
        vcpus = _get(record, "vcpus", int)
        if vcpus <= 0:
            raise _RecordError(f"'vcpus': expected a positive integer, got {vcpus}")
        offer = InstanceOffer(
            name=_get(record, "name", str),
            vcpus=vcpus,
            memory_gib=float(_get(record, "memory_gib", (int, float))),
            architecture=architecture,
            region=_get(record, "region", str),
            zone=_optional(record, "zone", str),
            cpu_family=_optional(record, "cpu_family", str) or "",
            cpu_rank=_optional(record, "cpu_rank", int) or 0,
            local_ssd_gib=float(_optional(record, "local_ssd_gib", (int, float)) or 0.0),
            boot_disks=tuple(disks),
            price_per_hour_usd=_price(record, "price_per_hour"),
            spot_price_per_hour_usd=_price(record, "spot_price_per_hour"),
            **_gpu_fields(record),
        )
        provider = _optional(record, "provider", str) or default_provider
    except _RecordError as exc:
        raise ValueError(str(exc)) from None
    return provider, offer


def _gpu_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    gpus = _optional(record, "gpus", int) or 0
    if gpus < 0:
        raise _RecordError(f"'gpus': expected a non-negative integer, got {gpus}")
    if gpus == 0:
        return {}
    gpu_type = _optional(record, "gpu_type", str)
    if not gpu_type:
        raise _RecordError(f"'gpu_type': expected the GPU type of the {gpus} GPUs")
    memory = float(_optional(record, "gpu_memory_gib", (int, float)) or 0.0)
    if memory < 0 or not math.isfinite(memory):
        raise _RecordError(f"'gpu_memory_gib': expected a non-negative number, got {memory!r}")
    attach = record.get("attach_gpus", False)
    if not isinstance(attach, bool):
        raise _RecordError(f"'attach_gpus': expected true or false, got {attach!r}")
    return {"gpu_type": gpu_type, "gpus": gpus, "gpu_memory_gib": memory, "attach_gpus": attach}


def catalog_from_json(data: Any, source: str, default_provider: str = "") -> Catalog:
    """Build a catalog from parsed JSON; errors name ``source`` and the offer index."""
    meta: Mapping[str, Any] = {}
    if isinstance(data, Mapping):
        meta = data
        records = data.get("offers")
    else:
        records = data
    if not isinstance(records, list):
        raise ConfigError(
            f"{source}: expected a list of offers or an object with 'offers'; "
            "save one with 'cloud_tasks list_instance_types --format json'"
        )
    offers = []
    for index, record in enumerate(records):
        try:
            offers.append(offer_from_record(record, default_provider))
        except ValueError as exc:
            raise ConfigError(f"{source}: offer {index}: {exc}") from None
    regions: dict[str, tuple[str, ...]] = {}
    raw_regions = meta.get("regions") or {}
    if not isinstance(raw_regions, Mapping):
        raise ConfigError(f"{source}: 'regions': expected an object of region -> zones")
    for region, zones in raw_regions.items():
        if not isinstance(zones, list) or not all(isinstance(z, str) for z in zones):
            raise ConfigError(f"{source}: regions.{region}: expected a list of zone names")
        regions[str(region)] = tuple(zones)
    return Catalog(
        offers=tuple(offers),
        regions=regions,
        snapshot_date=str(meta.get("snapshot_date", "")),
        note=str(meta.get("note", "")),
    )


def load_catalog(path: str | Path, default_provider: str = "") -> Catalog:
    """Read a catalog file; a missing or malformed file is a ``ConfigError`` naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"catalog file {path}: cannot read it ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"catalog file {path}: not valid JSON (line {exc.lineno}: {exc.msg})"
        ) from None
    return catalog_from_json(data, f"catalog file {path}", default_provider)


def merge_catalogs(catalogs: Iterable[Catalog]) -> Catalog:
    """One catalog holding every offer and region of ``catalogs``."""
    offers: list[tuple[str, InstanceOffer]] = []
    regions: dict[str, tuple[str, ...]] = {}
    dates = []
    for catalog in catalogs:
        offers.extend(catalog.offers)
        regions.update(catalog.regions)
        if catalog.snapshot_date:
            dates.append(catalog.snapshot_date)
    return Catalog(offers=tuple(offers), regions=regions, snapshot_date=min(dates, default=""))

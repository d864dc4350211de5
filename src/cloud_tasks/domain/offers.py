"""Instance type offers: what a provider sells in one region or zone, with prices."""

from __future__ import annotations

from typing import Literal

import attrs

Architecture = Literal["x86_64", "arm64"]
ARCHITECTURES: tuple[str, ...] = ("x86_64", "arm64")


@attrs.frozen
class BootDiskOption:
    """A boot disk type an instance type can use, with its price."""

    disk_type: str
    price_per_gib_hour_usd: float = 0.0


@attrs.frozen
class InstanceOffer:
    """One instance type offered in one region (and zone, where prices differ by zone).

    ``price_per_hour_usd`` is the on-demand price, ``spot_price_per_hour_usd`` the spot price or
    ``None`` when the type cannot run as spot there. Neither includes the boot disk; both
    include the GPUs. ``gpus`` is the number of GPUs of type ``gpu_type`` (e.g.
    ``nvidia-tesla-t4``), each with ``gpu_memory_gib``; ``attach_gpus`` is true where the GPUs
    are attached to a general machine type at launch (GCP N1) rather than built in.
    """

    name: str
    vcpus: int
    memory_gib: float
    architecture: str
    region: str
    zone: str | None = None
    cpu_family: str = ""
    cpu_rank: int = 0
    local_ssd_gib: float = 0.0
    boot_disks: tuple[BootDiskOption, ...] = ()
    price_per_hour_usd: float | None = None
    spot_price_per_hour_usd: float | None = None
    gpu_type: str = ""
    gpus: int = 0
    gpu_memory_gib: float = 0.0
    attach_gpus: bool = False

    @property
    def boot_disk_types(self) -> tuple[str, ...]:
        return tuple(disk.disk_type for disk in self.boot_disks)

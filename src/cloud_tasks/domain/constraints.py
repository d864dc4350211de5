"""Instance constraints (SPEC §5): every key a user may set to narrow the choice of type."""

from __future__ import annotations

import attrs


@attrs.frozen
class InstanceConstraints:
    """What an instance type must satisfy. ``None`` means "no limit".

    Memory is in GiB, local SSD and boot disk sizes in GB, counts are per instance.
    ``gpu_type`` holds regular expressions for the GPU type; ``min_gpu_memory`` is GiB per GPU;
    ``gpus_per_task`` (when set) also limits the tasks per instance.
    """

    architecture: str | None = "x86_64"
    cpu_family: str | None = None
    min_cpu_rank: int | None = None
    max_cpu_rank: int | None = None
    instance_types: tuple[str, ...] = ()
    min_cpu: int | None = None
    max_cpu: int | None = None
    cpus_per_task: float = 1.0
    min_tasks_per_instance: int | None = None
    max_tasks_per_instance: int | None = None
    min_total_memory: float | None = None
    max_total_memory: float | None = None
    min_memory_per_cpu: float | None = None
    max_memory_per_cpu: float | None = None
    min_memory_per_task: float | None = None
    max_memory_per_task: float | None = None
    min_local_ssd: float | None = None
    max_local_ssd: float | None = None
    local_ssd_base_size: float = 0.0
    min_local_ssd_per_cpu: float | None = None
    max_local_ssd_per_cpu: float | None = None
    min_local_ssd_per_task: float | None = None
    max_local_ssd_per_task: float | None = None
    boot_disk_types: tuple[str, ...] = ()
    boot_disk_iops: int | None = None
    boot_disk_throughput: int | None = None
    total_boot_disk_size: float = 10.0
    boot_disk_base_size: float = 0.0
    boot_disk_per_cpu: float | None = None
    boot_disk_per_task: float | None = None
    use_spot: bool = False
    gpu_type: tuple[str, ...] = ()
    min_gpus: int | None = None
    max_gpus: int | None = None
    gpus_per_task: float | None = None
    min_gpu_memory: float | None = None

"""Instance constraints (SPEC §5): every key a user may set to narrow the choice of type."""

from __future__ import annotations

import attrs

from cloud_tasks.domain.option_schema import default


@attrs.frozen
class InstanceConstraints:
    """What an instance type must satisfy. ``None`` means "no limit".

    Memory is in GiB, local SSD and boot disk sizes in GB, counts are per instance.
    ``gpu_type`` holds regular expressions for the GPU type; ``min_gpu_memory`` is GiB per GPU;
    ``gpus_per_task`` (when set) also limits the tasks per instance.
    """

    architecture: str | None = default("architecture")
    cpu_family: str | None = default("cpu_family")
    min_cpu_rank: int | None = default("min_cpu_rank")
    max_cpu_rank: int | None = default("max_cpu_rank")
    instance_types: tuple[str, ...] = default("instance_types")
    min_cpu: int | None = default("min_cpu")
    max_cpu: int | None = default("max_cpu")
    cpus_per_task: float = default("cpus_per_task")
    min_tasks_per_instance: int | None = default("min_tasks_per_instance")
    max_tasks_per_instance: int | None = default("max_tasks_per_instance")
    min_total_memory: float | None = default("min_total_memory")
    max_total_memory: float | None = default("max_total_memory")
    min_memory_per_cpu: float | None = default("min_memory_per_cpu")
    max_memory_per_cpu: float | None = default("max_memory_per_cpu")
    min_memory_per_task: float | None = default("min_memory_per_task")
    max_memory_per_task: float | None = default("max_memory_per_task")
    min_local_ssd: float | None = default("min_local_ssd")
    max_local_ssd: float | None = default("max_local_ssd")
    local_ssd_base_size: float = default("local_ssd_base_size")
    min_local_ssd_per_cpu: float | None = default("min_local_ssd_per_cpu")
    max_local_ssd_per_cpu: float | None = default("max_local_ssd_per_cpu")
    min_local_ssd_per_task: float | None = default("min_local_ssd_per_task")
    max_local_ssd_per_task: float | None = default("max_local_ssd_per_task")
    boot_disk_types: tuple[str, ...] = default("boot_disk_types")
    boot_disk_iops: int | None = default("boot_disk_iops")
    boot_disk_throughput: int | None = default("boot_disk_throughput")
    total_boot_disk_size: float = default("total_boot_disk_size")
    boot_disk_base_size: float = default("boot_disk_base_size")
    boot_disk_per_cpu: float | None = default("boot_disk_per_cpu")
    boot_disk_per_task: float | None = default("boot_disk_per_task")
    use_spot: bool = default("use_spot")
    gpu_type: tuple[str, ...] = default("gpu_type")
    min_gpus: int | None = default("min_gpus")
    max_gpus: int | None = default("max_gpus")
    gpus_per_task: float | None = default("gpus_per_task")
    min_gpu_memory: float | None = default("min_gpu_memory")

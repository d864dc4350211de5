"""A pool manager wired to given queues and task store, for tests that drive its event polls."""

from __future__ import annotations

from cloud_tasks.adapters.memory.catalog import bundled_catalog
from cloud_tasks.adapters.memory.clock import VirtualClock
from cloud_tasks.adapters.memory.compute import InMemoryCompute
from cloud_tasks.domain.constraints import InstanceConstraints
from cloud_tasks.domain.selection import rank_offers
from cloud_tasks.ports import Clock, EventQueue, TaskQueue, TaskStore
from cloud_tasks.service_layer.plan import ZoneChoice, launch_options
from cloud_tasks.service_layer.pool import PoolManager, PoolSettings


def bare_manager(
    task_queue: TaskQueue,
    event_queue: EventQueue,
    db: TaskStore,
    *,
    clock: Clock | None = None,
    log: list[str] | None = None,
    offload: bool = False,
) -> PoolManager:
    """A manager of job ``job`` on the memory provider, for calling ``poll_events`` by hand."""
    clock = clock if clock is not None else VirtualClock(1_800_000_000.0)
    catalog = bundled_catalog("aws")
    offers = [o for _p, o in catalog.offers if o.region == "us-east-1"]
    ranked = rank_offers(offers, InstanceConstraints(min_cpu=2, max_cpu=2, instance_types=("^m7",)))
    options = launch_options(ranked, ZoneChoice(None, ()), lambda c, z: "#!/bin/bash\n")
    return PoolManager(
        compute=InMemoryCompute(catalog, clock=clock),
        task_queue=task_queue,
        event_queue=event_queue,
        db=db,
        clock=clock,
        options=options,
        settings=PoolSettings(job_id="job", image="ubuntu-24.04-x86_64", offload=offload),
        log=(log if log is not None else []).append,
    )

"""The composition root: builds concrete adapters from a resolved configuration.

SDK-backed adapters are imported here lazily, only for the provider in use.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cloud_tasks.domain.options import JobConfig
from cloud_tasks.exceptions import ConfigError
from cloud_tasks.ports import Clock, Compute, EventQueue, Preflight, Pricing, TaskQueue

#: Regions used when neither ``region`` nor ``zone`` is configured.
DEFAULT_REGIONS: dict[str, str] = {"aws": "us-east-1", "gcp": "us-central1"}


def _zone_region(provider: str, zone: str) -> str:
    # AWS zones append a letter to the region (us-east-1a), GCP a dash and a letter.
    return zone[:-1] if provider == "aws" else zone.rsplit("-", 1)[0]


def configured_region(config: JobConfig) -> str | None:
    """The region from ``region``, else derived from ``zone``, else ``None``."""
    options = config.provider_options
    if options.region:
        return options.region
    if options.zone:
        cloud = config.section if config.provider == "memory" else config.provider
        return _zone_region(cloud or "", options.zone)
    return None


def _catalog_of(config: JobConfig) -> Any:
    from cloud_tasks.adapters.memory.catalog import resolve_catalog

    choice = config.provider_options.catalog
    if choice is None and config.section in ("aws", "gcp"):
        # `--provider memory` standing in for a cloud uses that cloud's part (SPEC §9).
        choice = config.section
    return resolve_catalog(choice)


def _aws_session(config: JobConfig) -> Any:
    import boto3

    options = config.provider_options
    return boto3.session.Session(
        aws_access_key_id=options.access_key,
        aws_secret_access_key=options.secret_key,
    )


def _aws_region(config: JobConfig, session: Any) -> str:
    return configured_region(config) or session.region_name or DEFAULT_REGIONS["aws"]


def _gcp_project(config: JobConfig) -> str:
    import os

    project = config.provider_options.project_id or os.environ.get("GOOGLE_CLOUD_PROJECT")
    if not project:
        raise ConfigError(
            "gcp.project_id is not set; add it to the gcp section of the config or pass "
            "--project-id"
        )
    return project


def make_compute(config: JobConfig, *, clock: Clock | None = None) -> Compute:
    """The ``Compute`` adapter of ``config.provider`` (``aws``, ``gcp`` or ``memory``)."""
    provider = config.provider
    if provider == "memory":
        from cloud_tasks.adapters.memory.compute import InMemoryCompute

        return InMemoryCompute(_catalog_of(config), clock=clock)
    if provider == "aws":
        from cloud_tasks.adapters.aws.ec2 import Ec2Compute

        session = _aws_session(config)
        region = _aws_region(config, session)
        from cloud_tasks.adapters.aws.clientconfig import client_config, tolerate_proxy_pages

        def ec2_for(name: str) -> Any:
            return tolerate_proxy_pages(
                session.client("ec2", region_name=name, config=client_config())
            )

        home = Ec2Compute(ec2_for(region), region=region, ec2_for_region=ec2_for)
        if not config.provider_options.regions:
            return home
        from cloud_tasks.adapters.aws.regions import MultiRegionEc2Compute

        return MultiRegionEc2Compute(
            home,
            lambda name: Ec2Compute(ec2_for(name), region=name, ec2_for_region=ec2_for),
            config.provider_options.regions,
        )
    if provider == "gcp":
        from cloud_tasks.adapters.gcp.compute import GceCompute
        from cloud_tasks.adapters.gcp.compute_clients import compute_clients

        project = _gcp_project(config)
        clients = compute_clients(config.provider_options.credentials_file)
        return GceCompute(
            instances=clients["instances"],
            zone_operations=clients["zone_operations"],
            regions=clients["regions"],
            images=clients["images"],
            project=project,
        )
    if provider == "local":
        return make_local_compute(config)
    raise ConfigError(f"provider {provider!r} has no standalone compute adapter; use 'run'")


def make_local_compute(
    config: JobConfig,
    *,
    db_path: str | Path | None = None,
    environment: Mapping[str, str] | None = None,
) -> Compute:
    """The ``local`` provider's compute: process groups recorded beside the task database.

    The instance registry and instance logs live in ``.cloud_tasks/<db name>/`` next to the
    task database (``db_path``, else ``db_file``, else ``<job_id>.db``), so every command run
    from the same place finds the same instances; startup scripts run in the directory of the
    configuration file. ``environment`` is added to every instance's environment.
    """
    from cloud_tasks.adapters.local.compute import LocalCompute

    job_id = config.provider_options.job_id
    if db_path is None and not config.run.db_file and not job_id:
        raise ConfigError("job_id is not set; add it to the local section or pass --job-id")
    path = Path(db_path or config.run.db_file or f"{job_id}.db")
    state_dir = path.resolve().parent / ".cloud_tasks" / path.stem
    workdir = Path(config.source).resolve().parent if config.source else Path.cwd()
    return LocalCompute(state_dir, workdir=workdir, environment=environment)


def make_pricing(config: JobConfig) -> Pricing:
    """The ``Pricing`` adapter of ``config.provider``; AWS and GCP prices are cached on disk."""
    provider = config.provider
    if provider == "memory":
        from cloud_tasks.adapters.memory.catalog import MemoryPricing

        return MemoryPricing(_catalog_of(config))
    if provider == "local":
        from cloud_tasks.adapters.local.compute import LocalPricing

        return LocalPricing()
    from cloud_tasks.adapters.price_cache import PriceCache

    if provider == "aws":
        from cloud_tasks.adapters.aws.clientconfig import client_config, tolerate_proxy_pages
        from cloud_tasks.adapters.aws.pricing import PRICING_REGION, AwsPricing

        session = _aws_session(config)
        return AwsPricing(
            lambda name: tolerate_proxy_pages(
                session.client("ec2", region_name=name, config=client_config())
            ),
            tolerate_proxy_pages(
                session.client("pricing", region_name=PRICING_REGION, config=client_config())
            ),
            cache=PriceCache(),
        )
    if provider == "gcp":
        from cloud_tasks.adapters.gcp.billing import GcpPricing
        from cloud_tasks.adapters.gcp.compute_clients import catalog_client, compute_clients

        credentials = config.provider_options.credentials_file
        return GcpPricing(
            compute_clients(credentials)["machine_types"],
            catalog_client(credentials),
            project=_gcp_project(config),
            cache=PriceCache(),
        )
    raise ConfigError(f"unknown provider {provider!r}")


def make_preflight(config: JobConfig, region: str) -> Preflight:
    """The ``Preflight`` adapter of ``config.provider`` (clients for ``region``)."""
    provider = config.provider
    if provider == "aws":
        from cloud_tasks.adapters.aws.clientconfig import client_config, tolerate_proxy_pages
        from cloud_tasks.adapters.aws.preflight import AwsPreflight

        session = _aws_session(config)

        def client(service: str) -> Any:
            return tolerate_proxy_pages(
                session.client(service, region_name=region, config=client_config())
            )

        return AwsPreflight(client)
    if provider == "gcp":
        from cloud_tasks.adapters.gcp.compute_clients import compute_clients
        from cloud_tasks.adapters.gcp.preflight import GcpPreflight

        credentials = config.provider_options.credentials_file
        clients = compute_clients(credentials)
        return GcpPreflight(
            images=clients["images"],
            regions=clients["regions"],
            project=_gcp_project(config),
            credentials_file=credentials,
        )
    from cloud_tasks.adapters.memory.preflight import OfflinePreflight

    return OfflinePreflight(provider)


def pricing_region(config: JobConfig, pricing: Pricing) -> str:
    """The region whose offers apply: configured, else the provider's default."""
    region = configured_region(config)
    if region:
        return region
    if config.provider == "local":
        return "local"
    default = getattr(pricing, "default_region", None)
    if callable(default):
        if config.section in DEFAULT_REGIONS:
            return DEFAULT_REGIONS[config.section]
        return str(default())
    if config.provider == "aws":
        import boto3

        return str(boto3.session.Session().region_name or DEFAULT_REGIONS["aws"])
    return DEFAULT_REGIONS.get(config.provider, "")


# --- Queues ---------------------------------------------------------------------------------


def queue_lease_s(max_runtime_s: float) -> float:
    """The default lease of a new queue: the whole run of a short task plus a minute, capped
    at Pub/Sub's 600 s; the worker extends leases of longer tasks while they run."""
    return max(60.0, min(600.0, max_runtime_s + 60.0))


def _queue_name(config: JobConfig, queue_name: str | None) -> str:
    name = queue_name or config.provider_options.effective_queue_name
    if not name:
        where = f" ({config.source})" if config.source else ""
        raise ConfigError(
            f"no queue name: set job_id (or queue_name) in the configuration{where}, or pass "
            "--job-id"
        )
    # Checked here too, for names that did not come through the configuration loader (the
    # worker's --job-id/--queue-name): a name must never reach a file path or an API filter.
    from cloud_tasks.domain.validation import queue_name_problem

    problem = queue_name_problem(name)
    if problem:
        raise ConfigError(f"queue name {problem}; check --job-id/--queue-name or queue_name")
    return name


def make_task_queue(
    config: JobConfig,
    *,
    queue_name: str | None = None,
    clock: Clock | None = None,
    queue_dir: str | Path | None = None,
) -> TaskQueue:
    """The ``TaskQueue`` of ``config.provider``, named ``queue_name`` or the configured one.

    ``clock`` drives the in-memory queue; ``queue_dir`` overrides where the ``local``
    provider keeps its SQLite file (default ``sqlite_queue.default_queue_dir()``).
    """
    name = _queue_name(config, queue_name)
    options = config.provider_options
    lease_s = queue_lease_s(config.run.max_runtime)
    provider = config.provider
    if provider == "memory":
        from cloud_tasks.adapters.memory.queue import InMemoryTaskQueue

        return InMemoryTaskQueue(name, clock=clock)
    if provider == "local":
        from cloud_tasks.adapters.local.sqlite_queue import SqliteTaskQueue, queue_file

        return SqliteTaskQueue(queue_file(name, queue_dir), name)
    if provider == "aws":
        from cloud_tasks.adapters.aws.sqs import SqsTaskQueue

        return SqsTaskQueue(
            name,
            region=configured_region(config),
            fifo=options.exactly_once_queue,
            visibility_timeout_s=lease_s,
            access_key=options.access_key,
            secret_key=options.secret_key,
        )
    if provider == "gcp":
        from cloud_tasks.adapters.gcp.pubsub import PubSubTaskQueue

        return PubSubTaskQueue(
            name,
            project_id=options.project_id,
            credentials_file=options.credentials_file,
            ack_deadline_s=lease_s,
            exactly_once=options.exactly_once_queue,
        )
    raise ConfigError(f"unknown provider {provider!r}")


def make_event_queue(
    config: JobConfig,
    *,
    queue_name: str | None = None,
    clock: Clock | None = None,
    queue_dir: str | Path | None = None,
) -> EventQueue:
    """The ``<queue>-events`` ``EventQueue`` of ``config.provider`` (see ``make_task_queue``)."""
    name = f"{_queue_name(config, queue_name)}-events"
    options = config.provider_options
    provider = config.provider
    if provider == "memory":
        from cloud_tasks.adapters.memory.queue import InMemoryEventQueue

        return InMemoryEventQueue(name, clock=clock)
    if provider == "local":
        from cloud_tasks.adapters.local.sqlite_queue import SqliteEventQueue, queue_file

        # The event queue lives in its task queue's file.
        return SqliteEventQueue(queue_file(name.removesuffix("-events"), queue_dir), name)
    if provider == "aws":
        from cloud_tasks.adapters.aws.sqs import SqsEventQueue

        return SqsEventQueue(
            name,
            region=configured_region(config),
            access_key=options.access_key,
            secret_key=options.secret_key,
        )
    if provider == "gcp":
        from cloud_tasks.adapters.gcp.pubsub import PubSubEventQueue

        return PubSubEventQueue(
            name, project_id=options.project_id, credentials_file=options.credentials_file
        )
    raise ConfigError(f"unknown provider {provider!r}")

"""The composition root: the one place that builds concrete adapters.

Every entry point asks here for the ports it runs with: the job commands (``run``,
``manage_pool``, ``status``, ...) call ``build_job_adapters``, the queue and info commands the
``make_*`` functions, the worker ``build_worker_adapters`` and ``make_checkpoint_store``,
``simulate`` ``build_simulation_adapters`` and the pytest plugin ``build_test_adapters``.

SDK-backed adapters are imported here lazily, only for the provider in use; a cloud's client
libraries that are not installed become one ``MissingLibraryError`` naming the pip extra.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from cloud_tasks.domain.options import JobConfig
from cloud_tasks.exceptions import ConfigError, MissingLibraryError
from cloud_tasks.locations import Location
from cloud_tasks.ports import (
    CheckpointStore,
    Clock,
    Compute,
    EventQueue,
    InstanceMetadata,
    Preflight,
    Pricing,
    TaskQueue,
    TaskSource,
)

if TYPE_CHECKING:
    from cloud_tasks.adapters.local.pool_records import SqlitePoolRecords
    from cloud_tasks.adapters.local.sqlite_queue import LoadJournal
    from cloud_tasks.adapters.local.taskdb import TaskDatabase
    from cloud_tasks.adapters.local.taskdb_views import TaskDatabaseView
    from cloud_tasks.adapters.memory.catalog import MemoryPricing
    from cloud_tasks.adapters.memory.clock import VirtualClock
    from cloud_tasks.adapters.memory.compact_queue import CompactEventQueue, CompactTaskQueue
    from cloud_tasks.adapters.memory.compute import InMemoryCompute
    from cloud_tasks.adapters.memory.queue import InMemoryEventQueue, InMemoryTaskQueue
    from cloud_tasks.adapters.memory.taskstore import InMemoryTaskStore
    from cloud_tasks.entrypoints.worker.options import WorkerOptions

#: Regions used when neither ``region`` nor ``zone`` is configured.
DEFAULT_REGIONS: dict[str, str] = {"aws": "us-east-1", "gcp": "us-central1"}

#: What each cloud's adapters need installed: how to name it, and its top-level modules.
CLIENT_LIBRARIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "aws": ("the AWS client libraries (boto3)", ("boto3", "botocore")),
    "gcp": ("the Google Cloud client libraries", ("google", "grpc")),
}


def missing_library_error(exc: ModuleNotFoundError) -> MissingLibraryError | None:
    """Our one-line error for ``exc`` when the missing module is a cloud's client library."""
    root = (exc.name or "").partition(".")[0]
    for provider, (what, modules) in CLIENT_LIBRARIES.items():
        if root in modules:
            return MissingLibraryError(
                f"provider {provider} needs {what}: pip install 'rms-cloud-tasks[{provider}]'",
                provider=provider,
            )
    return None


#: The SDK modules each cloud adapter imports, checked before the adapter is built.
_SDK_MODULES: dict[tuple[str, str], tuple[str, ...]] = {
    ("aws", "compute"): ("boto3",),
    ("aws", "pricing"): ("boto3",),
    ("aws", "queue"): ("boto3",),
    ("gcp", "compute"): ("google.auth", "google.cloud.compute_v1"),
    ("gcp", "pricing"): ("google.auth", "google.cloud.compute_v1", "google.cloud.billing_v1"),
    ("gcp", "queue"): ("google.auth", "google.cloud.pubsub_v1"),
}


def require_client_libraries(provider: str, port: str = "compute") -> None:
    """Raise ``MissingLibraryError`` unless the SDK modules of ``provider``'s ``port`` adapter
    (``compute``, ``pricing``, ``queue``) are installed; nothing to check for local and memory.

    Modules are found, not imported (``google.cloud.compute_v1`` alone takes seconds to import).
    """
    import importlib.util

    with client_libraries():
        for module in _SDK_MODULES.get((provider, port), ()):
            if importlib.util.find_spec(module) is None:
                raise ModuleNotFoundError(f"No module named {module!r}", name=module)


@contextmanager
def client_libraries() -> Iterator[None]:
    """Turn a cloud SDK module missing inside the block (or the decorated function) into a
    ``MissingLibraryError``; any other missing module is a bug and keeps its traceback."""
    try:
        yield
    except ModuleNotFoundError as exc:
        error = missing_library_error(exc)
        if error is None:
            raise
        raise error from None


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


def _memory_pricing(config: JobConfig) -> MemoryPricing:
    from cloud_tasks.adapters.memory.catalog import MemoryPricing

    # Standing in for a cloud, a job without a region uses that cloud's default region.
    home = DEFAULT_REGIONS.get(config.section) if config.section else None
    return MemoryPricing(_catalog_of(config), home_region=home)


def system_clock() -> Clock:
    """The real clock: wall-clock time and real sleeps."""
    from cloud_tasks.adapters.clock import SystemClock

    return SystemClock()


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


# --- Plans without an account --------------------------------------------------------------

_LIVE_PRICES_FIX: dict[str, dict[str, str]] = {
    "aws": {
        "libraries": "pip install 'rms-cloud-tasks[aws]' and configure AWS credentials "
        "(aws configure)",
        "credentials": "configure AWS credentials (aws configure, AWS_PROFILE, or access_key/"
        "secret_key in the config)",
    },
    "gcp": {
        "libraries": "pip install 'rms-cloud-tasks[gcp]' and run 'gcloud auth "
        "application-default login'",
        "credentials": "run 'gcloud auth application-default login' (or set credentials_file)",
        "project": "set project_id in the gcp section of the config or pass --project-id",
    },
}


def _account_problem(config: JobConfig) -> tuple[str, str] | None:
    """``(problem, kind)`` when ``config``'s cloud cannot be asked for prices from here.

    Looks only at this machine (installed libraries, credentials in the environment and the
    usual files, the GCP project); no API is called.
    """
    provider = config.provider
    try:
        require_client_libraries(provider, "pricing")
        require_client_libraries(provider, "compute")
    except MissingLibraryError:
        what = CLIENT_LIBRARIES[provider][0]
        return f"{what} are not installed", "libraries"
    if provider == "aws":
        from botocore.exceptions import BotoCoreError

        try:
            found = _aws_session(config).get_credentials()
        except BotoCoreError:
            return None  # a broken profile: the live path reports it with its fix
        return None if found is not None else ("no AWS credentials found", "credentials")
    import os

    from cloud_tasks.adapters.gcp.compute_clients import (
        BILLING_OVERRIDE,
        COMPUTE_OVERRIDE,
        endpoint_override,
    )

    anonymous = all(endpoint_override(v)[1] for v in (COMPUTE_OVERRIDE, BILLING_OVERRIDE))
    if not anonymous and not config.provider_options.credentials_file:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            google.auth.default()
        except DefaultCredentialsError:
            return "no Google Cloud credentials found", "credentials"
    if not (config.provider_options.project_id or os.environ.get("GOOGLE_CLOUD_PROJECT")):
        return "gcp.project_id is not set", "project"
    return None


def offline_plan_notice(config: JobConfig) -> str | None:
    """Why a plan of ``config`` (``run --dry-run``, ``list_instance_types``) must come from the
    bundled catalog, as one line with the catalog's date and the way to live prices; ``None``
    when the provider is not a cloud or its account can be asked."""
    if config.provider not in CLIENT_LIBRARIES:
        return None
    found = _account_problem(config)
    if found is None:
        return None
    problem, kind = found
    from cloud_tasks.adapters.memory.catalog import bundled_catalog

    cloud = config.provider
    date = bundled_catalog(cloud).snapshot_date or "unknown date"
    return (
        f"{problem}: prices are from the bundled {cloud} catalog of {date} (approximate list "
        f"prices, not live); for live prices {_LIVE_PRICES_FIX[cloud][kind]}"
    )


def catalog_stand_in(config: JobConfig) -> JobConfig:
    """``config`` with the ``memory`` provider standing in for its cloud (SPEC §9): same
    section and options, that cloud's part of the bundled catalog."""
    import attrs

    return attrs.evolve(config, provider="memory", section=config.provider)


@client_libraries()
def make_compute(config: JobConfig, *, clock: Clock | None = None) -> Compute:
    """The ``Compute`` adapter of ``config.provider`` (``aws``, ``gcp`` or ``memory``)."""
    provider = config.provider
    if provider == "memory":
        from cloud_tasks.adapters.memory.compute import InMemoryCompute

        return InMemoryCompute(_catalog_of(config), clock=clock)
    require_client_libraries(provider, "compute")
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

    state_dir = local_state_dir(config, db_path)
    workdir = Path(config.source).resolve().parent if config.source else Path.cwd()
    return LocalCompute(state_dir, workdir=workdir, environment=environment)


def local_state_dir(config: JobConfig, db_path: str | Path | None = None) -> Path:
    """Where the ``local`` provider keeps a job's state: ``.cloud_tasks/<db name>/`` beside its
    task database (``db_path``, else ``db_file``, else ``<job_id>.db`` here), so two jobs of the
    same id in different folders never share anything."""
    options = config.provider_options
    name = options.job_id or options.queue_name
    if db_path is None and not config.run.db_file and not name:
        raise ConfigError("job_id is not set; add it to the local section or pass --job-id")
    path = Path(db_path or config.run.db_file or f"{name}.db")
    return path.resolve().parent / ".cloud_tasks" / path.stem


def local_queue_dir(config: JobConfig, db_path: str | Path | None = None) -> Path:
    """The directory of the ``local`` provider's queue file: ``RMS_CLOUD_TASKS_QUEUE_DIR`` when
    set (the manager gives it to every instance), else the job's ``local_state_dir``."""
    import os

    explicit = os.environ.get("RMS_CLOUD_TASKS_QUEUE_DIR")
    if explicit:
        return Path(explicit).expanduser().resolve()
    return local_state_dir(config, db_path)


@client_libraries()
def make_pricing(config: JobConfig) -> Pricing:
    """The ``Pricing`` adapter of ``config.provider``; AWS and GCP prices are cached on disk."""
    provider = config.provider
    if provider == "memory":
        return _memory_pricing(config)
    if provider == "local":
        from cloud_tasks.adapters.local.compute import LocalPricing

        return LocalPricing()
    from cloud_tasks.adapters.price_cache import PriceCache

    require_client_libraries(provider, "pricing")
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
            default_region=session.region_name or DEFAULT_REGIONS["aws"],
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
            default_region=DEFAULT_REGIONS["gcp"],
        )
    raise ConfigError(f"unknown provider {provider!r}")


@client_libraries()
def make_preflight(config: JobConfig, region: str) -> Preflight:
    """The ``Preflight`` adapter of ``config.provider`` (clients for ``region``)."""
    provider = config.provider
    if provider in ("aws", "gcp"):
        require_client_libraries(provider, "compute")
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
    return configured_region(config) or pricing.default_region()


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


@client_libraries()
def make_task_queue(
    config: JobConfig,
    *,
    queue_name: str | None = None,
    clock: Clock | None = None,
    queue_dir: str | Path | None = None,
) -> TaskQueue:
    """The ``TaskQueue`` of ``config.provider``, named ``queue_name`` or the configured one.

    ``clock`` drives the in-memory queue; ``queue_dir`` overrides where the ``local``
    provider keeps its SQLite file (default ``local_queue_dir(config)``, with the job).
    """
    name = _queue_name(config, queue_name)
    options = config.provider_options
    lease_s = queue_lease_s(config.run.max_runtime)
    provider = config.provider
    if provider == "memory":
        from cloud_tasks.adapters.memory.queue import InMemoryTaskQueue

        return InMemoryTaskQueue(name, clock=clock, max_message_bytes=cloud_message_limit(config))
    if provider == "local":
        from cloud_tasks.adapters.local.sqlite_queue import SqliteTaskQueue, queue_file

        return SqliteTaskQueue(queue_file(name, queue_dir or local_queue_dir(config)), name)
    require_client_libraries(provider, "queue")
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


@client_libraries()
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
        directory = queue_dir or local_queue_dir(config)
        return SqliteEventQueue(queue_file(name.removesuffix("-events"), directory), name)
    require_client_libraries(provider, "queue")
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


def make_load_journal(config: JobConfig, queue: TaskQueue) -> LoadJournal | None:
    """The record on this machine of the task ids loaded into a cloud queue, kept by
    ``load_queue`` (``None`` for the local and memory providers)."""
    if config.provider not in ("aws", "gcp"):
        return None
    from cloud_tasks.adapters.local.sqlite_queue import LoadJournal, default_state_dir

    return LoadJournal(default_state_dir() / "loads.sqlite3", queue.address())


# --- Job commands ---------------------------------------------------------------------------


@attrs.frozen
class Adapters:
    """The ports of one provider for one job (``run``, ``manage_pool``, ``status``, ...)."""

    task_queue: TaskQueue
    event_queue: EventQueue
    compute: Compute
    pricing: Pricing
    clock: Clock
    #: Variables every instance needs beyond the generated settings (e.g. the queue location).
    instance_environment: Mapping[str, str] = attrs.field(factory=dict)


def build_job_adapters(config: JobConfig, db_path: Path, clock: Clock | None = None) -> Adapters:
    """The adapters of ``config.provider`` for the job whose task database is ``db_path``
    (SDKs are imported only for that provider). ``clock`` drives the memory provider and the
    pool manager; the default is the system clock."""
    clock = clock if clock is not None else system_clock()
    if config.provider == "local":
        # The queue file lives with the job; instances get its directory explicitly, so they
        # find the same file whatever their working directory.
        queue_dir = local_queue_dir(config, db_path)
        environment = {"RMS_CLOUD_TASKS_QUEUE_DIR": str(queue_dir)}
        return Adapters(
            make_task_queue(config, queue_dir=queue_dir),
            make_event_queue(config, queue_dir=queue_dir),
            make_local_compute(config, db_path=db_path, environment=environment),
            make_pricing(config),
            clock,
            environment,
        )
    return Adapters(
        make_task_queue(config, clock=clock),
        make_event_queue(config, clock=clock),
        make_compute(config, clock=clock),
        make_pricing(config),
        clock,
    )


def build_plan_adapters(
    config: JobConfig, db_path: Path, clock: Clock | None = None
) -> tuple[Adapters, str | None]:
    """Adapters for a plan that changes nothing (``run --dry-run``): the provider's own when
    its account can be asked, else the bundled catalog standing in for that cloud, with the
    one-line notice that says so (``None`` for live prices)."""
    notice = offline_plan_notice(config)
    if notice is None:
        return build_job_adapters(config, db_path, clock), None
    return build_job_adapters(catalog_stand_in(config), db_path, clock), notice


# --- The worker -----------------------------------------------------------------------------


@attrs.frozen
class WorkerAdapters:
    """The ports a worker serves with: the queues in queue mode only (``None`` otherwise, or
    when events are not sent to a queue), the instance metadata when the provider has one."""

    task_queue: TaskQueue | None
    event_queue: EventQueue | None
    metadata: InstanceMetadata | None


def worker_job_config(options: WorkerOptions) -> JobConfig:
    """The provider part of a worker's options, as the ``make_*`` functions take it."""
    from cloud_tasks.domain.options import ProviderOptions, RunOptions

    return JobConfig(
        provider=options.provider or "",
        provider_options=ProviderOptions(
            job_id=options.job_id,
            queue_name=options.queue_name,
            region=options.region,
            zone=options.zone,
            exactly_once_queue=options.exactly_once_queue,
            project_id=options.project_id,
        ),
        run=RunOptions(max_runtime=options.max_runtime),
    )


def build_worker_adapters(
    options: WorkerOptions,
    environ: Mapping[str, str],
    *,
    queue_mode: bool,
    task_queue: TaskQueue | None = None,
    event_queue: EventQueue | None = None,
    metadata: InstanceMetadata | None = None,
) -> WorkerAdapters:
    """The worker's ports: those given (by a program or a test), else built from ``options``.

    A given ``task_queue`` without an ``event_queue`` means no event queue. Nothing is
    contacted: the adapters connect on first use.

    Raises:
        ConfigError: queue mode without a provider, or with ``memory`` and no queue given.
    """
    queue: TaskQueue | None = None
    events: EventQueue | None = None
    if queue_mode:
        queue = task_queue
        if queue is None:
            if options.provider is None:
                raise ConfigError(
                    "nothing to do: give --tasks FILE to run a task file, or --provider and "
                    "--job-id to serve a queue"
                )
            if options.provider == "memory":
                raise ConfigError(
                    "provider 'memory' keeps its queue inside one process: pass "
                    "task_queue=InMemoryTaskQueue(...) to Worker, or use provider 'local'"
                )
            queue = make_task_queue(worker_job_config(options))
        if options.event_log_to_queue:
            events = event_queue
            if events is None and task_queue is None:
                events = make_event_queue(worker_job_config(options))
    if metadata is None:
        metadata = make_metadata(options.provider, environ)
    return WorkerAdapters(queue, events, metadata)


def make_metadata(provider: str | None, environ: Mapping[str, str]) -> InstanceMetadata | None:
    """What an instance of ``provider`` knows about itself (``None`` for ``memory`` or none);
    the ``local`` provider's comes from ``environ``."""
    if provider == "aws":
        from cloud_tasks.adapters.aws.metadata import Ec2InstanceMetadata

        return Ec2InstanceMetadata()
    if provider == "gcp":
        from cloud_tasks.adapters.gcp.metadata import GceInstanceMetadata

        return GceInstanceMetadata()
    if provider == "local":
        from cloud_tasks.adapters.local.metadata import LocalInstanceMetadata

        return LocalInstanceMetadata(environ)
    return None


def make_checkpoint_store(location: str) -> CheckpointStore:
    """The checkpoint store at ``location``: a folder, ``s3://bucket/prefix`` or
    ``gs://bucket/prefix`` (the cloud stores load their SDK on first use)."""
    from cloud_tasks.domain.validation import checkpoint_location_problem

    problem = checkpoint_location_problem(location)
    if problem is not None:
        raise ConfigError(f"--checkpoint-location: {problem}")
    scheme, sep, rest = location.partition("://")
    if sep:
        bucket, _, prefix = rest.partition("/")
        if scheme == "s3":
            from cloud_tasks.adapters.aws.checkpoints import S3CheckpointStore

            return S3CheckpointStore(bucket, prefix)
        from cloud_tasks.adapters.gcp.checkpoints import GcsCheckpointStore

        return GcsCheckpointStore(bucket, prefix)
    from cloud_tasks.adapters.local.checkpoints import FolderCheckpointStore

    return FolderCheckpointStore(location)


# --- simulate and the pytest plugin ---------------------------------------------------------


@attrs.frozen
class SimulationAdapters:
    """The memory provider on virtual time, as ``simulate`` drives it (the concrete types:
    the simulation advances the clock and watches the compute)."""

    clock: VirtualClock
    compute: InMemoryCompute
    pricing: MemoryPricing
    task_queue: CompactTaskQueue
    event_queue: CompactEventQueue


def cloud_message_limit(config: JobConfig) -> int:
    """The largest task message the queue of ``config``'s cloud takes, in bytes: the in-memory
    queues standing in for a cloud (the memory provider, ``simulate``) take the same."""
    from cloud_tasks.domain.tasks import PUBSUB_MAX_MESSAGE_BYTES, SQS_MAX_MESSAGE_BYTES

    return PUBSUB_MAX_MESSAGE_BYTES if config.section == "gcp" else SQS_MAX_MESSAGE_BYTES


def build_simulation_adapters(
    config: JobConfig,
    *,
    queue_name: str,
    boot_delay_s: float,
    preemption_rate_per_hour: float = 0.0,
    pool_preemption_rate_per_hour: float = 0.0,
    seed: int = 0,
) -> SimulationAdapters:
    """A simulated cloud for ``config``'s job, starting at virtual time 0: the catalog of its
    section (or ``catalog``), instances that boot in ``boot_delay_s`` and are preempted at the
    given rates (drawn from ``seed``), and compact queues ``queue_name`` and
    ``<queue_name>-events`` (not created yet)."""
    from cloud_tasks.adapters.memory.clock import VirtualClock
    from cloud_tasks.adapters.memory.compact_queue import CompactEventQueue, CompactTaskQueue
    from cloud_tasks.adapters.memory.compute import InMemoryCompute

    pricing = _memory_pricing(config)
    clock = VirtualClock(0.0)
    compute = InMemoryCompute(
        pricing.catalog,
        clock=clock,
        boot_delay_s=boot_delay_s,
        preemption_rate_per_hour=preemption_rate_per_hour,
        seed=seed,
        pool_preemption_rate_per_hour=pool_preemption_rate_per_hour,
    )
    return SimulationAdapters(
        clock,
        compute,
        pricing,
        CompactTaskQueue(queue_name, clock=clock, max_message_bytes=cloud_message_limit(config)),
        CompactEventQueue(f"{queue_name}-events", clock=clock),
    )


@attrs.frozen
class SimQueues:
    """The in-memory task and event queues of a ``cloud_tasks.testing`` simulation."""

    task_queue: InMemoryTaskQueue
    event_queue: InMemoryEventQueue


def build_test_adapters(queue_name: str) -> SimQueues:
    """In-memory queues ``queue_name`` and ``<queue_name>-events`` on one queue service, on the
    system clock (the worker under test runs real processes); not created yet."""
    from cloud_tasks.adapters.memory.queue import (
        InMemoryEventQueue,
        InMemoryQueueService,
        InMemoryTaskQueue,
    )

    service = InMemoryQueueService()
    clock = system_clock()
    return SimQueues(
        InMemoryTaskQueue(queue_name, clock=clock, service=service),
        InMemoryEventQueue(f"{queue_name}-events", clock=clock, service=service),
    )


def make_task_source(location: Location) -> TaskSource:
    """The ``TaskSource`` for a task file's location, chosen by its scheme (whatever the
    provider: a local job may read ``s3://``); a cloud SDK is imported only when a file is
    opened, and one that is missing becomes a ``ProviderError`` naming the pip extra."""
    if location.scheme == "s3":
        from cloud_tasks.adapters.aws.s3 import S3TaskSource

        return S3TaskSource()
    if location.scheme == "gs":
        from cloud_tasks.adapters.gcp.storage import GcsTaskSource

        return GcsTaskSource()
    if location.scheme in ("http", "https"):
        from cloud_tasks.adapters.web.http import HttpTaskSource

        return HttpTaskSource()
    from cloud_tasks.adapters.local.taskfile import LocalTaskSource

    return LocalTaskSource()


# --- Task stores ----------------------------------------------------------------------------


def open_task_database(
    path: str | Path, *, job_id: str | None = None, existing: bool = False
) -> TaskDatabase:
    """The job's SQLite task database at ``path``: created when missing, or, with ``existing``,
    only opened (a missing file, or one that is not a task database, is a one-line error)."""
    from cloud_tasks.adapters.local.taskdb import TaskDatabase

    if existing:
        return TaskDatabase.open_existing(path, job_id=job_id)
    return TaskDatabase(path, job_id=job_id)


def memory_task_store(
    *, tasks_known: bool = False, trusted_events: bool = False
) -> InMemoryTaskStore:
    """A task store held in memory (``simulate``, dry runs): the same state rules, no file.

    ``trusted_events`` skips the check of each event: only for an in-process event queue that
    nothing but the simulated workers writes to."""
    from cloud_tasks.adapters.memory.taskstore import InMemoryTaskStore

    return InMemoryTaskStore(tasks_known=tasks_known, trusted_events=trusted_events)


def open_task_database_view(path: str | Path) -> TaskDatabaseView:
    """The task database at ``path``, read-only (``dashboard``, ``results``): it may be read
    while the manager writes it, and is never changed."""
    from cloud_tasks.adapters.local.taskdb_views import TaskDatabaseView

    return TaskDatabaseView(path)


def open_pool_records(path: str | Path) -> SqlitePoolRecords:
    """Where the pool manager keeps its decisions, log and fired notifications: beside the
    tasks, in the task database at ``path``."""
    from cloud_tasks.adapters.local.pool_records import SqlitePoolRecords

    return SqlitePoolRecords(path)

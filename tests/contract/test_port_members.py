"""Every adapter implements every member of its port: no optional abilities to probe for.

A capability some providers lack is still a member of the port (``TaskQueue.send_once`` raises
``NotSupportedError`` where ``remembers_loads`` is false, ``Compute.startup_log_hint`` returns
``None``), so callers never ask ``getattr(adapter, ...)``. Also checked here: only the
composition root builds adapters, and entry points never read endpoint variables.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import cloud_tasks
from cloud_tasks import ports
from cloud_tasks.exceptions import NotSupportedError

SRC = Path(cloud_tasks.__file__).parent

#: Port → its adapters, as ``module:Class`` (wrappers that stand in for a port included).
ADAPTERS: dict[type, tuple[str, ...]] = {
    ports.TaskQueue: (
        "cloud_tasks.adapters.memory.queue:InMemoryTaskQueue",
        "cloud_tasks.adapters.memory.compact_queue:CompactTaskQueue",
        "cloud_tasks.adapters.local.sqlite_queue:SqliteTaskQueue",
        "cloud_tasks.adapters.aws.sqs:SqsTaskQueue",
        "cloud_tasks.adapters.gcp.pubsub:PubSubTaskQueue",
    ),
    ports.EventQueue: (
        "cloud_tasks.adapters.memory.queue:InMemoryEventQueue",
        "cloud_tasks.adapters.memory.compact_queue:CompactEventQueue",
        "cloud_tasks.adapters.local.sqlite_queue:SqliteEventQueue",
        "cloud_tasks.adapters.aws.sqs:SqsEventQueue",
        "cloud_tasks.adapters.gcp.pubsub:PubSubEventQueue",
    ),
    ports.Compute: (
        "cloud_tasks.adapters.memory.compute:InMemoryCompute",
        "cloud_tasks.adapters.local.compute:LocalCompute",
        "cloud_tasks.adapters.aws.ec2:Ec2Compute",
        "cloud_tasks.adapters.aws.regions:MultiRegionEc2Compute",
        "cloud_tasks.adapters.gcp.compute:GceCompute",
        "cloud_tasks.service_layer.insight:_WatchedCompute",
    ),
    ports.Pricing: (
        "cloud_tasks.adapters.memory.catalog:MemoryPricing",
        "cloud_tasks.adapters.local.compute:LocalPricing",
        "cloud_tasks.adapters.aws.pricing:AwsPricing",
        "cloud_tasks.adapters.gcp.billing:GcpPricing",
    ),
    ports.Preflight: (
        "cloud_tasks.adapters.memory.preflight:OfflinePreflight",
        "cloud_tasks.adapters.aws.preflight:AwsPreflight",
        "cloud_tasks.adapters.gcp.preflight:GcpPreflight",
    ),
    ports.InstanceMetadata: (
        "cloud_tasks.adapters.local.metadata:LocalInstanceMetadata",
        "cloud_tasks.adapters.aws.metadata:Ec2InstanceMetadata",
        "cloud_tasks.adapters.gcp.metadata:GceInstanceMetadata",
    ),
    ports.Clock: (
        "cloud_tasks.adapters.clock:SystemClock",
        "cloud_tasks.adapters.memory.clock:VirtualClock",
    ),
    ports.CheckpointStore: (
        "cloud_tasks.adapters.local.checkpoints:FolderCheckpointStore",
        "cloud_tasks.adapters.aws.checkpoints:S3CheckpointStore",
        "cloud_tasks.adapters.gcp.checkpoints:GcsCheckpointStore",
    ),
    ports.TaskStore: (
        "cloud_tasks.adapters.local.taskdb:TaskDatabase",
        "cloud_tasks.adapters.memory.taskstore:InMemoryTaskStore",
    ),
    ports.TaskSource: (
        "cloud_tasks.adapters.memory.tasksource:InMemoryTaskSource",
        "cloud_tasks.adapters.local.taskfile:LocalTaskSource",
        "cloud_tasks.adapters.aws.s3:S3TaskSource",
        "cloud_tasks.adapters.gcp.storage:GcsTaskSource",
        "cloud_tasks.adapters.web.http:HttpTaskSource",
    ),
}

CASES = [(port, path) for port, paths in ADAPTERS.items() for path in paths]


def _load(path: str) -> type:
    module_name, _, name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:  # a cloud's client libraries are not installed
        pytest.skip(f"{module_name}: {exc}")
    cls: type = getattr(module, name)
    return cls


def _methods(port: type) -> dict[str, Callable[..., Any]]:
    return {
        name: value
        for name, value in vars(port).items()
        if not name.startswith("_") and inspect.isfunction(value)
    }


def _attributes(port: type) -> set[str]:
    return {name for name in vars(port).get("__annotations__", {}) if not name.startswith("_")}


#: Adapters whose data members are set per object: how to build one without a network.
def _instances(tmp_path: Path) -> dict[str, Callable[[], object]]:
    def load(path: str) -> Any:
        return _load(path)

    return {
        "InMemoryTaskQueue": lambda: load("cloud_tasks.adapters.memory.queue:InMemoryTaskQueue")(
            "q"
        ),
        "CompactTaskQueue": lambda: load(
            "cloud_tasks.adapters.memory.compact_queue:CompactTaskQueue"
        )("q"),
        "SqliteTaskQueue": lambda: load("cloud_tasks.adapters.local.sqlite_queue:SqliteTaskQueue")(
            tmp_path / "q.sqlite3", "q"
        ),
        "SqsTaskQueue": lambda: load("cloud_tasks.adapters.aws.sqs:SqsTaskQueue")(
            "q", region="us-east-1"
        ),
        "PubSubTaskQueue": lambda: load("cloud_tasks.adapters.gcp.pubsub:PubSubTaskQueue")(
            "queue", project_id="p"
        ),
        "InMemoryEventQueue": lambda: load("cloud_tasks.adapters.memory.queue:InMemoryEventQueue")(
            "q-events"
        ),
        "CompactEventQueue": lambda: load(
            "cloud_tasks.adapters.memory.compact_queue:CompactEventQueue"
        )("q-events"),
        "SqliteEventQueue": lambda: load(
            "cloud_tasks.adapters.local.sqlite_queue:SqliteEventQueue"
        )(tmp_path / "q.sqlite3", "q-events"),
        "SqsEventQueue": lambda: load("cloud_tasks.adapters.aws.sqs:SqsEventQueue")(
            "q-events", region="us-east-1"
        ),
        "PubSubEventQueue": lambda: load("cloud_tasks.adapters.gcp.pubsub:PubSubEventQueue")(
            "queue-events", project_id="p"
        ),
        "_WatchedCompute": lambda: load("cloud_tasks.service_layer.insight:_WatchedCompute")(
            load("cloud_tasks.adapters.memory.compute:InMemoryCompute")(), lambda *_: None
        ),
        "FolderCheckpointStore": lambda: load(
            "cloud_tasks.adapters.local.checkpoints:FolderCheckpointStore"
        )(str(tmp_path / "checkpoints")),
        "S3CheckpointStore": lambda: load("cloud_tasks.adapters.aws.checkpoints:S3CheckpointStore")(
            "bucket", "prefix"
        ),
        "GcsCheckpointStore": lambda: load(
            "cloud_tasks.adapters.gcp.checkpoints:GcsCheckpointStore"
        )("bucket", "prefix"),
    }


@pytest.mark.parametrize(("port", "path"), CASES, ids=[path for _port, path in CASES])
def test_the_adapter_has_every_method_of_its_port_with_the_same_parameters(
    port: type, path: str
) -> None:
    cls = _load(path)
    for name, declared in _methods(port).items():
        implemented = getattr(cls, name, None)
        assert callable(implemented), f"{cls.__name__} lacks {port.__name__}.{name}"
        wanted = list(inspect.signature(declared).parameters)
        got = list(inspect.signature(implemented).parameters)
        assert got == wanted, f"{cls.__name__}.{name}{got} differs from the port's {wanted}"


@pytest.mark.parametrize(("port", "path"), CASES, ids=[path for _port, path in CASES])
def test_the_adapter_has_every_attribute_of_its_port(port: type, path: str, tmp_path: Path) -> None:
    cls = _load(path)
    wanted = _attributes(port)
    if not wanted:
        return
    factories = _instances(tmp_path)
    target: object = factories[cls.__name__]() if cls.__name__ in factories else cls
    missing = sorted(name for name in wanted if not hasattr(target, name))
    assert not missing, f"{cls.__name__} lacks {port.__name__} attribute(s) {missing}"


def test_every_port_is_covered() -> None:
    protocols = {
        value
        for value in vars(ports).values()
        if inspect.isclass(value)
        and value.__module__ == ports.__name__
        and getattr(value, "_is_protocol", False)
    }
    assert protocols == set(ADAPTERS)


def test_the_compact_queues_refuse_send_once_and_purge_events(tmp_path: Path) -> None:
    from cloud_tasks.adapters.memory.compact_queue import CompactEventQueue, CompactTaskQueue
    from cloud_tasks.domain.tasks import Envelope, Task

    queue = CompactTaskQueue("q")
    queue.create()
    assert not queue.remembers_loads
    with pytest.raises(NotSupportedError, match="'q'"):
        queue.send_once([Envelope(Task("t", {}))])
    assert queue.depth() == 0
    events = CompactEventQueue("q-events")
    events.create()
    events.send([{"event_type": "task_completed"}] * 3)
    events.receive(1)
    assert events.depth() == 3
    events.purge()
    assert events.depth() == 0 and events.receive(5) == []


# --- Where adapters are built, and who reads endpoint variables -----------------------------

#: Every adapter class of a port, by name.
ADAPTER_NAMES = frozenset(path.partition(":")[2] for _port, path in CASES) - {"_WatchedCompute"}
#: Modules that may build adapters: the composition root and the adapters themselves.
BUILDERS = ("bootstrap.py", "adapters/")


def _python_files() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_only_the_composition_root_builds_adapters() -> None:
    found = []
    for path in _python_files():
        relative = path.relative_to(SRC).as_posix()
        if relative.startswith(BUILDERS):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if called in ADAPTER_NAMES:
                found.append(f"{relative}:{node.lineno} builds {called}")
    assert found == []


ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL", "_EMULATOR_HOST", "API_ENDPOINT_OVERRIDE")


def test_entrypoints_never_read_endpoint_variables() -> None:
    found = [
        f"{path.relative_to(SRC).as_posix()}: {variable}"
        for path in _python_files()
        if path.relative_to(SRC).as_posix().startswith("entrypoints/")
        for variable in ENDPOINT_VARIABLES
        if variable in path.read_text(encoding="utf-8")
    ]
    assert found == []

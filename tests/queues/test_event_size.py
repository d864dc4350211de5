"""An outcome too large for the event queue is an error outcome of its task (SPEC §7).

On SQS a 300 KB result used to stall the worker: the send was retried forever, the task never
settled and another task's event was sent again and again. The limit (``MAX_EVENT_BYTES``) is
now the same on every provider, so the same worker behaves the same on SQS (moto) and on the
local SQLite queue.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cloud_tasks import bootstrap
from cloud_tasks.domain.options import JobConfig, ProviderOptions
from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.ports import MAX_EVENT_BYTES, EventQueue, TaskQueue

pytestmark = pytest.mark.filterwarnings("ignore:.*return_immediately:DeprecationWarning")

SCRIPT = Path(__file__).parent / "scripts" / "queue_worker.py"
BIG = 300_000


@pytest.fixture(params=["sqlite", "sqs"])
def queues(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[JobConfig, dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RMS_CLOUD_TASKS_")}
    env["RMS_CLOUD_TASKS_JOB_ID"] = "size-job"
    if request.param == "sqlite":
        queue_dir = str(tmp_path / "queues")
        monkeypatch.setenv("RMS_CLOUD_TASKS_QUEUE_DIR", queue_dir)
        env.update(RMS_CLOUD_TASKS_PROVIDER="local", RMS_CLOUD_TASKS_QUEUE_DIR=queue_dir)
        return JobConfig("local", ProviderOptions(job_id="size-job")), env
    request.getfixturevalue("moto_server")
    env.update(os.environ)  # picks up AWS_ENDPOINT_URL
    env.update(RMS_CLOUD_TASKS_PROVIDER="aws", RMS_CLOUD_TASKS_REGION="us-east-1")
    return JobConfig("aws", ProviderOptions(job_id="size-job", region="us-east-1")), env


def _drain(events: EventQueue) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while received := events.receive(100, wait_s=1.0):
        seen.extend(dict(r.event) for r in received)
        events.ack([r.receipt for r in received])
    return seen


def _run(config: JobConfig, env: dict[str, str], tasks: list[Task], *args: str) -> Any:
    queue: TaskQueue = bootstrap.make_task_queue(config)
    events: EventQueue = bootstrap.make_event_queue(config)
    queue.create()
    events.create()
    queue.send([Envelope(task) for task in tasks])
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--exit-when-idle", "3", "--keepalive-interval", "0", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    seen = _drain(events)
    left = queue.receive(10, 30.0, wait_s=0.5)
    return proc, seen, left


@pytest.mark.parametrize("mode", ["big_result", "big_exception"])
def test_an_oversized_outcome_is_an_error_outcome_and_the_worker_goes_on(
    queues: tuple[JobConfig, dict[str, str]], mode: str
) -> None:
    config, env = queues
    tasks = [Task("big", {"mode": mode, "bytes": BIG})]
    tasks += [Task(f"t{i}", {"value": i}) for i in range(12)]
    proc, seen, left = _run(config, env, tasks, "--num-simultaneous-tasks", "3")
    assert proc.returncode == 0, proc.stderr
    assert left == []  # every task settled, the big one included
    by_task: dict[str, list[dict[str, Any]]] = {}
    for event in seen:
        by_task.setdefault(str(event.get("task_id")), []).append(event)
    big = by_task["big"]
    assert [e["event_type"] for e in big] == ["task_exception"], big
    assert big[0]["retry"] is False  # not retried without --retry-on-exception
    text = big[0]["exception"]
    assert str(MAX_EVENT_BYTES) in text and "dropped" in text and len(text) < 10_000
    for i in range(12):  # reported exactly once each: no event was sent again and again
        assert [e["success"] for e in by_task[f"t{i}"]] == [True]


def test_an_oversized_result_is_retried_per_the_rules_then_dead_lettered(
    queues: tuple[JobConfig, dict[str, str]],
) -> None:
    config, env = queues
    tasks = [Task("big", {"mode": "big_result", "bytes": BIG})]
    proc, seen, left = _run(config, env, tasks, "--retry-on-exception", "--max-attempts", "2")
    assert proc.returncode == 0, proc.stderr
    assert left == []
    kinds = [(e["event_type"], e.get("attempt")) for e in seen if e.get("task_id") == "big"]
    assert kinds == [("task_exception", 1), ("task_exception", 2), ("task_dead_lettered", 2)]


def test_every_event_queue_refuses_an_oversized_event(
    queues: tuple[JobConfig, dict[str, str]],
) -> None:
    from cloud_tasks.adapters.memory.queue import InMemoryEventQueue
    from cloud_tasks.exceptions import ProviderError

    config, _ = queues
    provider_queue: EventQueue = bootstrap.make_event_queue(config)
    provider_queue.create()
    memory = InMemoryEventQueue("size-job-events")
    memory.create()
    for events in (provider_queue, memory):
        events.send([{"event_type": "fits", "blob": "x" * (MAX_EVENT_BYTES - 100)}])
        with pytest.raises(ProviderError, match=f"over the {MAX_EVENT_BYTES}-byte event limit"):
            events.send([{"event_type": "small"}, {"event_type": "big", "blob": "x" * BIG}])
        assert [e.event["event_type"] for e in events.receive(10, wait_s=0.5)] == ["fits"]

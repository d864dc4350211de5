"""Tasks and the message envelope every queue carries (SPEC §3, §7)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

SQS_MAX_MESSAGE_BYTES = 256 * 1024
PUBSUB_MAX_MESSAGE_BYTES = 10 * 1000 * 1000


@attrs.frozen
class Task:
    """One unit of work: a unique id and a JSON-representable mapping."""

    task_id: str
    data: Mapping[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen
class Envelope:
    """What a queue message holds: the task plus its count of application failures so far.

    Application failures travel in the message body (not in the queue's receive count) so that
    preemptions and lost leases, which also bump the receive count, never consume an attempt.
    """

    task: Task
    failures: int = 0

    def encode(self) -> str:
        return json.dumps(
            {"task_id": self.task.task_id, "data": self.task.data, "failures": self.failures},
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, body: str | bytes) -> Envelope:
        payload = json.loads(body)
        return cls(
            Task(str(payload["task_id"]), payload.get("data") or {}),
            int(payload.get("failures", 0)),
        )


def encoded_size(task: Task) -> int:
    """Size in bytes of the message that carries ``task`` with no failures yet."""
    return len(Envelope(task).encode().encode("utf-8"))

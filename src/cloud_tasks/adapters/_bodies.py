"""Message bodies shared by the queue adapters: events as compact JSON, envelopes within a limit."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from cloud_tasks.domain.tasks import Envelope
from cloud_tasks.exceptions import ProviderError
from cloud_tasks.ports import MAX_EVENT_BYTES


def encode_events(queue_name: str, events: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each event as compact JSON; ``ProviderError`` before any is sent if one cannot be.

    Every adapter refuses an event over ``MAX_EVENT_BYTES`` here, whatever its own service
    would take, so an oversized event fails the same way on every provider.
    """
    try:
        bodies = [json.dumps(dict(event), separators=(",", ":")) for event in events]
    except (TypeError, ValueError) as exc:
        raise ProviderError(f"queue {queue_name!r}: event is not JSON-serializable: {exc}") from exc
    for body in bodies:
        size = len(body.encode("utf-8"))
        if size > MAX_EVENT_BYTES:
            raise ProviderError(
                f"queue {queue_name!r}: an event is {size} bytes, over the {MAX_EVENT_BYTES}-byte "
                "event limit"
            )
    return bodies


def encode_envelopes(
    queue_name: str, envelopes: Sequence[Envelope], max_message_bytes: int
) -> list[str]:
    """Each envelope encoded; ``ProviderError`` before any is sent if one is over the limit."""
    bodies = [envelope.encode() for envelope in envelopes]
    for envelope, body in zip(envelopes, bodies, strict=True):
        size = len(body.encode("utf-8"))
        if size > max_message_bytes:
            raise ProviderError(
                f"queue {queue_name!r}: task {envelope.task.task_id!r} is {size} bytes, "
                f"over the {max_message_bytes}-byte message limit"
            )
    return bodies


__all__ = ["encode_envelopes", "encode_events"]

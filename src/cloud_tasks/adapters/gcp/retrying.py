"""Retries for the Compute Engine and Cloud Billing REST clients.

The generated clients retry few methods by default (reads on 503 only, never on 429, inserts
and deletes not at all). ``RetryingClient`` wraps a client so every method call gets
``transient_retry()`` unless the caller passes its own ``retry``: capped exponential backoff
with jitter on throttling (429 ``RESOURCE_EXHAUSTED``), 5xx, timeouts and connection resets.
Retrying an insert is safe here: instances are created under a fixed name, so a repeated
insert cannot start a second VM.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

#: Seconds a call may keep retrying before the last error is raised.
RETRY_DEADLINE_S = 120.0


def transient_retry(deadline_s: float = RETRY_DEADLINE_S) -> Any:
    """A ``google.api_core.retry.Retry`` for transient errors (up to ``deadline_s`` in all)."""
    import requests
    from google.api_core import exceptions as gexc
    from google.api_core import retry as gretry
    from google.auth import exceptions as aexc

    return gretry.Retry(
        initial=0.2,
        maximum=10.0,
        multiplier=2.0,
        timeout=deadline_s,
        predicate=gretry.if_exception_type(
            gexc.TooManyRequests,
            gexc.ResourceExhausted,
            gexc.InternalServerError,
            gexc.BadGateway,
            gexc.ServiceUnavailable,
            gexc.GatewayTimeout,
            gexc.DeadlineExceeded,
            requests.exceptions.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.Timeout,
            aexc.TransportError,
        ),
    )


class RetryingClient:
    """A generated client whose method calls retry transient errors by default."""

    def __init__(self, client: Any, retry: Any | None = None) -> None:
        self._client = client
        self._retry = retry if retry is not None else transient_retry()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name.startswith("_") or not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def call(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("retry", self._retry)
            return attribute(*args, **kwargs)

        wrapped: Callable[..., Any] = call
        return wrapped


__all__ = ["RETRY_DEADLINE_S", "RetryingClient", "transient_retry"]

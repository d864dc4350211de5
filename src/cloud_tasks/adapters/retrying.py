"""Capped exponential backoff with full jitter, for calls that have no SDK-level retries.

boto3 clients retry through botocore's retry modes and Google clients through
``google.api_core.retry.Retry``; plain ``urllib`` calls (task files on web servers) and SQS
batch sends that fail in part use ``call_with_retries``, which runs on tenacity with an
injectable ``sleep`` (stamina, built on tenacity, always sleeps on the wall clock). Only
transient failures are retried (throttling, 5xx, timeouts, connection resets); anything else is
raised at once, so a real error reaches the user as one clear message without a wait.
"""

from __future__ import annotations

import email.utils
import http.client
import random
import socket
import time
import urllib.error
from collections.abc import Callable
from typing import TypeVar

import attrs

_T = TypeVar("_T")

#: HTTP statuses worth another try: request timeout, throttling and server-side failures.
TRANSIENT_HTTP_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})


@attrs.frozen
class Backoff:
    """How long to wait before each retry: ``initial_s * multiplier**n``, capped at
    ``maximum_s``, times a uniform random fraction (full jitter, so that many clients that
    failed together do not retry together). ``max_attempts`` counts the first try."""

    initial_s: float = 0.2
    maximum_s: float = 10.0
    multiplier: float = 2.0
    max_attempts: int = 6

    def delay_s(self, retry: int, fraction: float) -> float:
        """The wait before retry number ``retry`` (0 for the first) for a jitter ``fraction``
        in [0, 1)."""
        try:
            cap = min(self.maximum_s, self.initial_s * self.multiplier**retry)
        except OverflowError:  # a worker that has retried for hours: long past the cap
            cap = self.maximum_s
        return cap * min(max(fraction, 0.0), 1.0)


def retry_after_s(exc: BaseException) -> float | None:
    """Seconds a 429/503 answer asked us to wait (``Retry-After``), if it said."""
    if not isinstance(exc, urllib.error.HTTPError) or exc.headers is None:
        return None
    value = exc.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return None if when is None else max(0.0, when.timestamp() - time.time())


def is_transient(exc: BaseException) -> bool:
    """True for failures another try may not repeat: a throttling or 5xx answer, a timeout,
    a reset or refused connection, a connection closed before the answer."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in TRANSIENT_HTTP_STATUSES
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return isinstance(reason, BaseException) and is_transient(reason)
    return isinstance(
        exc,
        TimeoutError
        | socket.timeout
        | ConnectionError
        | http.client.RemoteDisconnected
        | http.client.IncompleteRead,
    )


def call_with_retries(
    func: Callable[[], _T],
    *,
    retryable: Callable[[BaseException], bool] = is_transient,
    backoff: Backoff = Backoff(),
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> _T:
    """Call ``func`` until it returns, retrying transient failures with backoff and jitter.

    Raises the last exception when it is not ``retryable`` or after ``backoff.max_attempts``
    tries. ``on_retry(attempt, exc, delay_s)`` is told about each retry (for logs and tests).
    The waits go through ``sleep`` (a virtual clock's in tests).
    """
    try:
        return func()
    except Exception as exc:
        if backoff.max_attempts <= 1 or not retryable(exc):
            raise
        first = exc
    # Imported on the first failure only: tenacity costs ~80 ms to import, and most calls
    # succeed at once (a worker sending its events, a task file read over HTTP).
    import tenacity

    replay: list[BaseException] = [first]

    def attempt() -> _T:
        if replay:
            raise replay.pop()
        return func()

    def wait(state: tenacity.RetryCallState) -> float:
        delay = backoff.delay_s(state.attempt_number - 1, jitter())
        error = state.outcome.exception() if state.outcome is not None else None
        asked = retry_after_s(error) if error is not None else None
        if asked is not None:
            delay = max(delay, min(asked, backoff.maximum_s))
        return delay

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            error = state.outcome.exception()
            if error is not None:
                on_retry(state.attempt_number, error, state.upcoming_sleep)

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(backoff.max_attempts),
        retry=tenacity.retry_if_exception(lambda e: isinstance(e, Exception) and retryable(e)),
        wait=wait,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(attempt)


__all__ = [
    "TRANSIENT_HTTP_STATUSES",
    "Backoff",
    "call_with_retries",
    "is_transient",
    "retry_after_s",
]

"""botocore settings shared by the EC2 and Pricing clients: retries, timeouts, proxy pages.

botocore's ``standard`` retry mode retries throttling (``ThrottlingException``,
``RequestLimitExceeded``, ...), 5xx answers, timeouts and connection errors with capped
exponential backoff and full jitter. ``AWS_RETRY_MODE`` / ``AWS_MAX_ATTEMPTS`` (or the same
settings in the AWS config file) still win, so a user can pick ``adaptive`` or more attempts.

EC2 answers a capacity error (``InsufficientInstanceCapacity``) to ``RunInstances`` with a 500,
which the standard mode would retry up to ``MAX_ATTEMPTS`` times with backoff; the zone stays
full meanwhile, so ``final_capacity_errors`` makes those answers final and the pool manager
moves on to the next zone or type at once.
"""

from __future__ import annotations

import os
from typing import Any

from cloud_tasks.adapters.aws.translate import CAPACITY_CODES

#: Tries per call, the first included.
MAX_ATTEMPTS = 8


def client_config(**settings: Any) -> Any:
    """A ``botocore.config.Config`` with standard retries; ``settings`` are added to it."""
    from botocore.config import Config

    retries: dict[str, Any] = {}
    if not os.environ.get("AWS_RETRY_MODE"):
        retries["mode"] = "standard"
    if not os.environ.get("AWS_MAX_ATTEMPTS"):
        retries["max_attempts"] = MAX_ATTEMPTS
    options: dict[str, Any] = {"connect_timeout": 10, "read_timeout": 60, **settings}
    # The retries dict is built key by key, which the stubs cannot follow.
    return Config(retries=retries, **options)  # type: ignore[arg-type]


def _capacity_is_final(response: Any = None, **_: Any) -> bool | None:
    """``needs-retry`` handler: ``False`` (do not retry) for a capacity error, else no say.

    botocore asks every handler and acts on the first answer that is not ``None``; handlers
    of the operation's own event come before the service-wide retry handler.
    """
    if response is None:
        return None
    code = (response[1].get("Error") or {}).get("Code")
    return False if code in CAPACITY_CODES else None


def final_capacity_errors(client: Any) -> Any:
    """``client`` (EC2), made to return a ``RunInstances`` capacity error without retrying it."""
    client.meta.events.register(
        "needs-retry.ec2.RunInstances",
        _capacity_is_final,
        unique_id="cloud-tasks-final-capacity-errors",
    )
    return client


def _is_page(response: dict[str, Any]) -> bool:
    """A 5xx answer whose body is an HTML page (a proxy's or load balancer's), not AWS's."""
    if int(response.get("status_code") or 0) < 500:
        return False
    headers = response.get("headers") or {}
    content_type = str(headers.get("content-type") or headers.get("Content-Type") or "")
    body = response.get("body") or b""
    start = body[:64].lstrip().lower() if isinstance(body, bytes) else b""
    return "html" in content_type.lower() or start.startswith((b"<!doctype", b"<html"))


def _blank_proxy_page(response_dict: dict[str, Any], **_: Any) -> None:
    # botocore recognises a 5xx with an empty body (or one starting exactly '<html>') as a
    # generic error and retries it; any other HTML page reaches the XML parser, which makes
    # an "Unknown" error that is never retried. Emptying the page gives every 5xx page the
    # generic path: code "502", retried with backoff like any server error.
    if _is_page(response_dict):
        response_dict["body"] = b""


def tolerate_proxy_pages(client: Any) -> Any:
    """``client`` (EC2, Pricing), made to retry 5xx answers whose body is an HTML page."""
    client.meta.events.register("before-parse", _blank_proxy_page)
    return client


__all__ = ["MAX_ATTEMPTS", "client_config", "final_capacity_errors", "tolerate_proxy_pages"]

"""botocore settings shared by the EC2 and Pricing clients: retries, timeouts.

botocore's ``standard`` retry mode retries throttling (``ThrottlingException``,
``RequestLimitExceeded``, ...), 5xx answers, timeouts and connection errors with capped
exponential backoff and full jitter. ``AWS_RETRY_MODE`` / ``AWS_MAX_ATTEMPTS`` (or the same
settings in the AWS config file) still win, so a user can pick ``adaptive`` or more attempts.
"""

from __future__ import annotations

import os
from typing import Any

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


__all__ = ["MAX_ATTEMPTS", "client_config"]

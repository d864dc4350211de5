"""Delivering a notification: a JSON POST to a webhook, or a command fed the JSON on stdin.

Both are bounded by a timeout and raise ``NotificationError`` on any failure; the caller logs
it and goes on (a notification never stops a job). Messages never contain the webhook URL,
which often holds a token.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from cloud_tasks.exceptions import CloudTasksError

TIMEOUT_S = 10.0


class NotificationError(CloudTasksError):
    """A notification could not be delivered."""


def post_webhook(url: str, body: Mapping[str, Any], timeout_s: float = TIMEOUT_S) -> None:
    """POST ``body`` as JSON to ``url``; a status other than 2xx is a failure."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "cloud_tasks"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read(65536)
    except urllib.error.HTTPError as exc:
        raise NotificationError(f"the webhook answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NotificationError(f"the webhook is unreachable: {reason}") from None


def run_command(command: str, body: Mapping[str, Any], timeout_s: float = TIMEOUT_S) -> None:
    """Run ``command`` (a shell command line) with ``body`` as JSON on its standard input."""
    try:
        result = subprocess.run(
            command,
            shell=True,
            input=json.dumps(body),
            text=True,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise NotificationError(f"the command did not finish within {timeout_s:g} s") from None
    except OSError as exc:
        raise NotificationError(f"the command could not start: {exc.strerror or exc}") from None
    if result.returncode != 0:
        last = (result.stderr or "").strip().splitlines()[-1:] or [""]
        raise NotificationError(
            f"the command exited with status {result.returncode}"
            + (f": {last[0][:200]}" if last[0] else "")
        )


__all__ = ["NotificationError", "post_webhook", "run_command"]

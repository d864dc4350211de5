"""EC2 instance metadata over IMDSv2 (plain ``urllib``; no boto3 needed).

Endpoint: ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` (e.g. a loopback fake in tests), else the
link-local default. ``AWS_EC2_METADATA_DISABLED=true`` turns every lookup into "unknown"
unless an endpoint is passed explicitly.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.error
import urllib.request

from cloud_tasks.exceptions import ProviderError

_DEFAULT_ENDPOINT = "http://169.254.169.254"
_TOKEN_TTL_S = 21600
# Refresh the session token well before it expires.
_TOKEN_REFRESH_MARGIN_S = 60


class Ec2InstanceMetadata:
    """``InstanceMetadata`` for EC2: instance id and the spot ``instance-action`` notice."""

    def __init__(self, endpoint: str | None = None, *, timeout_s: float = 1.0) -> None:
        explicit = endpoint or os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        self.disabled = endpoint is None and (
            os.environ.get("AWS_EC2_METADATA_DISABLED", "").strip().lower() == "true"
        )
        self.endpoint = (explicit or _DEFAULT_ENDPOINT).rstrip("/")
        self.timeout_s = timeout_s
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = threading.Lock()

    def _fetch_token(self) -> str:
        with self._lock:
            if self._token is not None and time.monotonic() < self._token_expires:
                return self._token
            request = urllib.request.Request(
                f"{self.endpoint}/latest/api/token",
                method="PUT",
                headers={"X-aws-ec2-metadata-token-ttl-seconds": str(_TOKEN_TTL_S)},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    token: str = response.read().decode("ascii").strip()
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise ProviderError(
                    f"EC2 metadata {self.endpoint}: no IMDSv2 token: {exc}"
                ) from exc
            self._token = token
            self._token_expires = time.monotonic() + _TOKEN_TTL_S - _TOKEN_REFRESH_MARGIN_S
            return token

    def _get(self, path: str) -> str | None:
        """Body of ``/latest/meta-data/<path>``, or None on 404."""
        for _ in range(2):
            token = self._fetch_token()
            request = urllib.request.Request(
                f"{self.endpoint}/latest/meta-data/{path}",
                headers={"X-aws-ec2-metadata-token": token},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    body: str = response.read().decode("utf-8")
                    return body
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return None
                if exc.code == 401:
                    with self._lock:
                        self._token = None
                    continue
                raise ProviderError(f"EC2 metadata {path}: HTTP {exc.code}") from exc
            except (urllib.error.URLError, OSError) as exc:
                raise ProviderError(f"EC2 metadata {self.endpoint}: {exc}") from exc
        raise ProviderError(f"EC2 metadata {path}: token rejected")

    def instance_id(self) -> str | None:
        if self.disabled:
            return None
        return self._get("instance-id")

    def termination_notice(self) -> bool:
        """True once ``spot/instance-action`` exists (stop, hibernate or terminate)."""
        if self.disabled:
            return False
        return self._get("spot/instance-action") is not None


__all__ = ["Ec2InstanceMetadata"]

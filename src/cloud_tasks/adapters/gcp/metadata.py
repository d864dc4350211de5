"""Compute Engine instance metadata over plain ``urllib`` (no Google client needed).

Host: ``GCE_METADATA_HOST`` (e.g. a loopback fake in tests), else ``GCE_METADATA_IP``, else the
standard ``metadata.google.internal``. Every request carries ``Metadata-Flavor: Google`` and
every answer must carry it back, so a stray server is never mistaken for the metadata server.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request

from cloud_tasks.exceptions import ProviderError

_DEFAULT_HOST = "metadata.google.internal"


class GceInstanceMetadata:
    """``InstanceMetadata`` for Compute Engine: instance id and ``instance/preempted``."""

    def __init__(self, host: str | None = None, *, timeout_s: float = 1.0) -> None:
        chosen = host or os.environ.get("GCE_METADATA_HOST") or os.environ.get("GCE_METADATA_IP")
        self.host = chosen or _DEFAULT_HOST
        self.timeout_s = timeout_s

    def _get(self, path: str) -> str | None:
        base = self.host if "://" in self.host else f"http://{self.host}"
        request = urllib.request.Request(
            f"{base}/computeMetadata/v1/{path}", headers={"Metadata-Flavor": "Google"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                if response.headers.get("Metadata-Flavor") != "Google":
                    raise ProviderError(f"GCE metadata {self.host}: not a metadata server")
                body: str = response.read().decode("utf-8")
                return body
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise ProviderError(f"GCE metadata {path}: HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ProviderError(f"GCE metadata {self.host}: {exc}") from exc

    def instance_id(self) -> str | None:
        value = self._get("instance/id")
        return value.strip() if value else None

    def termination_notice(self) -> bool:
        """True once the VM is being preempted (``instance/preempted`` is ``TRUE``)."""
        value = self._get("instance/preempted")
        return value is not None and value.strip().upper() == "TRUE"


__all__ = ["GceInstanceMetadata"]

"""Instance metadata for the ``local`` provider: what a local "instance" knows about itself.

``LocalCompute`` starts every instance with ``RMS_CLOUD_TASKS_INSTANCE_ID`` in its environment
(the local counterpart of the EC2/GCE metadata servers), so the worker's events name the
instance and the pool manager can tell which instance is alive. A local instance gets no spot
notices; use the worker's ``--simulate-spot-termination-*`` options to exercise them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

INSTANCE_ID_VARIABLE = "RMS_CLOUD_TASKS_INSTANCE_ID"


class LocalInstanceMetadata:
    """``ports.InstanceMetadata`` from the environment the local instance was started with."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def instance_id(self) -> str | None:
        value = self._environ.get(INSTANCE_ID_VARIABLE, "").strip()
        return value or None

    def termination_notice(self) -> bool:
        return False


__all__ = ["INSTANCE_ID_VARIABLE", "LocalInstanceMetadata"]

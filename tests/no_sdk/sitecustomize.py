"""Makes the modules named in ``CLOUD_TASKS_TEST_ABSENT_MODULES`` (comma-separated top-level
names, e.g. ``google,boto3,botocore``) impossible to import, as if they were not installed.

Put this directory first on ``PYTHONPATH`` of a subprocess: Python imports ``sitecustomize`` at
start-up, before any of our code, so the interpreter behaves like one without those packages.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

_ABSENT = frozenset(
    name for name in os.environ.get("CLOUD_TASKS_TEST_ABSENT_MODULES", "").split(",") if name
)


class _AbsentModules:
    """A meta-path finder that answers as the import system does for a missing package."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname.partition(".")[0] in _ABSENT:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


if _ABSENT:
    sys.meta_path.insert(0, _AbsentModules())

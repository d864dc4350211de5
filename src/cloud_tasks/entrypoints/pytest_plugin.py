"""The ``cloud_tasks`` pytest plugin (SPEC §14), registered through the ``pytest11`` entry point.

Importing this module must not import any cloud SDK.
"""

from __future__ import annotations

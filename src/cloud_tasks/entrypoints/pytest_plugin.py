"""The ``cloud_tasks`` pytest plugin (SPEC §14), registered through the ``pytest11`` entry point.

It provides one fixture, ``cloud_tasks_sim`` (a ``cloud_tasks.testing.CloudTasksSim``). Pytest
imports this module at start-up in every project where Cloud Tasks is installed, so it imports
nothing but pytest here: the worker runtime and the in-memory queues load only when a test asks
for the fixture, and no cloud SDK is ever imported. Disable it with ``-p no:cloud_tasks``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from cloud_tasks.testing import CloudTasksSim


@pytest.fixture
def cloud_tasks_sim() -> Iterator[CloudTasksSim]:
    """A simulated Cloud Tasks job: ``add_tasks(...)``, then ``run(process_task, ...)``.

    ``run`` drives the real worker (one forked process per task) against an in-memory queue
    and returns a ``cloud_tasks.testing.SimReport``. See ``docs/testing.md``.
    """
    from cloud_tasks.testing import simulate

    with simulate() as sim:
        yield sim

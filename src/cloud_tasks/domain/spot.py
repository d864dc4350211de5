"""What a spot termination notice means for a worker's tasks (SPEC §10).

A notice stops the worker taking tasks at once; the tasks still running at the release
deadline are killed and their messages released (visibility 0) so that another worker starts
them within seconds. The deadline leaves a margin before the provider takes the VM: AWS warns
two minutes ahead, GCP 30 seconds.
"""

from __future__ import annotations

#: Seconds from a real notice to the release deadline, by provider.
NOTICE_TO_DEADLINE_S = {"aws": 100.0, "gcp": 20.0}
#: ... for any other provider (local, memory): the shortest warning a cloud gives, less margin.
DEFAULT_NOTICE_TO_DEADLINE_S = 20.0
#: Why the tasks still running at the deadline were released (the ``task_released`` reason).
SPOT_RELEASE_REASON = "spot termination"


def release_deadline_s(provider: str | None, requested_s: float | None = None) -> float:
    """Seconds from a notice until unfinished tasks are killed and released: ``requested_s``
    when given (``--simulate-spot-termination-delay``, tests), else the provider's.

    >>> release_deadline_s("aws"), release_deadline_s("local"), release_deadline_s("gcp", 1.0)
    (100.0, 20.0, 1.0)
    """
    if requested_s is not None:
        return requested_s
    return NOTICE_TO_DEADLINE_S.get(provider or "", DEFAULT_NOTICE_TO_DEADLINE_S)


def watches_for_notices(*, is_spot: bool, metadata_supplied: bool) -> bool:
    """Whether the worker polls its instance metadata for notices: on a spot instance, or
    when a program supplied the metadata (a simulation, a test)."""
    return is_spot or metadata_supplied


__all__ = [
    "DEFAULT_NOTICE_TO_DEADLINE_S",
    "NOTICE_TO_DEADLINE_S",
    "SPOT_RELEASE_REASON",
    "release_deadline_s",
    "watches_for_notices",
]

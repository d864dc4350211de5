"""Validation rules for configuration values (SPEC §4): pure functions returning problems.

Each rule returns ``None`` (or an empty list) when the value is acceptable, otherwise a short
problem text without location; the configuration loader adds the key path and the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

JOB_ID_MAX_LENGTH = 24
QUEUE_NAME_MAX_LENGTH = 64
ARCHITECTURES: tuple[str, ...] = ("x86_64", "arm64")

_JOB_ID = re.compile(r"[a-z][a-z0-9-]*")
_QUEUE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
# GCP zones look like ``us-central1-a``; AWS zones like ``us-east-1a`` (``us-gov-west-1b``) and
# AWS Local Zones like ``us-west-2-lax-1a`` (region ``us-west-2``).
_GCP_ZONE = re.compile(r"([a-z]+-[a-z]+[0-9]+)-[a-z]")
_AWS_ZONE = re.compile(r"([a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-[0-9]+)(?:[a-z]|-[a-z]+-[0-9]+[a-z])")


def job_id_problem(job_id: str) -> str | None:
    """Why ``job_id`` is not a valid job id, or ``None``.

    A job id names queues, instances and labels on every provider, so it is held to the
    strictest common rule: lowercase letters, digits and ``-``, starting with a letter, at most
    24 characters.
    """
    if not job_id:
        return "must not be empty"
    if len(job_id) > JOB_ID_MAX_LENGTH:
        return f"{job_id!r} is {len(job_id)} characters long; the limit is {JOB_ID_MAX_LENGTH}"
    if not _JOB_ID.fullmatch(job_id):
        if not job_id[0].isalpha() or not job_id[0].islower():
            return f"{job_id!r} must start with a lowercase letter"
        bad = sorted({c for c in job_id if not (c.isdigit() or c == "-" or "a" <= c <= "z")})
        shown = " ".join(repr(c) for c in bad)
        return f"{job_id!r} may contain only lowercase letters, digits and '-' (not {shown})"
    return None


def queue_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a task queue, or ``None``.

    A queue name becomes an SQS queue name, a Pub/Sub topic and subscription and a local file
    name, with ``-events`` (and ``.fifo``) appended, and reaches API filters; it is held to what
    all of them accept: letters, digits, ``-`` and ``_``, starting with a letter, at most 64
    characters. Anything else (``*``, ``,``, quotes, ``/``, ``..``) is refused before it reaches
    a resource name.
    """
    if not name:
        return "must not be empty"
    if len(name) > QUEUE_NAME_MAX_LENGTH:
        limit = QUEUE_NAME_MAX_LENGTH
        return f"{name[:20]!r}... is {len(name)} characters long; the limit is {limit}"
    if not _QUEUE_NAME.fullmatch(name):
        if not name[0].isascii() or not name[0].isalpha():
            return f"{name!r} must start with a letter"
        bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "-_"))})
        shown = " ".join(repr(c) for c in bad)
        return f"{name!r} may contain only letters, digits, '-' and '_' (not {shown})"
    return None


def region_of_zone(zone: str) -> str | None:
    """The region a zone name belongs to (``us-central1-a`` → ``us-central1``), if recognised."""
    for pattern in (_GCP_ZONE, _AWS_ZONE):
        match = pattern.fullmatch(zone)
        if match:
            return match.group(1)
    return None


def min_max_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """Every ``(min_x, max_x)`` pair among ``names``, in the order the ``min_`` names appear."""
    present = set(names)
    return [
        (name, "max_" + name[4:])
        for name in names
        if name.startswith("min_") and "max_" + name[4:] in present
    ]


def min_max_problems(values: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(min_name, max_name, problem)`` for every pair whose minimum exceeds its maximum.

    A pair with either side ``None`` (no limit) is always consistent.
    """
    problems = []
    for low, high in min_max_pairs(list(values)):
        low_value, high_value = values[low], values[high]
        if low_value is None or high_value is None:
            continue
        if low_value > high_value:
            problems.append((low, high, f"{low}={low_value} is greater than {high}={high_value}"))
    return problems


def negative_problem(value: Any) -> str | None:
    """Why a count, size, price or duration is invalid, or ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value:  # NaN compares unequal to itself
        return "must be a number, not NaN"
    if value < 0:
        return f"must not be negative, got {value}"
    return None


def positive_problem(value: Any) -> str | None:
    """Why a quantity that divides others (``cpus_per_task``) is invalid, or ``None``."""
    problem = negative_problem(value)
    if problem is None and isinstance(value, int | float) and value == 0:
        return "must be greater than 0"
    return problem


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable regular expression, or ``None``."""
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"{pattern!r} is not a valid regular expression: {exc}"
    return None


def notify_problem(
    webhook: str | None, command: str | None, failure_rate: float
) -> tuple[str | None, str]:
    """Why a ``notify`` setting is unusable, or ``(None, "")``; the second item locates it."""
    if webhook is None and command is None:
        return "give a webhook URL, a command, or both", ""
    if webhook is not None:
        scheme, _, rest = webhook.partition("://")
        if scheme.lower() not in ("http", "https") or not rest or any(c.isspace() for c in rest):
            return "expected an http:// or https:// URL", ".webhook"
    if command is not None and not command.strip():
        return "must not be empty", ".command"
    if not 0 < failure_rate <= 1:
        return f"must be more than 0 and at most 1, got {failure_rate:g}", ".failure_rate"
    return None, ""


def checkpoint_location_problem(location: str) -> str | None:
    """Why ``location`` is not a folder, ``s3://BUCKET/PREFIX`` or ``gs://BUCKET/PREFIX``."""
    scheme, sep, rest = location.partition("://")
    if not sep:
        return None
    if scheme not in ("s3", "gs"):
        return (
            f"unknown scheme {scheme!r} in {location!r}; give a folder, s3://BUCKET/PREFIX "
            "or gs://BUCKET/PREFIX"
        )
    if not rest.partition("/")[0]:
        return f"no bucket in {location!r}; give {scheme}://BUCKET/PREFIX"
    return None


def choice_problem(value: str, choices: Sequence[str]) -> str | None:
    """Why ``value`` is not one of ``choices``, or ``None``."""
    if value in choices:
        return None
    return f"{value!r} is not one of {', '.join(choices)}"

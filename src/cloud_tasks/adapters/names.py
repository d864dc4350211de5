"""Names checked again at the provider boundary, before they reach a resource name or filter.

The configuration loader already rejects a bad job id; adapters are also used directly
(tests, the pytest plugin, other programs), and an EC2 filter value ``a*`` is a wildcard that
would match every job, a quote in a Compute Engine filter would change the expression.
"""

from __future__ import annotations

from cloud_tasks.domain.validation import job_id_problem
from cloud_tasks.exceptions import ConfigError


def checked_job_id(job_id: str) -> str:
    """``job_id`` when it is a valid job id; else a ``ConfigError`` saying why."""
    problem = job_id_problem(job_id)
    if problem:
        raise ConfigError(f"job id {problem}; a job id names instances and filters them")
    return job_id


__all__ = ["checked_job_id"]

"""Preflight checks (``cloud_tasks check``; also run by ``run`` and ``manage_pool`` before they
create anything): the provider's checks (credentials, permissions, image, quotas, the workers'
credentials) plus those every job gets (startup-script size, the task queue).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cloud_tasks.domain.options import JobConfig
from cloud_tasks.exceptions import CloudTasksError, CredentialsError
from cloud_tasks.ports import CheckResult, PreflightRequest
from cloud_tasks.service_layer.session import JobPlan

if TYPE_CHECKING:
    from cloud_tasks.bootstrap import Adapters

#: Bytes of startup script each provider accepts: EC2 user data, a Compute Engine metadata
#: value.
STARTUP_SCRIPT_LIMITS = {"aws": 16 * 1024, "gcp": 256 * 1024}
SYMBOLS = {"ok": "✔", "fail": "✘", "warn": "!"}
#: How long the queue check waits for the queue service.
QUEUE_CHECK_TIMEOUT_S = 15.0


class PreflightError(CloudTasksError):
    """A preflight check failed: the job would not work as configured."""


def preflight_request(config: JobConfig, plan: JobPlan) -> PreflightRequest:
    best = plan.best
    return PreflightRequest(
        region=plan.region,
        zone=plan.options[0].zone,
        image=plan.image,
        architecture=best.offer.architecture,
        instance_type=best.name,
        vcpus_per_instance=best.vcpus,
        instances=max(plan.initial_count, 1),
        use_spot=best.use_spot,
        service_account=config.provider_options.service_account,
    )


def run_checks(config: JobConfig, adapters: Adapters, plan: JobPlan) -> list[CheckResult]:
    """Every check, in order; none raises (a check that cannot run is a warning)."""
    from cloud_tasks import bootstrap

    try:
        preflight = bootstrap.make_preflight(config, plan.region)
        results = list(preflight.checks(preflight_request(config, plan)))
    except CredentialsError as exc:
        return [CheckResult("credentials", "fail", str(exc), "see docs/providers.md")]
    except CloudTasksError as exc:
        results = [CheckResult("provider", "warn", f"could not run the checks ({exc})")]
    if any(r.name == "credentials" and r.status == "fail" for r in results):
        return results
    return [*results, _script_size(config, plan), _queue(adapters)]


def _script_size(config: JobConfig, plan: JobPlan) -> CheckResult:
    limit = STARTUP_SCRIPT_LIMITS.get(config.provider)
    size = max(len(o.startup_script.encode("utf-8")) for o in plan.options)
    if limit is None:
        return CheckResult("startup script", "ok", f"{size} bytes")
    if size > limit:
        return CheckResult(
            "startup script",
            "fail",
            f"{size} bytes with the exports; {config.provider} accepts {limit}",
            "move the bulk of the script into a file it downloads",
        )
    return CheckResult("startup script", "ok", f"{size} of {limit} bytes")


def _queue(adapters: Adapters) -> CheckResult:
    name = f"queue {adapters.task_queue.name}"
    answer: list[bool | BaseException] = []

    def ask() -> None:
        try:
            answer.append(adapters.task_queue.exists())
        except BaseException as exc:  # handed to the caller below
            answer.append(exc)

    # The queue SDKs retry an unreachable service for minutes; a preflight says so sooner.
    asking = threading.Thread(target=ask, name="cloud-tasks-check-queue", daemon=True)
    asking.start()
    asking.join(QUEUE_CHECK_TIMEOUT_S)
    if not answer:
        return CheckResult(
            name, "warn", f"could not verify (no answer within {QUEUE_CHECK_TIMEOUT_S:g} s)"
        )
    result = answer[0]
    if isinstance(result, CredentialsError):
        return CheckResult(
            name, "fail", str(result), "grant the queue permissions (docs/queues.md)"
        )
    if isinstance(result, CloudTasksError):
        return CheckResult(name, "warn", f"could not verify ({result})")
    if isinstance(result, BaseException):
        raise result
    return CheckResult(name, "ok", "exists" if result else "reachable; it will be created")


def failed(results: Sequence[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.status == "fail"]


def require_checks(results: Sequence[CheckResult]) -> None:
    """Raise ``PreflightError`` (one line: the first failure and its fix) if any check failed."""
    bad = failed(results)
    if not bad:
        return
    first = bad[0]
    more = f" ({len(bad) - 1} more failed)" if len(bad) > 1 else ""
    fix = f"; {first.fix}" if first.fix else ""
    raise PreflightError(
        f"preflight check failed: {first.name}: {first.detail}{fix}{more}; 'cloud_tasks check' "
        "shows every check ('--no-check' skips them)"
    )


def render(results: Sequence[CheckResult]) -> str:
    """One row per check: symbol, name, detail, and the fix of a failure or warning."""
    width = max((len(r.name) for r in results), default=0)
    lines = []
    for r in results:
        line = f"{SYMBOLS[r.status]} {r.name:<{width}}  {r.detail}"
        if r.fix and r.status != "ok":
            line += f" — fix: {r.fix}"
        lines.append(line)
    return "\n".join(lines)


__all__ = [
    "PreflightError",
    "failed",
    "preflight_request",
    "render",
    "require_checks",
    "run_checks",
]

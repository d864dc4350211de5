"""``OfflinePreflight``: the ``Preflight`` port of providers with nothing to ask (``local``,
``memory``): their instances need no account, image or quota."""

from __future__ import annotations

from cloud_tasks.ports import CheckResult, PreflightRequest


class OfflinePreflight:
    """No provider checks; ``cloud_tasks check`` still runs the checks every job gets."""

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def checks(self, request: PreflightRequest) -> list[CheckResult]:
        return [CheckResult("provider", "ok", f"{self.provider}: no account needed")]

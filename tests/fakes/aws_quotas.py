"""A loopback fake of AWS Service Quotas (JSON 1.1, ``ServiceQuotasV20190624``).

moto knows no EC2 quotas, so this serves ``GetServiceQuota`` for the quotas a test sets, and
``NoSuchResourceException`` for any other, as the real API does for an unknown code.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.http import LoopbackServer


class FakeServiceQuotas:
    """``quotas``: (service code, quota code) → value."""

    def __init__(self, quotas: dict[tuple[str, str], float]) -> None:
        self.quotas = quotas
        self.server = LoopbackServer(self._handle)

    @property
    def url(self) -> str:
        return self.server.url

    def _handle(
        self, method: str, path: str, query: Any, body: Any, headers: dict[str, str]
    ) -> tuple[int, Any]:
        target = headers.get("X-Amz-Target")
        if method != "POST" or target != "ServiceQuotasV20190624.GetServiceQuota":
            return 400, {"__type": "InvalidParameterException", "message": f"unsupported {target}"}
        key = (str(body.get("ServiceCode")), str(body.get("QuotaCode")))
        if key not in self.quotas:
            return 400, {
                "__type": "NoSuchResourceException",
                "message": f"The request failed because the specified quota {key[1]} does not "
                "exist.",
            }
        return 200, {
            "Quota": {
                "ServiceCode": key[0],
                "QuotaCode": key[1],
                "QuotaArn": f"arn:aws:servicequotas:us-east-1:123456789012:{key[0]}/{key[1]}",
                "QuotaName": "vCPUs",
                "Value": self.quotas[key],
                "Unit": "None",
                "Adjustable": True,
                "GlobalQuota": False,
            }
        }

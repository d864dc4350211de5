"""A loopback fake of the AWS Price List Query API (JSON 1.1, ``AWSPriceListService``).

moto has no Pricing API, so this serves ``GetProducts`` over real HTTP with recorded-shape
products: filters are applied by attribute (TERM_MATCH), results paginate with ``NextToken``.
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.http import LoopbackServer


def compute_product(
    instance_type: str,
    region: str,
    usd_per_hour: float,
    *,
    operating_system: str = "Linux",
    tenancy: str = "Shared",
    pre_installed_sw: str = "NA",
    capacitystatus: str = "Used",
) -> dict[str, Any]:
    """A ``Compute Instance`` product as the Pricing API returns it."""
    sku = f"SKU{abs(hash((instance_type, region, operating_system, tenancy, capacitystatus))):X}"
    return {
        "product": {
            "productFamily": "Compute Instance",
            "attributes": {
                "instanceType": instance_type,
                "regionCode": region,
                "location": "US East (N. Virginia)",
                "operatingSystem": operating_system,
                "tenancy": tenancy,
                "preInstalledSw": pre_installed_sw,
                "capacitystatus": capacitystatus,
                "licenseModel": "No License required",
                "servicecode": "AmazonEC2",
            },
            "sku": sku,
        },
        "serviceCode": "AmazonEC2",
        "terms": {
            "OnDemand": {
                f"{sku}.JRTCKXETXF": {
                    "offerTermCode": "JRTCKXETXF",
                    "sku": sku,
                    "effectiveDate": "2025-05-01T00:00:00Z",
                    "priceDimensions": {
                        f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                            "unit": "Hrs",
                            "endRange": "Inf",
                            "beginRange": "0",
                            "description": f"${usd_per_hour} per On Demand {instance_type}",
                            "appliesTo": [],
                            "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7",
                            "pricePerUnit": {"USD": f"{usd_per_hour:.10f}"},
                        }
                    },
                    "termAttributes": {},
                }
            }
        },
        "version": "20250501000000",
        "publicationDate": "2025-05-01T00:00:00Z",
    }


def storage_product(volume: str, region: str, usd_per_gb_month: float) -> dict[str, Any]:
    """An EBS ``Storage`` product."""
    sku = f"EBS{abs(hash((volume, region))):X}"
    return {
        "product": {
            "productFamily": "Storage",
            "attributes": {"volumeApiName": volume, "regionCode": region, "storageMedia": "SSD"},
            "sku": sku,
        },
        "serviceCode": "AmazonEC2",
        "terms": {
            "OnDemand": {
                f"{sku}.JRTCKXETXF": {
                    "priceDimensions": {
                        f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                            "unit": "GB-Mo",
                            "pricePerUnit": {"USD": f"{usd_per_gb_month:.10f}"},
                        }
                    }
                }
            }
        },
    }


class FakePricingApi:
    """``GetProducts`` over loopback HTTP; ``products`` may be changed between calls."""

    def __init__(self, products: list[dict[str, Any]], page_size: int = 3) -> None:
        self.products = products
        self.page_size = page_size
        self.server = LoopbackServer(self._handle)

    @property
    def url(self) -> str:
        return self.server.url

    def _handle(
        self, method: str, path: str, query: Any, body: Any, headers: dict[str, str]
    ) -> tuple[int, Any]:
        target = headers.get("X-Amz-Target")
        if method != "POST" or target != "AWSPriceListService.GetProducts":
            return 400, {"__type": "InvalidParameterException", "message": f"unsupported {target}"}
        if body.get("ServiceCode") != "AmazonEC2":
            return 200, {"FormatVersion": "aws_v1", "PriceList": []}
        matches = [p for p in self.products if _matches(p, body.get("Filters", []))]
        start = int(body.get("NextToken") or 0)
        size = min(int(body.get("MaxResults") or 100), self.page_size)
        page = matches[start : start + size]
        reply: dict[str, Any] = {
            "FormatVersion": "aws_v1",
            "PriceList": [json.dumps(p) for p in page],
        }
        if start + size < len(matches):
            reply["NextToken"] = str(start + size)
        return 200, reply


def _matches(product: dict[str, Any], filters: list[dict[str, str]]) -> bool:
    for item in filters:
        field, value = item["Field"], item["Value"]
        if field == "productFamily":
            actual = product["product"].get("productFamily")
        else:
            actual = product["product"]["attributes"].get(field)
        if actual != value:
            return False
    return True

"""Loopback fakes of the Compute Engine REST API and the Cloud Billing Catalog API.

They serve the paths google-cloud-compute and google-cloud-billing call with the REST
transport, with recorded-shape payloads, and keep just enough state (instances, operations)
to check what the adapters send. Capacity and quota failures can be injected, and operations
can take time (``operation_latency_s``: ``wait`` blocks until the operation is done, or for
at most two minutes, as the real ``zoneOperations.wait`` does).
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from typing import Any

from tests.fakes.http import LoopbackServer

BASE = "https://www.googleapis.com/compute/v1"


def machine_type(
    name: str,
    zone: str,
    vcpus: int,
    memory_gib: float,
    *,
    arch: str = "X86_64",
    lssd: int = 0,
    accelerators: tuple[str, int] | None = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "kind": "compute#machineType",
        "id": str(abs(hash(name)) % 10**12),
        "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
        "name": name,
        "description": f"{vcpus} vCPUs, {memory_gib} GB RAM",
        "guestCpus": vcpus,
        "memoryMb": int(memory_gib * 1024),
        "maximumPersistentDisks": 128,
        "maximumPersistentDisksSizeGb": "263168",
        "zone": zone,
        "selfLink": f"{BASE}/projects/p/zones/{zone}/machineTypes/{name}",
        "isSharedCpu": name in ("e2-micro", "e2-small", "e2-medium"),
        "architecture": arch,
    }
    if lssd:
        item["bundledLocalSsds"] = {"defaultInterface": "NVME", "partitionCount": lssd}
    if accelerators:
        # Accelerator-optimized types (A2, A3, G2) list their built-in GPUs.
        item["accelerators"] = [
            {"guestAcceleratorType": accelerators[0], "guestAcceleratorCount": accelerators[1]}
        ]
    return item


def sku(
    description: str, regions: list[str], usage: str, unit: str, units: int, nanos: int
) -> dict[str, Any]:
    family = "Storage" if "PD" in description or "Storage" in description else "Compute"
    return {
        "name": f"services/6F81-5844-456A/skus/{abs(hash(description + usage)) % 10**8:08X}",
        "skuId": f"{abs(hash(description + usage)) % 10**8:08X}",
        "description": description,
        "category": {
            "serviceDisplayName": "Compute Engine",
            "resourceFamily": family,
            "resourceGroup": "GPU"
            if " GPU " in description
            else ("CPU" if "Core" in description else "RAM"),
            "usageType": usage,
        },
        "serviceRegions": regions,
        "pricingInfo": [
            {
                "effectiveTime": "2025-05-01T00:00:00Z",
                "pricingExpression": {
                    "usageUnit": unit,
                    "displayQuantity": 1,
                    "tieredRates": [
                        {
                            "startUsageAmount": 0,
                            "unitPrice": {
                                "currencyCode": "USD",
                                "units": str(units),
                                "nanos": nanos,
                            },
                        }
                    ],
                    "usageUnitDescription": unit,
                    "baseUnit": "s",
                    "baseUnitConversionFactor": 3600,
                },
                "currencyConversionRate": 1,
            }
        ],
        "serviceProviderName": "Google",
    }


class FakeBilling:
    """``GET /v1/services/{id}/skus`` with page tokens."""

    def __init__(self, skus: list[dict[str, Any]], page_size: int = 3) -> None:
        self.skus = skus
        self.page_size = page_size
        self.server = LoopbackServer(self._handle)

    def _handle(
        self, method: str, path: str, query: Any, body: Any, headers: Any
    ) -> tuple[int, Any]:
        match = re.fullmatch(r"/v1/services/([^/]+)/skus", path)
        if method != "GET" or not match:
            return 404, {
                "error": {"code": 404, "message": f"no route {path}", "status": "NOT_FOUND"}
            }
        skus = self.skus if match.group(1) == "6F81-5844-456A" else []
        start = int(query.get("pageToken", ["0"])[0] or 0)
        page = skus[start : start + self.page_size]
        reply: dict[str, Any] = {"skus": page}
        if start + self.page_size < len(skus):
            reply["nextPageToken"] = str(start + self.page_size)
        return 200, reply


class FakeComputeEngine:
    """Instances, operations, machine types, regions and images of one project."""

    def __init__(self, project: str) -> None:
        self.project = project
        self.machine_types: dict[str, list[dict[str, Any]]] = {}
        self.regions: dict[str, list[str]] = {}
        self.images: list[dict[str, Any]] = []
        self.instances: dict[tuple[str, str], dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        #: zone -> error code an insert there fails with (operation error)
        self.insert_failures: dict[str, str] = {}
        self.quota_exceeded = False
        #: Seconds every operation takes to finish.
        self.operation_latency_s = 0.0
        #: zone -> instances it can still create (no entry: no limit)
        self.zone_capacity: dict[str, int] = {}
        #: region -> its quotas as ``regions.get`` lists them (metric, limit, usage)
        self.region_quotas: dict[str, list[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.server = LoopbackServer(self._handle)

    # -- helpers for tests ---------------------------------------------------------------

    def set_status(self, name: str, status: str) -> None:
        for (_zone, key), item in self.instances.items():
            if key == name:
                item["status"] = status

    def _operation(
        self, zone: str, kind: str, target: str, error: str | None = None
    ) -> dict[str, Any]:
        name = f"operation-{next(self._ids)}"
        op: dict[str, Any] = {
            "kind": "compute#operation",
            "id": str(next(self._ids)),
            "name": name,
            "zone": f"{BASE}/projects/{self.project}/zones/{zone}",
            "operationType": kind,
            "targetLink": target,
            "status": "RUNNING",
            "progress": 0,
            "selfLink": f"{BASE}/projects/{self.project}/zones/{zone}/operations/{name}",
        }
        op["_done_at"] = time.monotonic() + self.operation_latency_s
        self.operations[name] = op
        if error:
            op["_error"] = {
                "errors": [
                    {
                        "code": error,
                        "message": f"The zone '{zone}' does not have enough resources "
                        "available to fulfill the request.",
                    }
                ]
            }
        return dict((k, v) for k, v in op.items() if not k.startswith("_"))

    def _handle(
        self, method: str, path: str, query: Any, body: Any, headers: Any
    ) -> tuple[int, Any]:
        prefix = f"/compute/v1/projects/{self.project}"
        ubuntu = "/compute/v1/projects/ubuntu-os-cloud/global/images"
        if path == f"{prefix}/aggregated/machineTypes" and method == "GET":
            return 200, {
                "kind": "compute#machineTypeAggregatedList",
                "items": {
                    f"zones/{z}": {"machineTypes": items} for z, items in self.machine_types.items()
                },
            }
        if path == f"{prefix}/regions" and method == "GET":
            return 200, {
                "items": [
                    {
                        "name": r,
                        "status": "UP",
                        "description": r,
                        "zones": [f"{BASE}/projects/{self.project}/zones/{z}" for z in zones],
                    }
                    for r, zones in self.regions.items()
                ]
            }
        match = re.fullmatch(prefix + r"/regions/([^/]+)", path)
        if match and method == "GET":
            region = match.group(1)
            if region not in self.regions:
                return 404, {
                    "error": {
                        "code": 404,
                        "message": f"The resource '{path}' was not found",
                        "errors": [{"reason": "notFound"}],
                    }
                }
            return 200, {
                "kind": "compute#region",
                "name": region,
                "status": "UP",
                "zones": [
                    f"{BASE}/projects/{self.project}/zones/{z}" for z in self.regions[region]
                ],
                "quotas": self.region_quotas.get(region, []),
            }
        if path == ubuntu and method == "GET":
            return 200, {"items": self.images}
        match = re.fullmatch(ubuntu + r"/([^/]+)", path)
        if match and method == "GET" and match.group(1) != "family":
            found = [i for i in self.images if i["name"] == match.group(1)]
            if not found:
                return 404, {
                    "error": {
                        "code": 404,
                        "message": f"The resource 'projects/ubuntu-os-cloud/global/images/"
                        f"{match.group(1)}' was not found",
                        "errors": [{"reason": "notFound"}],
                    }
                }
            return 200, found[0]
        match = re.fullmatch(ubuntu + r"/family/([^/]+)", path)
        if match:
            candidates = [
                i
                for i in self.images
                if i.get("family") == match.group(1) and not i.get("deprecated")
            ]
            if not candidates:
                return 404, {
                    "error": {
                        "code": 404,
                        "message": "not found",
                        "errors": [{"reason": "notFound"}],
                    }
                }
            return 200, max(candidates, key=lambda i: i["creationTimestamp"])
        if path == f"{prefix}/aggregated/instances" and method == "GET":
            wanted = dict(
                re.findall(r'labels\.([\w-]+)\s*=\s*"([^"]*)"', query.get("filter", [""])[0])
            )
            items: dict[str, Any] = {}
            for (zone, _name), item in self.instances.items():
                labels = item.get("labels", {})
                if all(labels.get(k) == v for k, v in wanted.items()):
                    items.setdefault(f"zones/{zone}", {"instances": []})["instances"].append(item)
            return 200, {"kind": "compute#instanceAggregatedList", "items": items}
        match = re.fullmatch(prefix + r"/zones/([^/]+)/operations/([^/]+)/wait", path)
        if match and method == "POST":
            op = self.operations.get(match.group(2))
            if op is None:
                return 404, {"error": {"code": 404, "message": "no such operation"}}
            left = op["_done_at"] - time.monotonic()
            if left > 0:
                time.sleep(min(left, 120.0))
            if time.monotonic() < op["_done_at"]:
                return 200, {k: v for k, v in op.items() if not k.startswith("_")}
            op["status"] = "DONE"
            op["progress"] = 100
            if "_error" in op:
                op["error"] = op["_error"]
            return 200, {k: v for k, v in op.items() if not k.startswith("_")}
        match = re.fullmatch(prefix + r"/zones/([^/]+)/instances/bulkInsert", path)
        if match and method == "POST":
            with self._lock:
                return self._bulk_insert(match.group(1), body)
        match = re.fullmatch(prefix + r"/zones/([^/]+)/instances", path)
        if match and method == "POST":
            zone = match.group(1)
            if self.quota_exceeded:
                return 403, {
                    "error": {
                        "code": 403,
                        "message": "Quota 'CPUS' exceeded.  Limit: 24.0 in region.",
                        "errors": [
                            {
                                "message": "Quota 'CPUS' exceeded.",
                                "domain": "usageLimits",
                                "reason": "quotaExceeded",
                            }
                        ],
                    }
                }
            refused = self._refuse(zone, body["machineType"].rsplit("/", 1)[-1], body)
            if refused is not None:
                return refused
            error = self.insert_failures.get(zone)
            target = f"{BASE}/projects/{self.project}/zones/{zone}/instances/{body['name']}"
            if error is None:
                item = dict(body)
                item.update(
                    kind="compute#instance",
                    id=str(next(self._ids)),
                    status="PROVISIONING",
                    zone=f"{BASE}/projects/{self.project}/zones/{zone}",
                    creationTimestamp="2025-06-01T12:00:00.000-07:00",
                    selfLink=target,
                    machineType=f"{BASE}/projects/{self.project}/{body['machineType']}",
                )
                self.instances[(zone, body["name"])] = item
            return 200, self._operation(zone, "insert", target, error)
        match = re.fullmatch(prefix + r"/zones/([^/]+)/instances/([^/]+)", path)
        if match:
            key = (match.group(1), match.group(2))
            if key not in self.instances:
                return 404, {
                    "error": {
                        "code": 404,
                        "message": f"The resource '{path}' was not found",
                        "errors": [{"reason": "notFound"}],
                    }
                }
            if method == "GET":
                return 200, self.instances[key]
            if method == "DELETE":
                del self.instances[key]
                return 200, self._operation(key[0], "delete", path)
        return 404, {"error": {"code": 404, "message": f"no route {method} {path}"}}

    # -- validation and bulk insert, as the real API answers them ---------------------------

    @staticmethod
    def _bad_request(message: str, reason: str = "invalid") -> tuple[int, Any]:
        return 400, {
            "error": {
                "code": 400,
                "message": message,
                "errors": [{"message": message, "domain": "global", "reason": reason}],
            }
        }

    def _refuse(self, zone: str, machine: str, body: dict[str, Any]) -> tuple[int, Any] | None:
        """The synchronous refusals of an insert: an unknown machine type or public image."""
        known = self.machine_types.get(zone)
        if known is not None and machine not in {m["name"] for m in known}:
            return self._bad_request(
                f"Invalid value for field 'resource.machineType': "
                f"'zones/{zone}/machineTypes/{machine}'. Machine type with name '{machine}' "
                f"does not exist in zone '{zone}'."
            )
        for disk in body.get("disks", []):
            image = str((disk.get("initializeParams") or {}).get("sourceImage", ""))
            public = "projects/ubuntu-os-cloud/global/images/"
            if image.startswith(public) and image[len(public) :] not in {
                i["name"] for i in self.images
            }:
                return 404, {
                    "error": {
                        "code": 404,
                        "message": f"The resource '{image}' was not found",
                        "errors": [
                            {
                                "message": f"The resource '{image}' was not found",
                                "domain": "global",
                                "reason": "notFound",
                            }
                        ],
                    }
                }
        return None

    def _bulk_insert(self, zone: str, body: dict[str, Any]) -> tuple[int, Any]:
        properties = body.get("instanceProperties") or {}
        machine = str(properties.get("machineType", ""))
        if "/" in machine:
            return self._bad_request(
                "Invalid value for field 'resource.instanceProperties.machineType': "
                f"'{machine}'. Machine type name must not be a URL."
            )
        disk_type = str(
            ((properties.get("disks") or [{}])[0].get("initializeParams") or {}).get("diskType", "")
        )
        if "/" in disk_type:
            return self._bad_request(
                "Invalid value for field 'resource.instanceProperties.disks[0]."
                f"initializeParams.diskType': '{disk_type}'. Disk type name must not be a URL."
            )
        refused = self._refuse(zone, machine, properties)
        if refused is not None:
            return refused
        count = int(body.get("count") or 0)
        minimum = int(body.get("minCount") or count)
        names = list((body.get("perInstanceProperties") or {}).keys())
        if count < 1 or len(names) != count:
            return self._bad_request("count must equal the number of perInstanceProperties")
        target = f"{BASE}/projects/{self.project}/zones/{zone}/instances"
        error = self.insert_failures.get(zone)
        room = self.zone_capacity.get(zone, count)
        if error is None and room < minimum:
            error = "ZONE_RESOURCE_POOL_EXHAUSTED"
        if self.quota_exceeded:
            error = "QUOTA_EXCEEDED"
        made = 0 if error else min(count, room)
        for name in names[:made]:
            item = dict(properties)
            item.update(
                name=name,
                kind="compute#instance",
                id=str(next(self._ids)),
                status="PROVISIONING",
                zone=f"{BASE}/projects/{self.project}/zones/{zone}",
                creationTimestamp="2025-06-01T12:00:00.000-07:00",
                selfLink=f"{target}/{name}",
                machineType=f"{BASE}/projects/{self.project}/zones/{zone}/machineTypes/{machine}",
            )
            self.instances[(zone, name)] = item
        if zone in self.zone_capacity:
            self.zone_capacity[zone] -= made
        op = self._operation(zone, "bulkInsert", target, error)
        stored = self.operations[op["name"]]
        stored["instancesBulkInsertOperationMetadata"] = {
            "perLocationStatus": {
                f"zones/{zone}": {
                    "status": "CREATED" if made else "FAILED",
                    "targetVmCount": count,
                    "createdVmCount": made,
                    "failedToCreateVmCount": count - made,
                }
            }
        }
        return 200, op


class FakeResourceManager:
    """``POST /v1/projects/{project}:testIamPermissions``: the asked permissions the caller
    holds (the key is left out when it holds none, as the real API does); 403 for any other
    project."""

    def __init__(self, project: str, granted: set[str]) -> None:
        self.project = project
        self.granted = granted
        self.server = LoopbackServer(self._handle)

    def _handle(
        self, method: str, path: str, query: Any, body: Any, headers: Any
    ) -> tuple[int, Any]:
        match = re.fullmatch(r"/v1/projects/([^/:]+):testIamPermissions", path)
        if method != "POST" or not match:
            return 404, {"error": {"code": 404, "message": f"no route {path}"}}
        if match.group(1) != self.project:
            return 403, {
                "error": {
                    "code": 403,
                    "message": "The caller does not have permission",
                    "status": "PERMISSION_DENIED",
                }
            }
        held = [p for p in body.get("permissions", []) if p in self.granted]
        return 200, ({"permissions": held} if held else {})

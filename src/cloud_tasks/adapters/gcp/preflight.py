"""``GcpPreflight``: what ``cloud_tasks check`` asks Google Cloud before a job creates anything.

Credentials from Application Default Credentials (or ``credentials_file``); permissions with
Resource Manager ``projects.testIamPermissions``, which answers the subset of the asked
permissions the caller holds; the image with ``images.get``; vCPU limits from the region's
quotas (``regions.get``).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from cloud_tasks.adapters.aws.preflight import quota_result
from cloud_tasks.adapters.gcp.compute_clients import as_dict
from cloud_tasks.adapters.gcp.errors import gcp_errors
from cloud_tasks.adapters.gcp.translate import CREDENTIALS_HINT, family_of
from cloud_tasks.domain.text import collapse_whitespace
from cloud_tasks.exceptions import CloudTasksError, CredentialsError, RejectedError
from cloud_tasks.ports import CheckResult, PreflightRequest

RESOURCE_MANAGER_OVERRIDE = "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER"
RESOURCE_MANAGER = "https://cloudresourcemanager.googleapis.com"
_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]

#: The IAM permissions a job needs on its project, as ``check`` verifies them
#: (docs/providers.md lists them).
PERMISSIONS = (
    "compute.instances.create",
    "compute.instances.delete",
    "compute.instances.get",
    "compute.instances.list",
    "compute.instances.setMetadata",
    "compute.instances.setLabels",
    "compute.instances.setServiceAccount",
    "compute.disks.create",
    "compute.subnetworks.use",
    "compute.subnetworks.useExternalIp",
    "compute.machineTypes.list",
    "compute.regions.get",
    "iam.serviceAccounts.actAs",
    "pubsub.topics.create",
    "pubsub.topics.delete",
    "pubsub.topics.publish",
    "pubsub.subscriptions.create",
    "pubsub.subscriptions.consume",
    "pubsub.subscriptions.delete",
)


class GcpPreflight:
    """The ``Preflight`` port on Google Cloud.

    Args:
        images, regions: ``compute_v1`` clients (REST).
        project: the job's project.
        credentials_file: a service-account key, else Application Default Credentials.
    """

    def __init__(
        self, *, images: Any, regions: Any, project: str, credentials_file: str | None = None
    ) -> None:
        self._images = images
        self._regions = regions
        self.project = project
        self._credentials_file = credentials_file

    def checks(self, request: PreflightRequest) -> list[CheckResult]:
        session, credentials = self._session()
        if credentials.status == "fail" or session is None:
            return [credentials]
        return [
            credentials,
            self._permissions(session),
            self._image(request),
            self._quota(request),
            self._worker_credentials(request),
        ]

    def _endpoint(self) -> tuple[str, bool]:
        value = os.environ.get(RESOURCE_MANAGER_OVERRIDE, "").strip()
        if not value:
            return RESOURCE_MANAGER, False
        parts = urlsplit(value if "://" in value else f"https://{value}")
        return f"{parts.scheme}://{parts.netloc}", parts.scheme == "http"

    def _session(self) -> tuple[Any, CheckResult]:
        import requests

        name = "credentials"
        _endpoint, anonymous = self._endpoint()
        if anonymous:
            return requests.Session(), CheckResult(name, "ok", "anonymous (test endpoint)")
        from google.auth import exceptions as auth_exceptions
        from google.auth.transport.requests import AuthorizedSession

        try:
            if self._credentials_file:
                from google.oauth2 import service_account

                load = service_account.Credentials.from_service_account_file
                credentials = load(self._credentials_file, scopes=_SCOPES)  # type: ignore[no-untyped-call]
                who = str(getattr(credentials, "service_account_email", self._credentials_file))
            else:
                import google.auth

                credentials, _project = google.auth.default(scopes=_SCOPES)
                who = str(getattr(credentials, "service_account_email", "") or "ADC")
        except (auth_exceptions.GoogleAuthError, OSError, ValueError) as exc:
            return None, CheckResult(name, "fail", collapse_whitespace(str(exc)), CREDENTIALS_HINT)
        return AuthorizedSession(credentials), CheckResult(name, "ok", who)  # type: ignore[no-untyped-call]

    def _permissions(self, session: Any) -> CheckResult:
        import requests

        name = "permissions"
        endpoint, _anonymous = self._endpoint()
        url = f"{endpoint}/v1/projects/{self.project}:testIamPermissions"
        try:
            answer = session.post(url, json={"permissions": list(PERMISSIONS)}, timeout=30)
        except (requests.RequestException, OSError) as exc:
            return CheckResult(name, "warn", collapse_whitespace(f"could not verify ({exc})"))
        if answer.status_code in (401, 403):
            return CheckResult(
                name,
                "fail",
                f"project {self.project}: access denied (HTTP {answer.status_code})",
                "check project_id and the account's roles (docs/providers.md)",
            )
        if answer.status_code != 200:
            return CheckResult(name, "warn", f"could not verify (HTTP {answer.status_code})")
        try:
            granted = set(answer.json().get("permissions", []))
        except ValueError:
            return CheckResult(name, "warn", "could not verify (the answer was not JSON)")
        missing = [p for p in PERMISSIONS if p not in granted]
        if missing:
            return CheckResult(
                name,
                "fail",
                f"missing {', '.join(missing)}",
                "grant roles/compute.instanceAdmin.v1, roles/iam.serviceAccountUser and "
                "roles/pubsub.editor on the project (docs/providers.md)",
            )
        return CheckResult(name, "ok", f"all {len(PERMISSIONS)} granted")

    def _image(self, request: PreflightRequest) -> CheckResult:
        name = "image"
        fix = "set 'image' to an image that exists ('cloud_tasks list_images')"
        parts = request.image.split("/")
        try:
            with gcp_errors("reading the image"):
                if len(parts) == 6 and parts[0] == "projects" and parts[4] == "family":
                    found = self._images.get_from_family(project=parts[1], family=parts[5])
                elif (
                    len(parts) == 5
                    and parts[0] == "projects"
                    and parts[2:4]
                    == [
                        "global",
                        "images",
                    ]
                ):
                    found = self._images.get(project=parts[1], image=parts[4])
                else:
                    found = self._images.get(project=self.project, image=request.image)
        except RejectedError:
            return CheckResult(name, "fail", f"{request.image} does not exist", fix)
        except CredentialsError as exc:
            return CheckResult(name, "fail", str(exc), "check the account's roles")
        except CloudTasksError as exc:
            return CheckResult(name, "warn", f"could not verify ({exc})")
        architecture = {"X86_64": "x86_64", "ARM64": "arm64"}.get(
            str(as_dict(found).get("architecture", "")).upper(), ""
        )
        if architecture and architecture != request.architecture:
            return CheckResult(
                name,
                "fail",
                f"{request.image} is {architecture}; {request.instance_type} is "
                f"{request.architecture}",
                f"use an {request.architecture} image, or set architecture: {architecture}",
            )
        return CheckResult(name, "ok", request.image)

    def _quota(self, request: PreflightRequest) -> CheckResult:
        name = f"{'spot' if request.use_spot else 'on-demand'} vCPU quota"
        try:
            with gcp_errors("reading the region's quotas"):
                region = as_dict(self._regions.get(project=self.project, region=request.region))
        except CloudTasksError as exc:
            return CheckResult(name, "warn", f"could not verify ({exc})")
        quotas = {str(q.get("metric")): q for q in region.get("quotas", [])}
        metrics = [f"{family_of(request.instance_type).upper()}_CPUS", "CPUS"]
        spot = quotas.get("PREEMPTIBLE_CPUS")
        if request.use_spot and spot is not None and float(spot.get("limit") or 0) > 0:
            # Spot VMs count against PREEMPTIBLE_CPUS when the project has that quota.
            metrics = ["PREEMPTIBLE_CPUS"]
        free = [
            float(quotas[m].get("limit") or 0) - float(quotas[m].get("usage") or 0)
            for m in metrics
            if m in quotas
        ]
        if not free:
            return CheckResult(name, "warn", f"no {' or '.join(metrics)} quota listed")
        return quota_result(
            name,
            min(free),
            request,
            f"request more {' / '.join(m for m in metrics if m in quotas)} quota in "
            f"{request.region} (IAM & Admin > Quotas) or lower max_instances",
        )

    def _worker_credentials(self, request: PreflightRequest) -> CheckResult:
        who = request.service_account or "the project's default compute service account"
        return CheckResult(
            "worker credentials",
            "ok",
            f"instances run as {who} (cloud-platform scope); it needs Pub/Sub and Logging roles",
        )


__all__ = ["PERMISSIONS", "RESOURCE_MANAGER_OVERRIDE", "GcpPreflight"]

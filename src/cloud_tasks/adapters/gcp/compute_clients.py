"""Build Compute Engine and Cloud Billing clients, honouring gcloud's endpoint overrides.

``CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE`` / ``..._CLOUDBILLING`` hold a base URL as gcloud
writes it (``http://127.0.0.1:8085/compute/v1/``): scheme, host and port count, a path is
ignored, and an ``http://`` override means a local fake, so credentials are anonymous.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from cloud_tasks.adapters.gcp.errors import gcp_errors

COMPUTE_OVERRIDE = "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE"
BILLING_OVERRIDE = "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDBILLING"
_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


def endpoint_override(variable: str) -> tuple[str | None, bool]:
    """``(api_endpoint, anonymous)`` from an override variable; ``(None, False)`` when unset."""
    value = os.environ.get(variable, "").strip()
    if not value:
        return None, False
    parts = urlsplit(value if "://" in value else f"https://{value}")
    return f"{parts.scheme}://{parts.netloc}", parts.scheme == "http"


def _client_kwargs(variable: str, credentials_file: str | None) -> dict[str, Any]:
    endpoint, anonymous = endpoint_override(variable)
    kwargs: dict[str, Any] = {"transport": "rest"}
    if endpoint:
        kwargs["client_options"] = {"api_endpoint": endpoint}
    if anonymous:
        from google.auth.credentials import AnonymousCredentials

        kwargs["credentials"] = AnonymousCredentials()  # type: ignore[no-untyped-call]
    elif credentials_file:
        from google.oauth2 import service_account

        with gcp_errors("reading credentials_file"):
            try:
                load = service_account.Credentials.from_service_account_file
                kwargs["credentials"] = load(  # type: ignore[no-untyped-call]
                    credentials_file, scopes=_SCOPES
                )
            except (OSError, ValueError) as exc:
                from cloud_tasks.exceptions import CredentialsError

                raise CredentialsError(
                    f"credentials_file {credentials_file}: cannot use it ({exc})"
                ) from None
    return kwargs


def compute_clients(credentials_file: str | None = None) -> dict[str, Any]:
    """Instances, zone operations, regions, images and machine types clients (REST)."""
    from google.cloud import compute_v1

    from cloud_tasks.adapters.gcp.retrying import RetryingClient

    kwargs = _client_kwargs(COMPUTE_OVERRIDE, credentials_file)
    # Every call retries throttling, 5xx, timeouts and resets with backoff and jitter.
    with gcp_errors("creating Compute Engine clients"):
        return {
            "instances": RetryingClient(compute_v1.InstancesClient(**kwargs)),
            "zone_operations": RetryingClient(compute_v1.ZoneOperationsClient(**kwargs)),
            "regions": RetryingClient(compute_v1.RegionsClient(**kwargs)),
            "images": RetryingClient(compute_v1.ImagesClient(**kwargs)),
            "machine_types": RetryingClient(compute_v1.MachineTypesClient(**kwargs)),
        }


def catalog_client(credentials_file: str | None = None) -> Any:
    """A Cloud Billing Catalog client (REST)."""
    from google.cloud import billing_v1

    from cloud_tasks.adapters.gcp.retrying import RetryingClient

    kwargs = _client_kwargs(BILLING_OVERRIDE, credentials_file)
    with gcp_errors("creating the Cloud Billing client"):
        return RetryingClient(billing_v1.CloudCatalogClient(**kwargs))


def as_dict(message: Any) -> dict[str, Any]:
    """A proto-plus message as the REST JSON dict (camelCase keys) the translators read."""
    result: dict[str, Any] = type(message).to_dict(
        message, preserving_proto_field_name=False, use_integers_for_enums=False
    )
    return result

"""Translate google-api-core and google-auth exceptions at the Compute/Billing boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions

from cloud_tasks.adapters.gcp.translate import CREDENTIALS_HINT, translate_error
from cloud_tasks.domain.text import collapse_whitespace
from cloud_tasks.exceptions import CredentialsError, ProviderError


@contextmanager
def gcp_errors(operation: str, *, instance_type: str = "", zone: str = "") -> Iterator[None]:
    """Run the block, re-raising any google error as one of ours."""
    try:
        yield
    except api_exceptions.GoogleAPICallError as exc:
        reasons = [str(e.get("reason", "")) for e in exc.errors or [] if isinstance(e, dict)]
        text = f"{exc} [{', '.join(r for r in reasons if r)}]" if any(reasons) else str(exc)
        raise translate_error(
            text,
            operation,
            status=int(exc.code or 0),
            instance_type=instance_type,
            zone=zone,
        ) from None
    except auth_exceptions.GoogleAuthError as exc:
        raise CredentialsError(
            collapse_whitespace(f"GCP credentials for {operation}: {exc}; {CREDENTIALS_HINT}")
        ) from None
    except api_exceptions.GoogleAPIError as exc:
        raise ProviderError(collapse_whitespace(f"GCP {operation} failed: {exc}")) from None


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, api_exceptions.NotFound)

"""Translate botocore exceptions into ``cloud_tasks.exceptions`` at the adapter boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from cloud_tasks.adapters.aws.translate import CREDENTIALS_HINT, translate_error
from cloud_tasks.domain.text import collapse_whitespace
from cloud_tasks.exceptions import CredentialsError, ProviderError


@contextmanager
def aws_errors(operation: str, *, instance_type: str = "", zone: str = "") -> Iterator[None]:
    """Run the block, re-raising any botocore error as one of ours."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise translate_error(
            str(error.get("Code", "Unknown")),
            str(error.get("Message", "")),
            operation,
            instance_type=instance_type,
            zone=zone,
        ) from None
    except NoCredentialsError:
        raise CredentialsError(
            f"no AWS credentials found for {operation}; {CREDENTIALS_HINT}"
        ) from None
    except BotoCoreError as exc:
        raise ProviderError(collapse_whitespace(f"AWS {operation} failed: {exc}")) from None

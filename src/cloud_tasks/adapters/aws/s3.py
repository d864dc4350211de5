"""Task files in Amazon S3 (``s3://bucket/key``): the ``TaskSource`` that streams them.

boto3 is imported only when an object is opened. The client uses the default credential
chain and honours ``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_S3``; botocore follows a bucket's
region redirect itself. Every botocore error, at open or while the body is read, becomes a
``TaskFileError`` or ``CredentialsError`` naming the location.
"""

from __future__ import annotations

from typing import IO, Final

from cloud_tasks.adapters._streams import object_stream
from cloud_tasks.exceptions import CloudTasksError, CredentialsError, ProviderError, TaskFileError
from cloud_tasks.locations import Location

_MISSING_CODES: Final = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})
_FORBIDDEN_CODES: Final = frozenset({"AccessDenied", "403", "AllAccessDisabled", "AccountProblem"})
_CREDENTIAL_CODES: Final = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
    }
)
_MALFORMED_CODES: Final = frozenset({"InvalidBucketName", "KeyTooLongError", "InvalidURI"})


class S3TaskSource:
    """Opens ``s3://`` task files with the default credential chain."""

    def open(self, location: Location) -> IO[bytes]:
        return open_s3_object(location.bucket, location.key, location.display)


def open_s3_object(bucket: str, key: str, where: str) -> IO[bytes]:
    """Start downloading ``s3://bucket/key``; the body streams as the caller reads."""
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise ProviderError(
            f"{where}: reading from S3 needs boto3: pip install 'rms-cloud-tasks[aws]'"
        ) from None
    config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10)
    try:
        session = boto3.session.Session()
        client = session.client("s3", region_name=session.region_name or "us-east-1", config=config)
        response = client.get_object(Bucket=bucket, Key=key)
    except (BotoCoreError, ClientError) as exc:
        raise translate_s3_error(exc, where) from None
    body = response["Body"]

    def close() -> None:
        body.close()
        client.close()  # no pooled socket outlives the read (the worker forks after it)

    return object_stream(
        body.read,
        close,
        lambda exc: translate_s3_error(exc, where, reading=True),
        errors=(BotoCoreError, ClientError, OSError),
    )


def translate_s3_error(exc: Exception, where: str, *, reading: bool = False) -> CloudTasksError:
    """Our error for a botocore error while opening (or reading) the object at ``where``."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return CredentialsError(
            f"{where}: no AWS credentials found; configure the default chain (aws configure, "
            "AWS_PROFILE, an instance role)"
        )
    if isinstance(exc, EndpointConnectionError):
        return TaskFileError(f"{where}: cannot reach S3 ({exc}); check the network and region")
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "")) or str(
            exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
        )
        said = code + (f": {error['Message']}" if error.get("Message") else "")
        if code in _MISSING_CODES:
            what = "bucket" if code == "NoSuchBucket" else "object"
            return TaskFileError(f"{where}: task file not found (no such {what}; {said})")
        if code in _FORBIDDEN_CODES:
            return TaskFileError(
                f"{where}: access denied ({said}); check that your credentials may s3:GetObject it"
            )
        if code == "InvalidObjectState":
            return TaskFileError(
                f"{where}: the object is archived ({said}); restore it (aws s3api "
                "restore-object) or copy it to a readable storage class first"
            )
        if code in _CREDENTIAL_CODES:
            return CredentialsError(f"{where}: AWS rejected the credentials ({said})")
        if code in _MALFORMED_CODES:
            return TaskFileError(f"{where}: malformed S3 location ({said})")
        return TaskFileError(f"{where}: cannot read task file from S3 ({said})")
    if reading:
        return TaskFileError(f"{where}: the download broke off: {exc}")
    return TaskFileError(f"{where}: cannot read task file from S3: {exc}")

"""Checkpoints in an S3 bucket (``ports.CheckpointStore``): ``s3://bucket/prefix/<key>``.

boto3 is imported when the store is first used. The client uses the default credential chain
and honours ``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_S3``. An S3 ``PutObject`` replaces the
object atomically, so a reader sees the old or the new checkpoint, never a mix.
"""

from __future__ import annotations

from typing import Any

from cloud_tasks.exceptions import CloudTasksError, CredentialsError, ProviderError

_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


class S3CheckpointStore:
    """Checkpoints as objects under ``s3://bucket/prefix/``."""

    def __init__(self, bucket: str, prefix: str) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.location = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self._client: Any = None

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _s3(self) -> Any:
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                raise ProviderError(
                    f"{self.location}: S3 checkpoints need boto3: "
                    "pip install 'rms-cloud-tasks[aws]'"
                ) from None
            session = boto3.session.Session()
            self._client = session.client(
                "s3",
                region_name=session.region_name or "us-east-1",
                config=Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10),
            )
        return self._client

    def get(self, key: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._s3().get_object(Bucket=self.bucket, Key=self._key(key))
            data: bytes = response["Body"].read()
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in _MISSING:
                return None
            raise self._error(exc, key, "read") from None
        except BotoCoreError as exc:
            raise self._error(exc, key, "read") from None
        return data

    def put(self, key: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3().put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, key, "write") from None

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3().delete_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, key, "delete") from None

    def _error(self, exc: Exception, key: str, verb: str) -> CloudTasksError:
        from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

        where = f"s3://{self.bucket}/{self._key(key)}"
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return CredentialsError(
                f"checkpoint {where}: no AWS credentials found; configure the default chain "
                "(aws configure, AWS_PROFILE, an instance role)"
            )
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            said = str(error.get("Code", "")) + (
                f": {error['Message']}" if error.get("Message") else ""
            )
            if error.get("Code") == "NoSuchBucket":
                return ProviderError(
                    f"checkpoint {where}: no such bucket ({said}); create it or fix "
                    "--checkpoint-location"
                )
            return ProviderError(f"checkpoint {where}: cannot {verb} it ({said})")
        return ProviderError(f"checkpoint {where}: cannot {verb} it ({exc})")


__all__ = ["S3CheckpointStore"]

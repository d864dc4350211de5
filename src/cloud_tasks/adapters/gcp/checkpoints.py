"""Checkpoints in a Cloud Storage bucket (``ports.CheckpointStore``): ``gs://bucket/prefix/<key>``.

google-cloud-storage is imported when the store is first used; credentials come from
Application Default Credentials and ``STORAGE_EMULATOR_HOST`` points the client at an
emulator. An upload replaces the object atomically (a reader sees the old or the new bytes).
"""

from __future__ import annotations

from typing import Any

from cloud_tasks.exceptions import CloudTasksError, CredentialsError, ProviderError

_CREDENTIALS_HINT = (
    "run 'gcloud auth application-default login' or set GOOGLE_APPLICATION_CREDENTIALS"
)


class GcsCheckpointStore:
    """Checkpoints as objects under ``gs://bucket/prefix/``."""

    def __init__(self, bucket: str, prefix: str) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.location = f"gs://{bucket}/{self.prefix}".rstrip("/")
        self._bucket: Any = None

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _blob(self, key: str) -> Any:
        if self._bucket is None:
            try:
                from google.cloud.storage import Client
            except ImportError:
                raise ProviderError(
                    f"{self.location}: Cloud Storage checkpoints need google-cloud-storage: "
                    "pip install 'rms-cloud-tasks[gcp]'"
                ) from None
            from google.auth import exceptions as auth_exceptions

            try:
                client = Client(project=None)
            except auth_exceptions.DefaultCredentialsError:
                raise CredentialsError(
                    f"checkpoint {self.location}: no Google credentials found; {_CREDENTIALS_HINT}"
                ) from None
            self._bucket = client.bucket(self.bucket)
        return self._bucket.blob(self._name(key))

    def get(self, key: str) -> bytes | None:
        from google.api_core import exceptions as api_exceptions

        try:
            data: bytes = self._blob(key).download_as_bytes()
        except api_exceptions.NotFound:
            return None
        except Exception as exc:
            raise self._error(exc, key, "read") from None
        return data

    def put(self, key: str, data: bytes) -> None:
        try:
            self._blob(key).upload_from_string(data, content_type="application/octet-stream")
        except CloudTasksError:
            raise
        except Exception as exc:
            raise self._error(exc, key, "write") from None

    def delete(self, key: str) -> None:
        from google.api_core import exceptions as api_exceptions

        try:
            self._blob(key).delete()
        except api_exceptions.NotFound:
            return
        except CloudTasksError:
            raise
        except Exception as exc:
            raise self._error(exc, key, "delete") from None

    def _error(self, exc: Exception, key: str, verb: str) -> CloudTasksError:
        from google.api_core import exceptions as api_exceptions
        from google.auth import exceptions as auth_exceptions

        where = f"gs://{self.bucket}/{self._name(key)}"
        if isinstance(exc, auth_exceptions.GoogleAuthError):
            return CredentialsError(
                f"checkpoint {where}: Google credentials failed ({exc}); {_CREDENTIALS_HINT}"
            )
        if isinstance(exc, api_exceptions.GoogleAPICallError):
            said = f"{exc.code}: {exc.message}" if exc.code else str(exc.message)
            return ProviderError(f"checkpoint {where}: cannot {verb} it ({said})")
        return ProviderError(f"checkpoint {where}: cannot {verb} it ({exc})")


__all__ = ["GcsCheckpointStore"]

"""Task files in Google Cloud Storage (``gs://bucket/object``): the ``TaskSource`` that streams
them.

google-cloud-storage is imported only when an object is opened. The object's metadata is read
first (so a missing or forbidden object fails at once, and the generation is pinned: a file
replaced while it is being read cannot mix two versions), then the body is fetched in ranged
chunks as the caller reads. Credentials come from Application Default Credentials; without
any, the object is read anonymously (public objects only). ``STORAGE_EMULATOR_HOST`` points the
client at an emulator, as the client itself supports.
"""

from __future__ import annotations

import gc
from typing import IO, Any, Final

from cloud_tasks.adapters._streams import object_stream
from cloud_tasks.exceptions import CloudTasksError, CredentialsError, ProviderError, TaskFileError
from cloud_tasks.locations import Location

#: Bytes fetched per ranged request while reading.
GCS_CHUNK_BYTES: Final = 8 * 1024 * 1024

_CREDENTIALS_HINT = (
    "run 'gcloud auth application-default login' or set GOOGLE_APPLICATION_CREDENTIALS"
)


class GcsTaskSource:
    """Opens ``gs://`` task files, fetching ``chunk_bytes`` per ranged request."""

    def __init__(self, *, chunk_bytes: int = GCS_CHUNK_BYTES) -> None:
        self.chunk_bytes = chunk_bytes

    def open(self, location: Location) -> IO[bytes]:
        return open_gcs_object(
            location.bucket, location.key, location.display, chunk_bytes=self.chunk_bytes
        )


def open_gcs_object(
    bucket: str, name: str, where: str, *, chunk_bytes: int = GCS_CHUNK_BYTES
) -> IO[bytes]:
    """Start reading ``gs://bucket/name``; the body is fetched ``chunk_bytes`` at a time."""
    try:
        from google.api_core import exceptions as api_exceptions
        from google.auth import exceptions as auth_exceptions
        from google.cloud.storage import Client
    except ImportError:
        raise ProviderError(
            f"{where}: reading from Cloud Storage needs google-cloud-storage: "
            "pip install 'rms-cloud-tasks[gcp]'"
        ) from None
    errors = (api_exceptions.GoogleAPIError, auth_exceptions.GoogleAuthError, OSError)
    anonymous = False
    try:
        try:
            # project=None: reading an object needs no project, so none must be configured.
            client: Any = Client(project=None)
        except auth_exceptions.DefaultCredentialsError:
            client = Client.create_anonymous_client()
            anonymous = True
        blob = client.bucket(bucket).blob(name)
        blob.reload()
        reader = blob.open("rb", chunk_size=chunk_bytes)
    except errors as exc:
        raise translate_gcs_error(exc, where, anonymous=anonymous) from None

    def close() -> None:
        reader.close()
        client.close()
        # The client's download generators keep their connections checked out, in reference
        # cycles; collect them now so no socket outlives the read (the worker forks after it).
        gc.collect()

    return object_stream(
        reader.read,
        close,
        lambda exc: translate_gcs_error(exc, where, anonymous=anonymous, reading=True),
        errors=errors,
    )


def translate_gcs_error(
    exc: Exception, where: str, *, anonymous: bool = False, reading: bool = False
) -> CloudTasksError:
    """Our error for a google error while opening (or reading) the object at ``where``."""
    from google.api_core import exceptions as api_exceptions
    from google.auth import exceptions as auth_exceptions

    if isinstance(exc, auth_exceptions.GoogleAuthError):
        return CredentialsError(f"{where}: Google credentials failed ({exc}); {_CREDENTIALS_HINT}")
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        said = f"{exc.code}: {exc.message}" if exc.code else str(exc.message)
        if isinstance(exc, api_exceptions.NotFound):
            return TaskFileError(f"{where}: task file not found ({said})")
        if isinstance(exc, api_exceptions.Forbidden | api_exceptions.Unauthorized):
            hint = (
                f"no Google credentials were found, so only public objects can be read; "
                f"{_CREDENTIALS_HINT}"
                if anonymous
                else "check that your credentials may read it (storage.objects.get)"
            )
            return TaskFileError(f"{where}: access denied ({said}); {hint}")
        if isinstance(exc, api_exceptions.BadRequest):
            return TaskFileError(f"{where}: malformed Cloud Storage location ({said})")
        return TaskFileError(f"{where}: cannot read task file from Cloud Storage ({said})")
    if reading:
        return TaskFileError(f"{where}: the download broke off: {exc}")
    return TaskFileError(f"{where}: cannot reach Cloud Storage ({exc}); check the network")

"""Checkpoints in a local folder (``ports.CheckpointStore``).

A value is written to a temporary file beside its final name, flushed to disk, then renamed
over it, so a process killed mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from cloud_tasks.exceptions import ProviderError


class FolderCheckpointStore:
    """Checkpoints as files ``<folder>/<key>``; the folder is created on the first ``put``."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.location = str(folder)

    def _path(self, key: str) -> Path:
        return self.folder / key

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ProviderError(
                f"checkpoint {self._path(key)}: cannot read it ({exc.strerror or exc})"
            ) from None

    def put(self, key: str, data: bytes) -> None:
        target = self._path(key)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".", suffix=".part", dir=self.folder)
        except OSError as exc:
            raise ProviderError(
                f"checkpoint folder {self.folder}: cannot write there ({exc.strerror or exc}); "
                "choose a writable --checkpoint-location"
            ) from None
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            if isinstance(exc, OSError):
                raise ProviderError(
                    f"checkpoint {target}: cannot write it ({exc.strerror or exc})"
                ) from None
            raise

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ProviderError(
                f"checkpoint {self._path(key)}: cannot delete it ({exc.strerror or exc})"
            ) from None

    def keys(self) -> list[str]:
        """The stored keys (for tests and the pytest fixture)."""
        if not self.folder.is_dir():
            return []
        return sorted(p.name for p in self.folder.iterdir() if not p.name.startswith("."))


__all__ = ["FolderCheckpointStore"]

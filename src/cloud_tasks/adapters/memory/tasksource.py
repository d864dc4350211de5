"""Task files held in memory: a ``TaskSource`` for tests that counts the reads of each file."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import IO

from cloud_tasks.exceptions import TaskFileError
from cloud_tasks.locations import Location


class InMemoryTaskSource:
    """Serves ``files`` (location text → bytes); ``opens`` counts the reads of each."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self.files = dict(files)
        self.opens: dict[str, int] = {}

    def open(self, location: Location) -> IO[bytes]:
        body = self.files.get(location.text)
        if body is None:
            raise TaskFileError(f"{location.display}: task file not found")
        self.opens[location.text] = self.opens.get(location.text, 0) + 1
        return io.BytesIO(body)

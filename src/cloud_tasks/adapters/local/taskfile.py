"""Task files on the local disk: the ``TaskSource`` for plain paths and ``file://`` URLs."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from cloud_tasks.exceptions import TaskFileError
from cloud_tasks.localfile import NotARegularFileError, open_regular_file
from cloud_tasks.locations import Location


class LocalTaskSource:
    """Opens a local task file; a FIFO, a directory or a device is refused at once."""

    def open(self, location: Location) -> IO[bytes]:
        where = location.display
        try:
            return open_regular_file(Path(location.path))
        except FileNotFoundError:
            raise TaskFileError(f"{where}: task file not found") from None
        except NotARegularFileError as exc:
            raise TaskFileError(
                f"{where}: is {exc.kind}, not a task file; give the path of a JSON or YAML file"
            ) from None
        except OSError as exc:
            raise TaskFileError(f"{where}: cannot read task file: {exc.strerror or exc}") from None

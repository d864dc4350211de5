"""Tasks that race: the first run of a task straggles, any later run finishes fast (fixture).

Each run writes its pid to ``<dir>/pid-<pid>``; the run that creates ``<dir>/first`` (holding
its pid) sleeps ``straggle_s``, every other run sleeps ``fast_s`` and succeeds.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from cloud_tasks.worker import WorkerData


def process_task(task_id: str, data: dict[str, Any], worker_data: WorkerData) -> Any:
    folder = Path(data["dir"])
    pid = os.getpid()
    (folder / f"pid-{pid}").write_text(str(pid))
    try:
        fd = os.open(folder / "first", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        time.sleep(data.get("fast_s", 0.5))
        return True, {"pid": pid}
    with os.fdopen(fd, "w") as first:
        first.write(str(pid))
    time.sleep(data.get("straggle_s", 120))
    return True, {"pid": pid, "straggled": True}

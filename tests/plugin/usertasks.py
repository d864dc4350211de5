"""Task functions as a user's package would define them: top level, with heavy imports.

``threading`` work at import time stands in for libraries that start thread pools when
imported (BLAS, some SDKs): the worker must still run tasks from this module.
"""

from __future__ import annotations

import decimal
import email.parser
import sqlite3
import threading
import xml.dom.minidom
from typing import Any

import yaml

from cloud_tasks.worker import WorkerData

_POOL_STARTED = threading.Event()
threading.Thread(target=_POOL_STARTED.set, daemon=True, name="import-time-pool").start()

COUNTER = {"calls": 0}


def heavy_task(task_id: str, task_data: dict[str, Any], worker_data: WorkerData) -> Any:
    """Uses every heavy module it imported and reports what it saw."""
    COUNTER["calls"] += 1
    with sqlite3.connect(":memory:") as db:
        (total,) = db.execute("SELECT ? + ?", (task_data["a"], task_data["b"])).fetchone()
    doc = xml.dom.minidom.parseString(f"<sum>{total}</sum>")
    header = email.parser.Parser().parsestr(f"Subject: {task_id}\n\nbody")
    return True, {
        "sum": int(doc.documentElement.firstChild.data),  # type: ignore[union-attr]
        "subject": header["Subject"],
        "yaml": yaml.safe_dump({"d": str(decimal.Decimal(total) / 4)}).strip(),
        "calls_in_this_process": COUNTER["calls"],
    }

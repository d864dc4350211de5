"""``import cloud_tasks.worker`` stays light: no cloud SDK, no YAML parser."""

from __future__ import annotations

import subprocess
import sys


def test_worker_import_loads_no_cloud_sdk() -> None:
    code = (
        "import sys, cloud_tasks.worker\n"
        "from cloud_tasks.worker import Worker, WorkerData\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', "
        "'google', 'yaml', 'grpc'))\n"
        "print(','.join(bad))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert proc.stdout.strip() == ""

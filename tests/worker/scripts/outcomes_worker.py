"""A worker whose tasks pick their own outcome through ``data["mode"]`` (test fixture)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

from cloud_tasks.worker import Worker, WorkerData

CALLS = 0


def process_task(task_id: str, data: dict[str, Any], worker_data: WorkerData) -> Any:
    global CALLS
    CALLS += 1
    seen = {"calls": CALLS, "leak": os.environ.get("LEAKED_BY_A_TASK")}
    os.environ["LEAKED_BY_A_TASK"] = task_id
    mode = data["mode"]
    if "marker" in data:
        with open(data["marker"], "w") as marker:
            marker.write(str(os.getpid()))
    if mode == "success":
        return True, {**seen, "attempt": worker_data.attempt, "value": data.get("value")}
    if mode == "none":
        return True, None
    if mode == "retry":
        return False, {"why": "transient"}
    if mode == "raise":
        raise ValueError(f"bad input in {task_id}")
    if mode == "exit":
        sys.exit(3)
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "sleep":
        time.sleep(data.get("seconds", 60))
        return True, {"slept": True}
    if mode == "memory":
        blob = bytearray(8 * 1024**3)
        return True, {"size": len(blob)}
    if mode == "not_bool":
        return "no", {"looks": "like success"}
    if mode == "int_success":
        return 1, {}
    if mode == "nan_result":
        return True, {"score": float("nan")}
    if mode == "big":
        return True, {"blob": task_id * data["repeat"]}
    if mode == "unserializable":
        return True, {"value": object()}
    if mode == "options":
        return True, {
            "max_runtime": worker_data.max_runtime,
            "num_simultaneous_tasks": worker_data.num_simultaneous_tasks,
            "retry_on_exit": worker_data.retry_on_exit,
            "my_flag": getattr(worker_data.args, "my_flag", None),
            "termination": worker_data.received_termination_notice,
            "shutdown": worker_data.received_shutdown_request,
        }
    if mode == "wait_for_shutdown":
        deadline = time.monotonic() + data.get("seconds", 20)
        while time.monotonic() < deadline:
            if worker_data.received_shutdown_request or worker_data.received_termination_notice:
                return True, {"noticed": True}
            time.sleep(0.05)
        return True, {"noticed": False}
    raise RuntimeError(f"unknown mode {mode}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--my-flag", default="unset")
    Worker(process_task, args=sys.argv[1:], argparser=parser).run()

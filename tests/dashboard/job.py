"""A small real job on the ``local`` provider, and a headless Chromium to look at its dashboard.

Shared by the browser tests and by the script that draws the screenshot in docs/dashboard.md:
``python -m tests.dashboard.job docs/images/dashboard.png`` runs a job, serves its dashboard and
saves the page as a PNG.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

WORKER = """\
import asyncio, sys, time
from cloud_tasks.worker import Worker

def process_task(task_id, task_data, worker_data):
    time.sleep(task_data["sleep"])
    if task_data["n"] % 9 == 4:
        raise ValueError("pixel value out of range")
    if task_data["n"] % 13 == 7:
        raise FileNotFoundError("calibration frame missing")
    return True, {"doubled": task_data["n"] * 2}

if __name__ == "__main__":
    asyncio.run(Worker(process_task, args=sys.argv[1:]).start())
"""

CONFIG = """\
provider: local
local:
  job_id: {job_id}
  startup_script: |
    export RMS_CLOUD_TASKS_VISIBILITY_TIMEOUT=5
    exec python3 worker.py
  max_instances: 2
  cpus_per_task: 0.25
  max_tasks_per_instance: 2
  scaling_check_interval: 1
  instance_termination_delay: 3
  keepalive_interval: 1
  keepalive_startup_timeout: 30
  keepalive_timeout: 60
"""

#: Every plot of the page (``svg.chart`` ids).
PLOTS = ("completions", "throughput", "spend", "instances", "durations")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_executable() -> str | None:
    """Debian's chromium (``apt-get install -y chromium``), or ``None``."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def write_job(directory: Path, n_tasks: int, *, job_id: str = "dash-job") -> None:
    """A worker, a configuration and ``n_tasks`` tasks of 0.3 to 1.5 s (some fail)."""
    (directory / "worker.py").write_text(WORKER)
    (directory / "config.yml").write_text(CONFIG.format(job_id=job_id))
    tasks = [
        {"task_id": f"t{i:03d}", "data": {"n": i, "sleep": 0.3 + (i * 37 % 13) / 10}}
        for i in range(n_tasks)
    ]
    (directory / "tasks.json").write_text(json.dumps(tasks))


def environment(directory: Path) -> dict[str, str]:
    return {**os.environ, "XDG_STATE_HOME": str(directory / "state"), "PYTHONUNBUFFERED": "1"}


def start(directory: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cloud_tasks", *args],
        cwd=directory,
        env=environment(directory),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_url(stream: Any, timeout_s: float = 60.0) -> str:
    """The first ``http://`` address a process prints on ``stream`` (bounded wait)."""
    deadline = time.monotonic() + timeout_s
    seen = []
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(r"http://[^\s]+", line)
        if match:
            return match.group(0)
    raise AssertionError("no dashboard address printed: " + "".join(seen))


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout_s:g} s")
        time.sleep(0.2)


@contextmanager
def browser_page(executable: str) -> Iterator[tuple[Any, list[str]]]:
    """A Playwright page in headless Chromium, and the list of every URL it requests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1500})
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            yield page, requested
        finally:
            browser.close()


@contextmanager
def dashboard_of(directory: Path, db_file: str) -> Iterator[str]:
    """``cloud_tasks dashboard`` over ``db_file`` on a free port; yields its address."""
    server = start(directory, "dashboard", "--db-file", db_file, "--port", "0")
    try:
        yield read_url(server.stdout)
    finally:
        server.terminate()
        try:
            server.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()


def finished_job(directory: Path, n_tasks: int = 40) -> Path:
    """Run a job to its end; returns its task database."""
    write_job(directory, n_tasks)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cloud_tasks",
            "run",
            "--config",
            "config.yml",
            "--tasks",
            "tasks.json",
        ],
        cwd=directory,
        env=environment(directory),
        capture_output=True,
        text=True,
        timeout=240,
    )
    if result.returncode != 0:
        raise AssertionError(result.stdout + result.stderr)
    return directory / "dash-job.db"


def spot_job() -> tuple[Path, Callable[[], float], list[str]]:
    """The real pool manager on the memory provider (AWS catalog, spot, virtual time), with
    half the pool preempted once: what an aws job's task database holds.

    Writes the database in the current directory; returns its path, the job's clock and the
    preempted instances.
    """
    from cloud_tasks.domain.options import PoolLimits
    from cloud_tasks.service_layer.insight import PoolRecorder
    from tests.service_layer.test_pool_memory import make_job

    job = make_job(80, duration_s=120.0, limits=PoolLimits(max_instances=4, max_total_cost=0.05))
    preempted: list[str] = []

    def hook(elapsed: float) -> None:
        if elapsed >= 400 and not preempted:
            preempted.extend(job.compute.preempt_fraction(0.5, "job"))

    with PoolRecorder(job.db.path, job.clock) as recorder:
        job.manager.recorder = recorder
        job.manager.log = recorder.logged(job.log.append)
        outcome = job.run(hook)
    if outcome.status != "completed":
        raise AssertionError(outcome.message)
    job.db.close()
    return job.db.path, job.clock.now, preempted


def screenshot(directory: Path, output: Path, executable: str) -> None:
    """Run a job, serve its dashboard and save the page as a PNG at ``output``."""
    db = finished_job(directory)
    with dashboard_of(directory, str(db)) as url, browser_page(executable) as (page, _):
        page.goto(url)
        page.wait_for_selector("body[data-loaded]", timeout=30_000)
        page.screenshot(path=str(output), full_page=True)


def spot_screenshot(output: Path, executable: str) -> None:
    """Simulate ``spot_job`` (in the current directory), serve it and save the page."""
    from cloud_tasks.entrypoints.dashboard import DashboardServer

    path, clock, _ = spot_job()
    server = DashboardServer(path, port=0, clock=clock)
    server.start_background()
    try:
        with browser_page(executable) as (page, _):
            page.goto(server.url)
            page.wait_for_selector("body[data-loaded]", timeout=30_000)
            page.screenshot(path=str(output), full_page=True)
    finally:
        server.stop()


if __name__ == "__main__":
    # python -m tests.dashboard.job docs/images/dashboard.png [docs/images/dashboard-spot.png]
    import tempfile

    executable = chromium_executable()
    if executable is None:
        sys.exit("no chromium found: apt-get install -y chromium")
    outputs = [Path(arg).resolve() for arg in sys.argv[1:3]]
    with tempfile.TemporaryDirectory() as tmp:
        screenshot(Path(tmp), outputs[0], executable)
        if len(outputs) > 1:
            os.chdir(tmp)
            spot_screenshot(outputs[1], executable)

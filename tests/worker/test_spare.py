"""The spare task process the fork server keeps forked ahead of the next request.

The spare has done its start-up and waits for a request on a pipe of its own; these tests pin
what must hold all the same: it never outlives the server, its death before the hand-off loses
no request, a kill reaches the whole group of a task handed to it, and every task still starts
from a fresh copy of the server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from cloud_tasks.entrypoints.worker.data import WorkerData
from cloud_tasks.entrypoints.worker.forkserver import ChildReport, ForkServer

pytestmark = pytest.mark.timeout(60)

_seen_in_this_process: list[str] = []


def process_task(task_id: str, data: dict[str, Any], worker_data: WorkerData) -> Any:
    if data.get("sleep_with_child"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        Path(data["sleep_with_child"]).write_text(f"{os.getpid()} {child.pid}")
        time.sleep(120)
    before = {"env": os.environ.get("SPARE_TEST_MARK"), "global": list(_seen_in_this_process)}
    os.environ["SPARE_TEST_MARK"] = task_id
    _seen_in_this_process.append(task_id)
    return True, {"pid": os.getpid(), **before}


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_for(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _spares(server: ForkServer, running: set[int]) -> list[int]:
    children = psutil.Process(server.pid).children()
    return [c.pid for c in children if c.pid not in running and not _gone(c.pid)]


def _serve(body: Callable[[ForkServer], Awaitable[None]], max_running: int = 1) -> ForkServer:
    server = ForkServer.fork(process_task, WorkerData(), max_running=max_running)

    async def main() -> None:
        server.attach(asyncio.get_running_loop())
        try:
            await body(server)
        finally:
            server.close()

    asyncio.run(main())
    return server


async def _run(server: ForkServer, task_id: str, data: dict[str, Any] | None = None) -> ChildReport:
    _, future = server.submit(task_id, data or {}, 1, None)
    return await asyncio.wait_for(future, 20)


def test_the_spare_is_killed_and_reaped_with_the_server() -> None:
    spare: list[int] = []

    async def body(server: ForkServer) -> None:
        report = await _run(server, "t1")
        assert report.exit_code == 0 and report.outcome() is not None
        spare.extend(_wait_for(lambda: _spares(server, set()), "the spare"))

    _serve(body)
    assert len(spare) == 1
    assert not psutil.pid_exists(spare[0])


def test_a_spare_that_dies_before_its_hand_off_is_replaced_and_no_request_is_lost() -> None:
    async def body(server: ForkServer) -> None:
        for round_ in range(3):
            (spare,) = _wait_for(lambda: _spares(server, set()), "the spare")
            os.kill(spare, signal.SIGKILL)
            # Dead before the request is written: a spare that the kill reaches while the
            # request is already in its pipe may read it and die as that task (its report
            # then says so, and the worker retries it as any killed task).
            _wait_for(lambda s=spare: _gone(s), "the spare to die")
            if round_ == 1:  # also once the server has noticed (and forked another)
                _wait_for(lambda s=spare: _spares(server, set()) not in ([], [s]), "a new spare")
            report = await _run(server, f"t{round_}")
            outcome = report.outcome()
            assert report.exit_code == 0 and outcome is not None, report
            assert outcome["result"]["pid"] != spare

    _serve(body)


def test_a_kill_of_a_handed_off_task_kills_its_whole_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"

    async def body(server: ForkServer) -> None:
        token, future = server.submit("t1", {"sleep_with_child": str(pids)}, 1, None)
        await asyncio.to_thread(_wait_for, pids.exists, "the task's pids")
        task_pid, child_pid = map(int, pids.read_text().split())
        server.kill(token)
        report = await asyncio.wait_for(future, 20)
        assert report.exit_code == -signal.SIGKILL
        await asyncio.to_thread(_wait_for, lambda: _gone(child_pid), "the task's child to die")
        assert _gone(task_pid)

    _serve(body)


def test_each_task_starts_from_a_fresh_copy_of_the_server() -> None:
    async def body(server: ForkServer) -> None:
        pids = set()
        for task_id in ("t1", "t2", "t3"):
            outcome = (await _run(server, task_id)).outcome()
            assert outcome is not None
            assert outcome["result"]["env"] is None
            assert outcome["result"]["global"] == []
            pids.add(outcome["result"]["pid"])
        assert len(pids) == 3

    _serve(body)


def test_requests_beyond_max_running_wait_and_each_runs_once() -> None:
    async def body(server: ForkServer) -> None:
        reports = await asyncio.gather(*(_run(server, f"t{i}") for i in range(6)))
        outcomes = [r.outcome() for r in reports]
        assert all(r.exit_code == 0 for r in reports)
        assert len({o["result"]["pid"] for o in outcomes if o is not None}) == 6

    _serve(body, max_running=2)


def test_a_task_gets_back_the_sigpipe_disposition_of_its_worker() -> None:
    # The fork server ignores SIGPIPE (a write to a dead spare must fail, not kill it).
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "scripts" / "sigpipe_worker.py")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0 {'kind': 'success', 'result': {'sigpipe': 0}}"

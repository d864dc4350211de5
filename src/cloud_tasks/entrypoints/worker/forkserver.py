"""The fork server: one clean, single-threaded process that forks a child per task.

The worker forks the fork server before it starts any thread, event-loop executor or SDK
client, so the server holds the user's module and nothing else. For every task the server
forks a child (the cost of one ``fork``), the child runs ``process_task`` and writes its outcome
to a pipe, and the server reaps it and reports ``(token, wait status, outcome bytes)`` back over
one socket. Kills go through the server too, because only it knows whether a pid was reaped
(so a recycled pid is never signalled).

Frames on the socket are a 4-byte big-endian length followed by a pickle.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
import os
import pickle
import resource
import select
import signal
import socket
import struct
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from cloud_tasks.entrypoints.worker.data import WorkerData

ProcessTask = Callable[[str, Any, WorkerData], Any]

_HEADER = struct.Struct("!I")
_READ_CHUNK = 1 << 16
# Exit status of a child whose own machinery failed (not the user's code).
_INTERNAL_ERROR_EXIT = 70
# Reported instead of a wait status for a request dropped from the backlog before it started.
NOT_STARTED = -1

KIND_SUCCESS = "success"
KIND_RETRY_REQUESTED = "retry_requested"
KIND_EXCEPTION = "exception"
KIND_MEMORY = "memory"


@attrs.frozen
class ChildReport:
    """How one task process ended: its wait status and what it reported (empty if nothing)."""

    token: int
    wait_status: int
    payload: bytes

    @property
    def started(self) -> bool:
        return self.wait_status != NOT_STARTED

    @property
    def exit_code(self) -> int:
        """Exit status, or minus the signal number when a signal killed the process."""
        if self.wait_status == NOT_STARTED:
            return 0
        return os.waitstatus_to_exitcode(self.wait_status)

    def outcome(self) -> dict[str, Any] | None:
        """The child's outcome record, or None when it died before writing a complete one."""
        if not self.payload:
            return None
        try:
            record = json.loads(self.payload)
        except ValueError:
            return None
        return record if isinstance(record, dict) else None


def _frame(message: object) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


def _split_frames(buffer: bytearray) -> list[Any]:
    messages: list[Any] = []
    while len(buffer) >= _HEADER.size:
        (length,) = _HEADER.unpack_from(buffer)
        end = _HEADER.size + length
        if len(buffer) < end:
            break
        messages.append(pickle.loads(bytes(buffer[_HEADER.size : end])))
        del buffer[:end]
    return messages


# ----------------------------------------------------------------------------- child side


def _encode_outcome(task_id: str, returned: Any) -> bytes:
    if not isinstance(returned, tuple | list) or len(returned) != 2:
        raise TypeError(
            f"process_task must return a tuple (success, result), got {type(returned).__name__}"
        )
    success, result = returned
    if result is None:
        result = {}
    kind = KIND_SUCCESS if bool(success) else KIND_RETRY_REQUESTED
    try:
        return json.dumps({"kind": kind, "result": result}).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise TypeError(f"the result of task {task_id!r} is not JSON-serializable: {exc}") from exc


def _run_task(process_task: ProcessTask, task_id: str, data: Any, worker_data: WorkerData) -> bytes:
    """Run ``process_task`` and encode its outcome; ``SystemExit`` passes through."""
    try:
        returned = process_task(task_id, data, worker_data)
        return _encode_outcome(task_id, returned)
    except MemoryError:
        kind, text = KIND_MEMORY, traceback.format_exc()
    except SystemExit:
        raise
    except BaseException:
        kind, text = KIND_EXCEPTION, traceback.format_exc()
    return json.dumps({"kind": kind, "exception": text}).encode("utf-8")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _child_main(
    process_task: ProcessTask,
    worker_data: WorkerData,
    request: Mapping[str, Any],
    result_fd: int,
    memory_limit_bytes: int | None,
) -> None:
    """Body of a task process; never returns."""
    code = _INTERNAL_ERROR_EXIT
    try:
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if memory_limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
        data = attrs.evolve(
            worker_data, attempt=request["attempt"], instance_id=request["instance_id"]
        )
        payload = _run_task(process_task, request["task_id"], request["data"], data)
        _flush_std_streams()
        _write_all(result_fd, payload)
        os.close(result_fd)
        code = 0
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        _flush_std_streams()
        os._exit(code)


# ----------------------------------------------------------------------------- server side


@attrs.define
class _Child:
    token: int
    pid: int
    result_fd: int
    pidfd: int
    payload: bytearray = attrs.field(factory=bytearray)


def _open_pidfd(pid: int) -> int:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return -1


def _drain(child: _Child) -> None:
    """Read what is left in a child's pipe without waiting for the write end to close."""
    if child.result_fd < 0:
        return
    os.set_blocking(child.result_fd, False)
    try:
        while chunk := os.read(child.result_fd, _READ_CHUNK):
            child.payload += chunk
    except BlockingIOError:
        pass
    os.close(child.result_fd)
    child.result_fd = -1


def _serve(
    sock: socket.socket,
    process_task: ProcessTask,
    worker_data: WorkerData,
    memory_limit_bytes: int | None,
    max_running: int,
) -> None:
    """The fork server's loop: fork on request, report, reap; exit when the worker goes away.

    At most ``max_running`` children run at once; further requests wait in a backlog so the
    next child starts the moment one finishes, without a round trip to the worker. A child's
    outcome is reported as soon as its pipe closes with a complete record (the process is
    exiting); a child that closes it without one is reported when it is reaped.
    """
    sock.setblocking(True)
    control = sock.fileno()
    inbox = bytearray()
    backlog: collections.deque[dict[str, Any]] = collections.deque()
    children: dict[int, _Child] = {}  # by pid, until reaped
    by_token: dict[int, _Child] = {}  # until reported
    by_fd: dict[int, _Child] = {}
    poller = select.poll()
    poller.register(control, select.POLLIN)

    def forget(fd: int) -> None:
        if fd >= 0 and by_fd.pop(fd, None) is not None:
            poller.unregister(fd)

    def report(child: _Child, status: int) -> None:
        if by_token.pop(child.token, None) is not None:
            sock.sendall(_frame(("done", child.token, status, bytes(child.payload))))

    def reaped(child: _Child, status: int) -> None:
        forget(child.result_fd)
        _drain(child)
        forget(child.pidfd)
        if child.pidfd >= 0:
            os.close(child.pidfd)
            child.pidfd = -1
        children.pop(child.pid, None)
        report(child, status)

    def start(request: dict[str, Any]) -> None:
        read_fd, write_fd = os.pipe()
        _flush_std_streams()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            sock.close()
            for fd in list(by_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)
            _child_main(process_task, worker_data, request, write_fd, memory_limit_bytes)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)
        child = _Child(request["token"], pid, read_fd, _open_pidfd(pid))
        children[pid] = child
        by_token[child.token] = child
        by_fd[read_fd] = child
        poller.register(read_fd, select.POLLIN)
        if child.pidfd >= 0:
            by_fd[child.pidfd] = child
            poller.register(child.pidfd, select.POLLIN)
        sock.sendall(_frame(("started", child.token)))

    def pump() -> None:
        while backlog and len(by_token) < max_running:
            start(backlog.popleft())

    def kill(token: int, signum: int) -> None:
        for request in backlog:
            if request["token"] == token:
                backlog.remove(request)
                sock.sendall(_frame(("done", token, NOT_STARTED, b"")))
                return
        child = by_token.get(token)
        if child is None:
            return
        try:
            os.killpg(child.pid, signum)
        except OSError:
            with contextlib.suppress(OSError):
                os.kill(child.pid, signum)

    def drop_backlog() -> None:
        while backlog:
            request = backlog.popleft()
            sock.sendall(_frame(("done", request["token"], NOT_STARTED, b"")))

    while True:
        # Without pidfds (old kernels) poll for exits a few hundred times a second.
        timeout_ms = None if all(c.pidfd >= 0 for c in children.values()) else 5
        for fd, _ in poller.poll(timeout_ms):
            if fd == control:
                chunk = sock.recv(_READ_CHUNK)
                if not chunk:
                    for child in list(children.values()):
                        with contextlib.suppress(OSError):
                            os.killpg(child.pid, signal.SIGKILL)
                    return
                inbox += chunk
                for message in _split_frames(inbox):
                    if message[0] == "run":
                        backlog.append(message[1])
                    elif message[0] == "kill":
                        kill(message[1], message[2])
                    elif message[0] == "drop_backlog":
                        drop_backlog()
                continue
            owner = by_fd.get(fd)
            if owner is None:
                continue
            if fd == owner.result_fd:
                # A stale event for a reused fd number finds an empty non-blocking pipe.
                try:
                    chunk = os.read(fd, _READ_CHUNK)
                except BlockingIOError:
                    continue
                if chunk:
                    owner.payload += chunk
                    continue
                forget(fd)
                os.close(fd)
                owner.result_fd = -1
                if _complete_record(owner.payload):
                    report(owner, 0)
            elif fd == owner.pidfd:
                pid, status = os.waitpid(owner.pid, os.WNOHANG)
                if pid != 0:
                    reaped(owner, status)
        if timeout_ms is not None:
            _reap_without_pidfds(children, reaped)
        pump()


def _complete_record(payload: bytes | bytearray) -> bool:
    if not payload:
        return False
    try:
        return isinstance(json.loads(payload), dict)
    except ValueError:
        return False


def _reap_without_pidfds(
    children: dict[int, _Child], reaped: Callable[[_Child, int], None]
) -> None:
    """Reap exited children that have no pidfd (only where pidfds are unavailable)."""
    for child in list(children.values()):
        if child.pidfd >= 0:
            continue
        try:
            pid, status = os.waitpid(child.pid, os.WNOHANG)
        except ChildProcessError:
            continue
        if pid != 0:
            reaped(child, status)


def _reset_inherited_state() -> None:
    """Forget the parent's event loop and signal plumbing in the fork server."""
    asyncio.events._set_running_loop(None)
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with contextlib.suppress(OSError):
        # Out of the terminal's process group: Ctrl-C is the worker's to handle (grace period).
        os.setpgid(0, 0)
    with contextlib.suppress(OSError):
        # Tasks never read the worker's input (and are not in the terminal's group).
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)


class ForkServer:
    """The worker's handle on its fork server; ``submit``/``kill`` run on the event loop."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self._sock = sock
        self._inbox = bytearray()
        self._waiting: dict[int, asyncio.Future[ChildReport]] = {}
        self._next_token = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._on_started: Callable[[int], None] = _ignore

    @classmethod
    def fork(
        cls,
        process_task: ProcessTask,
        worker_data: WorkerData,
        *,
        max_running: int,
        memory_limit_bytes: int | None = None,
    ) -> ForkServer:
        """Fork the server now; call before any thread is started."""
        parent_sock, child_sock = socket.socketpair()
        _flush_std_streams()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                parent_sock.close()
                _reset_inherited_state()
                # Objects that exist now are never collected here or in a task process, so
                # the collector does not touch (and copy) their pages after each fork.
                gc.freeze()
                _serve(child_sock, process_task, worker_data, memory_limit_bytes, max_running)
            except BaseException:
                code = _INTERNAL_ERROR_EXIT
                with contextlib.suppress(Exception):
                    traceback.print_exc()
            finally:
                _flush_std_streams()
                os._exit(code)
        child_sock.close()
        return cls(pid, parent_sock)

    def attach(self, loop: asyncio.AbstractEventLoop, on_started: Callable[[int], None]) -> None:
        """Start reading reports on ``loop``; ``on_started(token)`` runs when a process starts."""
        self._loop = loop
        self._on_started = on_started
        self._sock.setblocking(False)
        loop.add_reader(self._sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        try:
            chunk = self._sock.recv(_READ_CHUNK * 4)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._fail_all("the fork server exited unexpectedly")
            return
        self._inbox += chunk
        for message in _split_frames(self._inbox):
            if message[0] == "started":
                self._on_started(message[1])
            elif message[0] == "done":
                _, token, status, payload = message
                future = self._waiting.pop(token, None)
                if future is not None and not future.done():
                    future.set_result(ChildReport(token, status, payload))

    def _fail_all(self, reason: str) -> None:
        if self._loop is not None and not self._closed:
            self._loop.remove_reader(self._sock.fileno())
        self._closed = True
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(RuntimeError(reason))
        self._waiting.clear()

    def reserve(self) -> tuple[int, asyncio.Future[ChildReport]]:
        """A token and the future its report will resolve; then ``submit`` the request."""
        if self._closed or self._loop is None:
            raise RuntimeError("the fork server is not running")
        self._next_token += 1
        future: asyncio.Future[ChildReport] = self._loop.create_future()
        self._waiting[self._next_token] = future
        return self._next_token, future

    async def submit(
        self, token: int, task_id: str, data: Any, attempt: int, instance_id: str | None
    ) -> None:
        """Queue a task with the server; it starts as soon as fewer than ``max_running`` run."""
        if self._loop is None:
            raise RuntimeError("the fork server is not running")
        request = {
            "token": token,
            "task_id": task_id,
            "data": data,
            "attempt": attempt,
            "instance_id": instance_id,
        }
        await self._loop.sock_sendall(self._sock, _frame(("run", request)))

    async def kill(self, token: int, signum: int = signal.SIGKILL) -> None:
        """Signal a task's process group, or drop it if it has not started; no-op once done."""
        if self._closed or self._loop is None or token not in self._waiting:
            return
        await self._loop.sock_sendall(self._sock, _frame(("kill", token, signum)))

    async def drop_backlog(self) -> None:
        """Report every request that has not started yet as not started."""
        if self._closed or self._loop is None:
            return
        await self._loop.sock_sendall(self._sock, _frame(("drop_backlog",)))

    def close(self) -> None:
        """Stop the server (it kills any task still running) and reap it."""
        if self._loop is not None and not self._closed:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._sock.fileno())
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _ignore(token: int) -> None:
    """Default ``on_started``."""


__all__ = ["NOT_STARTED", "ChildReport", "ForkServer", "ProcessTask"]

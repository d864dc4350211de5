"""The fork server: one clean, single-threaded process that forks a child per task.

The worker forks the fork server before it starts any thread, event-loop executor or SDK
client, so the server holds the user's module and nothing else. For every task the server
forks a child (the cost of one ``fork``); the child runs ``process_task`` and sends its outcome
straight to the worker over one shared datagram socket (``SOCK_SEQPACKET``: each message
arrives whole, tagged with the task's token); the server reaps the child and reports
``(token, wait status, elapsed, timed out)`` to the worker over its own socket. The worker
reads every outcome a child sent before it handles that child's exit, so a task that wrote its
outcome is never mistaken for one that died. The server also enforces ``max_runtime`` (it
knows when each child started) and carries out kills, because only it knows whether a pid was
reaped (so a recycled pid is never signalled).

The server's loop is kept small on purpose: after every fork each page it writes is copied
(copy-on-write) while the child lives, so per-task work there costs more than anywhere else.
A child costs the server one ``fork``, one pidfd, one pipe and one ``waitpid``. The server
keeps one *spare* child forked ahead, started up and waiting on its pipe: a request costs one
write to it, and the next spare is forked after the hand-off, off the path between two tasks.

Requests (worker to server) are frames: a 4-byte big-endian length followed by a pickle.
Reports (server to worker) are fixed-size records (``_DONE``); outcomes (child to worker) are
a ``_PART`` header (token, last part?) followed by up to ``_PART_BYTES`` of the outcome.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # the C module under signal (no stubs)
import _thread
import collections
import contextlib
import gc
import json
import marshal
import os
import pickle
import resource
import select
import signal
import socket
import struct
import sys
import time
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cloud_tasks.entrypoints.worker.data import WorkerData
from cloud_tasks.entrypoints.worker.gpus import gpu_assigner

if TYPE_CHECKING:
    import asyncio

ProcessTask = Callable[[str, Any, WorkerData], Any]

_HEADER = struct.Struct("!I")
_READ_CHUNK = 1 << 16
# A report: token, wait status (NOT_STARTED if never started), elapsed seconds, timed out.
_DONE = struct.Struct("=qidB")
# A request handed to a spare task process: token, task slot, length of the body that follows
# (a pickle of task id, data, attempt, instance id, made by the worker).
_REQUEST = struct.Struct("=qiI")
_REQUEST_READ = 4096
# An outcome message: token, 1 on the last part; the part follows.
_PART = struct.Struct("=qB")
# Outcome bytes per message (well under the socket's send buffer, so a send never fails
# for size; larger outcomes go in several messages).
_PART_BYTES = 32 * 1024
# Exit status of a child whose own machinery failed (not the user's code).
_INTERNAL_ERROR_EXIT = 70
# The longest single wait of the server's poll (ms); far below the C int limit of poll().
_MAX_POLL_MS = 3_600_000
_SIGINT = int(signal.SIGINT)
_SIGPIPE = int(signal.SIGPIPE)
# The worker's SIGPIPE disposition when it was not "ignore" (Python's own); the fork server
# ignores SIGPIPE (a write to a spare that died must fail, not kill it) and each task process
# puts this back.
_sigpipe_handler: Any = None
# Reported instead of a wait status for a request dropped from the backlog before it started.
NOT_STARTED = -1

# The standard library's fork hooks (os.register_at_fork) that only guard against locks that
# another thread held at the fork, by Python version: (module, hook functions). Python code run
# in every task process, with its copy-on-write faults, roughly doubles the cost of a fork
# (threading and logging's hooks, loaded with asyncio by the Quick Start form). The fork server
# is single-threaded, so it turns them off while it forks; each task process turns them back
# on before the user's code runs (a task that starts threads and forks gets them). Only the
# versions whose hooks were checked are listed: the before, child and parent hooks of a module
# go off together or not at all.
_SINGLE_THREAD_FORK_HOOKS: dict[tuple[int, int], tuple[tuple[str, tuple[str, ...]], ...]] = {
    (3, 11): (
        ("threading", ("_after_fork",)),
        ("logging", ("_acquireLock", "_after_at_fork_child_reinit_locks", "_releaseLock")),
    ),
    (3, 12): (
        ("threading", ("_after_fork",)),
        ("logging", ("_acquireLock", "_after_at_fork_child_reinit_locks", "_releaseLock")),
        ("asyncio.events", ("on_fork",)),
    ),
    (3, 13): (
        ("threading", ("_after_fork",)),
        ("logging", ("_prepareFork", "_after_at_fork_child_reinit_locks", "_afterFork")),
        ("asyncio.events", ("on_fork",)),
    ),
}
# Held while a fork server is forked (see ForkServer.fork).
_FORK_LOCK = _thread.allocate_lock()
# (function, its own code) of every hook the fork server turned off.
_silenced_hooks: list[tuple[types.FunctionType, types.CodeType]] = []

# allow_nan=False: NaN and Infinity are not JSON (SPEC §7: an error outcome). Made once:
# ``json.dumps`` with an option builds a new encoder at each call.
_OUTCOME_JSON = json.JSONEncoder(allow_nan=False)
# First byte of an outcome sent as ``marshal`` data, ``(kind, result)``; other outcomes are
# JSON records (which start with "{"). A task process sends a result this way when marshal
# takes it: in a freshly forked process each page written is copied, and marshal writes far
# fewer than the JSON encoder (about 10 pages against 50 for a small result). The worker then
# checks that the result is JSON (see _unmarshal_outcome). Marshal only reads and writes
# built-in types, so no code of the task runs in the worker. Only an outcome that fits one
# message goes this way: the worker's check of a large result would hold up its event loop,
# while the task process encodes it in parallel with everything else.
_MARSHALLED = b"M"

KIND_SUCCESS = "success"
KIND_RETRY_REQUESTED = "retry_requested"
KIND_EXCEPTION = "exception"
KIND_MEMORY = "memory"


class ChildReport:
    """How one task process ended: its wait status and what it reported (empty if nothing)."""

    __slots__ = ("elapsed_s", "payload", "timed_out", "token", "wait_status")

    def __init__(
        self,
        token: int,
        wait_status: int,
        payload: bytes,
        elapsed_s: float = 0.0,
        timed_out: bool = False,
    ) -> None:
        self.token = token
        self.wait_status = wait_status
        self.payload = payload
        self.elapsed_s = elapsed_s
        self.timed_out = timed_out

    def __repr__(self) -> str:
        return (
            f"ChildReport(token={self.token}, wait_status={self.wait_status}, "
            f"payload={self.payload!r}, elapsed_s={self.elapsed_s}, timed_out={self.timed_out})"
        )

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
        payload = self.payload
        if not payload:
            return None
        if payload[:1] == _MARSHALLED:
            return _unmarshal_outcome(payload)
        try:
            record = json.loads(payload)
        except ValueError:
            return None
        return record if isinstance(record, dict) else None


def _unmarshal_outcome(payload: bytes) -> dict[str, Any] | None:
    """The record of a ``_MARSHALLED`` outcome; its result must be JSON, as a JSON outcome's is."""
    try:
        kind, result = marshal.loads(memoryview(payload)[1:])
    except (EOFError, ValueError, TypeError):
        return None
    try:
        # Through JSON and back, so the result is what a JSON outcome would have held.
        result = json.loads(_OUTCOME_JSON.encode(result))
    except (TypeError, ValueError, RecursionError) as exc:
        return {
            "kind": KIND_EXCEPTION,
            "exception": f"TypeError: the task's result is not JSON-serializable: {exc}",
        }
    return {"kind": kind, "result": result}


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
    if not isinstance(returned, (tuple, list)) or len(returned) != 2:
        raise TypeError(
            f"process_task must return a tuple (success, result), got {type(returned).__name__}"
        )
    success, result = returned
    if not isinstance(success, bool):
        # Only a real bool decides: ("no", x) or a numpy bool must not pass for success.
        raise TypeError(
            f"process_task returned success of type {type(success).__name__}; expected bool"
        )
    if result is None:
        result = {}  # sent as marshal data, as any small result of built-in types
    kind = KIND_SUCCESS if success else KIND_RETRY_REQUESTED
    try:
        packed = marshal.dumps((kind, result))
    except ValueError:  # not built-in types only (a subclass, an instance), or nested too deep
        packed = b""
    if packed and len(packed) < _PART_BYTES:
        return _MARSHALLED + packed
    try:
        return _OUTCOME_JSON.encode({"kind": kind, "result": result}).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise TypeError(f"the result of task {task_id!r} is not JSON-serializable: {exc}") from exc


def _run_task(process_task: ProcessTask, task_id: str, data: Any, worker_data: WorkerData) -> bytes:
    """Run ``process_task`` and encode its outcome; ``SystemExit`` passes through."""
    try:
        returned = process_task(task_id, data, worker_data)
        return _encode_outcome(task_id, returned)
    except MemoryError:
        kind, text = KIND_MEMORY, _format_exc()
    except SystemExit:
        raise
    except BaseException:
        kind, text = KIND_EXCEPTION, _format_exc()
    return json.dumps({"kind": kind, "exception": text}).encode("utf-8")


def _format_exc() -> str:
    import traceback  # loaded in the fork server before any fork (see ForkServer.fork)

    return traceback.format_exc()


def _print_exc() -> None:
    with contextlib.suppress(Exception):
        import traceback

        traceback.print_exc()


def _send_outcome(fd: int, token: int, payload: bytes) -> None:
    """Send ``payload`` to the worker in messages of at most ``_PART_BYTES``."""
    if len(payload) <= _PART_BYTES:
        os.write(fd, _PART.pack(token, True) + payload)
        return
    start = 0
    while True:
        part = payload[start : start + _PART_BYTES]
        start += _PART_BYTES
        last = start >= len(payload)
        os.write(fd, _PART.pack(token, last) + part)
        if last:
            return


def _do_nothing() -> None:
    return None


def silence_fork_hooks() -> int:
    """Turn off the fork hooks of ``_SINGLE_THREAD_FORK_HOOKS`` in this (single-threaded)
    process; returns how many. ``restore_fork_hooks`` turns them back on."""
    hooks = _SINGLE_THREAD_FORK_HOOKS.get(sys.version_info[:2], ())
    for module_name, names in hooks:
        module = sys.modules.get(module_name)
        if module is None:
            continue
        functions = [getattr(module, name, None) for name in names]
        plain = [
            f
            for f in functions
            if isinstance(f, types.FunctionType)
            and f.__closure__ is None
            and f.__code__.co_argcount == 0
        ]
        if len(plain) != len(names):
            continue  # not the hooks this table knows: leave the module's hooks on
        for function in plain:
            _silenced_hooks.append((function, function.__code__))
            function.__code__ = _do_nothing.__code__
    return len(_silenced_hooks)


def restore_fork_hooks() -> None:
    """Turn the hooks ``silence_fork_hooks`` turned off back on."""
    while _silenced_hooks:
        function, code = _silenced_hooks.pop()
        function.__code__ = code


def _flush_std_streams() -> None:
    # try/except rather than contextlib.suppress: fewer objects touched in each task process.
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105
            stream.flush()
        except Exception:  # nowhere left to report a failing stream
            pass


def _read_request(fd: int) -> tuple[int, int, bytes] | None:
    """The spare's request ``(token, slot, body)`` from its pipe; None if the server is gone."""
    # A first read of one page: most requests fit, and a larger buffer is more pages to touch.
    data = os.read(fd, _REQUEST_READ)
    while len(data) < _REQUEST.size:
        more = os.read(fd, _REQUEST_READ)
        if not more:
            return None
        data += more
    token, slot, length = _REQUEST.unpack_from(data)
    end = _REQUEST.size + length
    while len(data) < end:
        more = os.read(fd, end - len(data))
        if not more:
            return None
        data += more
    return token, slot, data[_REQUEST.size : end]


def _spare_main(
    process_task: ProcessTask,
    worker_data: WorkerData,
    request_fd: int,
    result_fd: int,
    memory_limit_bytes: int | None,
    assign_gpus: Callable[[int], None] | None,
) -> None:
    """Body of a spare task process: start up, wait for a task, run it; never returns.

    Every step that does not depend on the task is done before the request arrives, so it is
    off the path from one task to the next. The request is ``(token, slot, body)``, the body
    a pickle of ``(task_id, data, attempt, instance_id)``.
    """
    code = _INTERNAL_ERROR_EXIT
    try:
        startup_failure = ""
        try:
            # The fork server runs without these (see ForkServer.fork); the user's code needs
            # them.
            restore_fork_hooks()
            gc.enable()
            # Each task in its own process group (whose whole group a kill signals).
            # try/except and _signal.signal (signal.signal without the wrapper that makes the
            # old handler an enum) rather than contextlib.suppress and signal.signal: every
            # object touched here costs the task process a copied page.
            try:  # noqa: SIM105
                os.setpgid(0, 0)
            except OSError:
                pass
            # SIGTERM is already SIG_DFL: the server set it so (_reset_inherited_state).
            _signal.signal(_SIGINT, signal.default_int_handler)
            if _sigpipe_handler is not None:
                _signal.signal(_SIGPIPE, _sigpipe_handler)
            if memory_limit_bytes is not None:
                resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
        except Exception:
            # Reported as the task's failure, once there is a task (a spare that died now
            # would only be replaced by another that fails the same way).
            startup_failure = _format_exc()
        request = _read_request(request_fd)
        if request is None:  # the fork server is gone: no task will come
            code = 0
            return
        if startup_failure:
            print(startup_failure, end="", file=sys.stderr)
            return
        token, slot, body = request
        if assign_gpus is not None:
            assign_gpus(slot)
        task_id, data, attempt, instance_id = pickle.loads(body)
        # This process owns its copy of the (frozen) WorkerData: setting the per-attempt
        # fields in place is invisible elsewhere and cheaper than building a new instance.
        object.__setattr__(worker_data, "attempt", attempt)
        object.__setattr__(worker_data, "instance_id", instance_id)
        object.__setattr__(worker_data, "task_id", task_id)
        payload = _run_task(process_task, task_id, data, worker_data)
        _send_outcome(result_fd, token, payload)
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
        _print_exc()
    finally:
        _flush_std_streams()
        os._exit(code)


# ----------------------------------------------------------------------------- server side


class _Child:
    """A task process: a spare (``token`` 0) until its hand-off; ``pipe`` takes its request."""

    __slots__ = (
        "body",
        "deadline",
        "killed",
        "pid",
        "pidfd",
        "pipe",
        "slot",
        "started",
        "timed_out",
        "token",
    )

    def __init__(self, pid: int, pidfd: int, pipe: int) -> None:
        self.token = 0
        self.pid = pid
        self.pidfd = pidfd
        self.pipe = pipe
        self.started = 0.0
        self.deadline = 0.0
        self.timed_out = False
        self.slot = 0  # the task slot, which picks the task's GPUs
        self.body = b""  # the request, kept until reaped (see _unread)
        self.killed = False


def _free_slot(running: dict[int, _Child]) -> int:
    """The lowest task slot no running child holds (slots pick each task's GPUs)."""
    taken = {child.slot for child in running.values()}
    slot = 0
    while slot in taken:
        slot += 1
    return slot


def _open_pidfd(pid: int) -> int:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return -1


def _write_all(fd: int, data: bytes) -> bool:
    """Write ``data`` to a pipe; False when its reader is gone."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        return False
    return True


def _unread(fd: int) -> bool:
    """Whether the pipe ``fd`` writes to still holds bytes its reader has not taken."""
    import fcntl  # loaded only when a task process was killed
    import termios

    try:
        waiting = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return False
    return int.from_bytes(waiting, sys.byteorder) > 0


def _serve(
    sock: socket.socket,
    result_fd: int,
    process_task: ProcessTask,
    worker_data: WorkerData,
    memory_limit_bytes: int | None,
    max_running: int,
    max_runtime_s: float,
) -> None:
    """The fork server's loop: hand requests to task processes, time out, reap, report; exit
    with the worker.

    One *spare* task process is always forked ahead: it has done its start-up and waits on a
    pipe of its own, so a request costs the server one write and the fork of the next spare
    comes after the hand-off and the round's reports, off the path between two tasks. At most
    ``max_running`` tasks run at once; further requests wait in a backlog so the next task
    starts the moment one finishes, without a round trip to the worker. A task still running
    ``max_runtime_s`` after its hand-off is killed (its whole process group). A task is
    reported when its process is reaped; the reports of one round go in one send.
    """
    sock.setblocking(True)
    control = sock.fileno()
    inbox = bytearray()
    reports = bytearray()
    backlog: collections.deque[tuple[int, bytes]] = collections.deque()
    by_token: dict[int, _Child] = {}  # handed a task, until reaped
    by_pidfd: dict[int, _Child] = {}  # the same, and the spare
    spare: _Child | None = None
    poller = select.poll()
    poller.register(control, select.POLLIN)
    monotonic = time.monotonic
    pack_report = _DONE.pack
    assign_gpus = gpu_assigner(worker_data)

    def forget(child: _Child) -> None:
        if child.pidfd >= 0:
            poller.unregister(child.pidfd)
            del by_pidfd[child.pidfd]
            os.close(child.pidfd)
        if child.pipe >= 0:
            os.close(child.pipe)

    def reaped(child: _Child, status: int) -> None:
        if os.WIFSIGNALED(status) and not child.killed and _unread(child.pipe):
            # Killed before it read its request (a spare killed just before its hand-off):
            # the request goes to the next task process, as if never handed off.
            forget(child)
            del by_token[child.token]
            backlog.appendleft((child.token, child.body))
            return
        forget(child)
        del by_token[child.token]
        elapsed = monotonic() - child.started
        reports.extend(pack_report(child.token, status, elapsed, child.timed_out))

    def fork_spare() -> _Child:
        # No flush of stdout/stderr here: the server prints nothing while serving (both were
        # flushed before it was forked), and each call would touch (and copy) more pages.
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            # os.close rather than sock.close (fewer pages touched); the socket object is
            # never used again in this process, which leaves by os._exit.
            os.close(control)
            os.close(write_fd)
            for fd in by_pidfd:
                os.close(fd)
            for running in by_token.values():
                os.close(running.pipe)
            _spare_main(
                process_task, worker_data, read_fd, result_fd, memory_limit_bytes, assign_gpus
            )
        os.close(read_fd)
        child = _Child(pid, _open_pidfd(pid), write_fd)
        if child.pidfd >= 0:
            by_pidfd[child.pidfd] = child
            poller.register(child.pidfd, select.POLLIN)
        return child

    def hand_off(token: int, body: bytes) -> None:
        nonlocal spare
        slot = _free_slot(by_token) if assign_gpus is not None else 0
        request = _REQUEST.pack(token, slot, len(body)) + body
        child = spare if spare is not None else fork_spare()
        spare = None
        if not _write_all(child.pipe, request):
            # The spare died before its hand-off: a fresh one takes the request (should it
            # be killed too before reading it, reaped() puts the request back).
            forget(child)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child.pid, 0)
            child = fork_spare()
            _write_all(child.pipe, request)
        now = monotonic()
        child.token = token
        child.body = body
        child.slot = slot
        child.started = now
        child.deadline = now + max_runtime_s
        by_token[token] = child

    def signal_group(child: _Child, signum: int) -> None:
        try:
            os.killpg(child.pid, signum)
        except OSError:
            with contextlib.suppress(OSError):
                os.kill(child.pid, signum)

    def kill(token: int, signum: int) -> None:
        for request in backlog:
            if request[0] == token:
                backlog.remove(request)
                reports.extend(pack_report(token, NOT_STARTED, 0.0, False))
                return
        child = by_token.get(token)
        if child is not None:
            child.killed = True
            signal_group(child, signum)

    def drop_backlog() -> None:
        while backlog:
            request = backlog.popleft()
            reports.extend(pack_report(request[0], NOT_STARTED, 0.0, False))

    def time_out() -> int | None:
        """Kill children past their deadline; milliseconds until the next deadline or None."""
        now = monotonic()
        nearest: float | None = None
        for child in by_token.values():
            if child.timed_out:
                continue
            if now >= child.deadline:
                child.timed_out = child.killed = True
                signal_group(child, signal.SIGKILL)
            elif nearest is None or child.deadline < nearest:
                nearest = child.deadline
        if nearest is None:
            return None
        # poll() takes a C int of milliseconds: wake at least hourly, whatever the deadline.
        return min(int((nearest - now) * 1000) + 1, _MAX_POLL_MS)

    # Pidfds exist on Linux >= 5.3; without them poll for exits a few hundred times a second
    # (a spare that dies unseen is found at its hand-off).
    probe = _open_pidfd(os.getpid())
    pidfds = probe >= 0
    if pidfds:
        os.close(probe)
    while True:
        if spare is None:
            spare = fork_spare()
        timeout_ms = time_out() if by_token else None
        if not pidfds and by_token:
            timeout_ms = 5 if timeout_ms is None else min(timeout_ms, 5)
        for fd, _ in poller.poll(timeout_ms):
            if fd == control:
                chunk = sock.recv(_READ_CHUNK)
                if not chunk:
                    for child in list(by_token.values()):
                        with contextlib.suppress(OSError):
                            os.killpg(child.pid, signal.SIGKILL)
                    if spare is not None:  # killed and reaped: no spare outlives the server
                        os.kill(spare.pid, signal.SIGKILL)
                        with contextlib.suppress(ChildProcessError):
                            os.waitpid(spare.pid, 0)
                    return
                inbox += chunk
                for message in _split_frames(inbox):
                    if message[0] == "run":
                        backlog.append(message[1:])
                    elif message[0] == "kill":
                        kill(message[1], message[2])
                    elif message[0] == "drop_backlog":
                        drop_backlog()
                continue
            owner = by_pidfd.get(fd)
            if owner is not None:
                pid, status = os.waitpid(owner.pid, os.WNOHANG)
                if pid == 0:
                    continue
                if owner is spare:  # died before its hand-off: the loop forks another
                    forget(owner)
                    spare = None
                else:
                    reaped(owner, status)
        if not pidfds and by_token:
            _reap_without_pidfds(by_token, reaped)
        while backlog and len(by_token) < max_running:
            hand_off(*backlog.popleft())
        if reports:
            sock.sendall(reports)
            reports.clear()


def _reap_without_pidfds(
    by_token: dict[int, _Child], reaped: Callable[[_Child, int], None]
) -> None:
    """Reap exited children that have no pidfd (only where pidfds are unavailable)."""
    for child in list(by_token.values()):
        if child.pidfd >= 0:
            continue
        try:
            pid, status = os.waitpid(child.pid, os.WNOHANG)
        except ChildProcessError:
            continue
        if pid != 0:
            reaped(child, status)


def _reset_inherited_state() -> None:
    """Forget the parent's event loop (if any) and signal plumbing in the fork server."""
    loaded_asyncio = sys.modules.get("asyncio")
    if loaded_asyncio is not None:
        loaded_asyncio.events._set_running_loop(None)
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    global _sigpipe_handler
    handler = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    if handler != signal.SIG_IGN:
        # _signal.signal takes SIG_DFL as the int, not as the enum signal.signal returns.
        _sigpipe_handler = int(handler) if isinstance(handler, int) else handler
    with contextlib.suppress(OSError):
        # Out of the terminal's process group: Ctrl-C is the worker's to handle (grace period).
        os.setpgid(0, 0)
    with contextlib.suppress(OSError):
        # Tasks never read the worker's input (and are not in the terminal's group).
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)


class ForkServer:
    """The worker's handle on its fork server; use it from the event loop's thread."""

    def __init__(self, pid: int, sock: socket.socket, results: socket.socket) -> None:
        self.pid = pid
        self._sock = sock
        self._results = results
        # Outcome parts received so far, and complete outcomes, by token.
        self._parts: dict[int, list[bytes]] = {}
        self._outcomes: dict[int, bytes] = {}
        self._inbox = bytearray()
        self._unsent = bytearray()  # frames not yet handed to the socket (see _send)
        self._outbox = bytearray()  # frames the socket did not take yet
        self._waiting: dict[int, asyncio.Future[ChildReport]] = {}
        self._next_token = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @classmethod
    def fork(
        cls,
        process_task: ProcessTask,
        worker_data: WorkerData,
        *,
        max_running: int,
        memory_limit_bytes: int | None = None,
        max_runtime_s: float = 3600.0,
    ) -> ForkServer:
        """Fork the server now; call before any thread is started."""
        # One fork at a time: a server forked while another worker of this process (a thread)
        # holds the worker's end of a socket pair made for its server would keep that server
        # (and its spare) waiting for an end of input that never comes.
        with _FORK_LOCK:
            return cls._fork(
                process_task, worker_data, max_running, memory_limit_bytes, max_runtime_s
            )

    @classmethod
    def _fork(
        cls,
        process_task: ProcessTask,
        worker_data: WorkerData,
        max_running: int,
        memory_limit_bytes: int | None,
        max_runtime_s: float,
    ) -> ForkServer:
        parent_sock, child_sock = socket.socketpair()
        try:
            results, task_results = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except (AttributeError, OSError):  # no SOCK_SEQPACKET: datagrams keep boundaries too
            results, task_results = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        _flush_std_streams()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                parent_sock.close()
                results.close()
                _reset_inherited_state()
                import traceback  # noqa: F401  (loaded once here, not in each failing task)

                # Objects that exist now are never collected here or in a task process, so
                # the collector does not touch (and copy) their pages after each fork; the
                # server's loop makes no reference cycles, so it runs without the collector.
                gc.freeze()
                gc.disable()
                silence_fork_hooks()
                _serve(
                    child_sock,
                    task_results.fileno(),
                    process_task,
                    worker_data,
                    memory_limit_bytes,
                    max_running,
                    max_runtime_s,
                )
            except BaseException:
                code = _INTERNAL_ERROR_EXIT
                _print_exc()
            finally:
                _flush_std_streams()
                os._exit(code)
        child_sock.close()
        task_results.close()
        return cls(pid, parent_sock, results)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start reading reports and outcomes on ``loop``."""
        self._loop = loop
        self._sock.setblocking(False)
        self._results.setblocking(False)
        loop.add_reader(self._sock.fileno(), self._on_readable)
        loop.add_reader(self._results.fileno(), self._read_outcomes)

    def _read_outcomes(self, drain: bool = False) -> None:
        """Take the next outcome message (the loop calls again while more wait), or with
        ``drain`` every message waiting."""
        recv = self._results.recv
        size = _PART.size
        while True:
            try:
                message = recv(_PART.size + _PART_BYTES)
            except OSError:  # none waiting (BlockingIOError), or the socket is closed
                return
            if not message:  # every sender is gone: the server exited (see _on_readable)
                if self._loop is not None and not self._closed:
                    self._loop.remove_reader(self._results.fileno())
                return
            if len(message) < size:
                continue
            token, last = _PART.unpack_from(message)
            if last and token not in self._parts:
                self._outcomes[token] = message[size:]
            else:
                parts = self._parts.setdefault(token, [])
                parts.append(message[size:])
                if last:
                    self._outcomes[token] = b"".join(self._parts.pop(token))
            if not drain:
                return

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
        inbox = self._inbox
        inbox += chunk
        end = len(inbox) - len(inbox) % _DONE.size
        if end == 0:
            return
        drained = False
        for token, status, elapsed_s, timed_out in _DONE.iter_unpack(bytes(inbox[:end])):
            if token not in self._outcomes and not drained:
                # The child has exited, so everything it sent is waiting already.
                self._read_outcomes(drain=True)
                drained = True
            # An outcome cut short (the child died while sending it) counts as none.
            payload = self._outcomes.pop(token, b"")
            self._parts.pop(token, None)
            future = self._waiting.pop(token, None)
            if future is not None and not future.done():
                future.set_result(ChildReport(token, status, payload, elapsed_s, bool(timed_out)))
        del inbox[:end]

    def _fail_all(self, reason: str) -> None:
        if self._loop is not None and not self._closed:
            self._loop.remove_reader(self._sock.fileno())
            self._loop.remove_reader(self._results.fileno())
            if self._outbox:
                self._loop.remove_writer(self._sock.fileno())
        self._closed = True
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(RuntimeError(reason))
        self._waiting.clear()

    def _send(self, message: tuple[Any, ...]) -> None:
        """Queue a frame for the server; the frames queued while the loop runs one callback go
        in one write, just after it (one wake-up of the server for many requests)."""
        if self._closed or self._loop is None:
            raise RuntimeError("the fork server is not running")
        if not self._unsent:
            self._loop.call_soon(self._flush)
        self._unsent += _frame(message)

    def _flush(self) -> None:
        """Write the queued frames now if the socket takes them, else when it is ready."""
        frames, self._unsent = self._unsent, bytearray()
        if self._closed or self._loop is None or not frames:
            return
        if self._outbox:
            self._outbox += frames
            return
        try:
            sent = self._sock.send(frames)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._fail_all("the fork server exited unexpectedly")
            return
        if sent < len(frames):
            self._outbox += frames[sent:]
            self._loop.add_writer(self._sock.fileno(), self._on_writable)

    def _on_writable(self) -> None:
        try:
            sent = self._sock.send(self._outbox)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._fail_all("the fork server exited unexpectedly")
            return
        del self._outbox[:sent]
        if not self._outbox and self._loop is not None:
            self._loop.remove_writer(self._sock.fileno())

    def submit(
        self, task_id: str, data: Any, attempt: int, instance_id: str | None
    ) -> tuple[int, asyncio.Future[ChildReport]]:
        """Queue a task with the server; it starts as soon as fewer than ``max_running`` run.

        Returns the task's token (for ``kill``) and the future its report resolves.
        """
        if self._closed or self._loop is None:
            raise RuntimeError("the fork server is not running")
        self._next_token += 1
        token = self._next_token
        future: asyncio.Future[ChildReport] = self._loop.create_future()
        self._waiting[token] = future
        # Pickled apart: the server hands these bytes to a task process without reading them.
        body = pickle.dumps((task_id, data, attempt, instance_id), pickle.HIGHEST_PROTOCOL)
        self._send(("run", token, body))
        return token, future

    def kill(self, token: int, signum: int = signal.SIGKILL) -> None:
        """Signal a task's process group, or drop it if it has not started; no-op once done."""
        if self._closed or self._loop is None or token not in self._waiting:
            return
        self._send(("kill", token, signum))

    def drop_backlog(self) -> None:
        """Report every request that has not started yet as not started."""
        if self._closed or self._loop is None:
            return
        self._send(("drop_backlog",))

    def close(self) -> None:
        """Stop the server (it kills any task still running) and reap it."""
        if self._loop is not None and not self._closed:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._sock.fileno())
            with contextlib.suppress(Exception):
                self._loop.remove_writer(self._sock.fileno())
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._results.fileno())
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.close()
        with contextlib.suppress(OSError):
            self._results.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


__all__ = ["NOT_STARTED", "ChildReport", "ForkServer", "ProcessTask"]

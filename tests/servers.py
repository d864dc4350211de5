"""Loopback servers shared by the suite: moto's threaded server (SQS, EC2, S3) and Google's
Pub/Sub emulator.

Each test that asks for ``moto_server`` gets the server's endpoint with its state reset; each
test that asks for ``pubsub_emulator`` gets a fresh project id on one session-wide emulator.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def _moto_session() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_server(_moto_session: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The endpoint of a moto server with fresh state; AWS_ENDPOINT_URL points at it."""
    request = urllib.request.Request(f"{_moto_session}/moto-api/reset", method="POST")
    # A generous bound: on a loaded machine the in-process server can be slow to answer.
    with urllib.request.urlopen(request, timeout=60):
        pass
    monkeypatch.setenv("AWS_ENDPOINT_URL", _moto_session)
    return _moto_session


# --- Google's Pub/Sub emulator ------------------------------------------------------------------

_EMULATOR_RELATIVE = Path("platform/pubsub-emulator/bin/cloud-pubsub-emulator")
_KNOWN_SDK_ROOTS = (
    "/usr/lib/google-cloud-sdk",
    "/usr/share/google-cloud-sdk",
    "/opt/google-cloud-sdk",
    "/snap/google-cloud-sdk/current",
    "~/google-cloud-sdk",
)


def find_pubsub_emulator() -> Path | None:
    """The emulator launcher under the gcloud SDK root, or None when it is not installed."""
    roots: list[str] = []
    if os.environ.get("CLOUDSDK_ROOT_DIR"):
        roots.append(os.environ["CLOUDSDK_ROOT_DIR"])
    gcloud = shutil.which("gcloud")
    if gcloud:
        try:
            out = subprocess.run(
                [gcloud, "info", "--format=value(installation.sdk_root)"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        if out:
            roots.append(out)
    roots.extend(_KNOWN_SDK_ROOTS)
    for root in roots:
        candidate = Path(root).expanduser() / _EMULATOR_RELATIVE
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _wait_for_port(
    host: str, port: int, process: subprocess.Popen[bytes], timeout_s: float
) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


@pytest.fixture(scope="session")
def _pubsub_emulator_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    launcher = find_pubsub_emulator()
    if launcher is None:
        reason = (
            "Pub/Sub emulator not found under the gcloud SDK root "
            "(install it: gcloud components install pubsub-emulator, or the "
            "google-cloud-cli-pubsub-emulator package)"
        )
        pytest.skip(reason)
    if shutil.which("java") is None:
        reason = "Pub/Sub emulator needs Java (17 or newer) on PATH"
        pytest.skip(reason)
    port = free_port()
    log_path = tmp_path_factory.mktemp("pubsub-emulator") / "emulator.log"
    env = dict(os.environ)
    env.setdefault("JAVA_OPTS", "-Xmx512m -XX:+UseSerialGC")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(launcher), "--host=127.0.0.1", f"--port={port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group: the launcher script starts java
        )
    try:
        if not _wait_for_port("127.0.0.1", port, process, timeout_s=90):
            tail = log_path.read_text(errors="replace")[-2000:]
            reason = f"Pub/Sub emulator at {launcher} did not start: {tail}"
            pytest.skip(reason)
        yield f"127.0.0.1:{port}"
    finally:
        _stop_process_group(process)


def _stop_process_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


@attrs.frozen
class PubSubEmulator:
    """A running emulator: ``host`` (for PUBSUB_EMULATOR_HOST) and a fresh project id."""

    host: str
    project_id: str


_EMULATOR_PROPERTY = "pubsub_emulator"


@pytest.fixture
def pubsub_emulator(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> PubSubEmulator:
    """The Pub/Sub emulator with a project id no other test uses; PUBSUB_EMULATOR_HOST is set.

    Each test that asks for it records whether the emulator ran in its report's user
    properties, which pytest-xdist carries from its workers to the summary below.
    """
    try:
        host: str = request.getfixturevalue("_pubsub_emulator_session")
    except pytest.skip.Exception:
        request.node.user_properties.append((_EMULATOR_PROPERTY, "skipped"))
        raise
    request.node.user_properties.append((_EMULATOR_PROPERTY, "ran"))
    project_id = f"test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", host)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", project_id)
    return PubSubEmulator(host, project_id)


_EMULATOR_TESTS: dict[str, set[str]] = {"ran": set(), "skipped": set()}
_EMULATOR_SKIP_REASONS: set[str] = set()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for name, value in report.user_properties:
        if name == _EMULATOR_PROPERTY and value in _EMULATOR_TESTS:
            _EMULATOR_TESTS[value].add(report.nodeid)
            if value == "skipped" and isinstance(report.longrepr, tuple):
                _EMULATOR_SKIP_REASONS.add(str(report.longrepr[2]).removeprefix("Skipped: "))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say whether the Pub/Sub emulator tests ran, so a green run cannot hide skipped ones."""
    ran = len(_EMULATOR_TESTS["ran"])
    skipped = len(_EMULATOR_TESTS["skipped"] - _EMULATOR_TESTS["ran"])
    if ran:
        line = f"Pub/Sub emulator: ran ({ran} tests used it"
        line += f", {skipped} skipped)" if skipped else ")"
    elif skipped:
        reasons = "; ".join(sorted(_EMULATOR_SKIP_REASONS)) or "see the skip reasons above"
        line = f"Pub/Sub emulator: skipped ({skipped} tests; {reasons})"
    else:
        line = "Pub/Sub emulator: not used"
    terminalreporter.write_sep("-", "emulators")
    terminalreporter.write_line(line)

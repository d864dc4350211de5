"""Loopback servers shared by the suite: moto's threaded server (SQS, EC2, S3).

Each test that asks for ``moto_server`` gets the server's endpoint with its state reset.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator

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
    with urllib.request.urlopen(request, timeout=10):
        pass
    monkeypatch.setenv("AWS_ENDPOINT_URL", _moto_session)
    return _moto_session

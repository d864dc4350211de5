"""docs/task-files.md, "In a bucket or on a web server": every message shown is one we produce."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cloud_tasks.adapters.aws.s3 import translate_s3_error
from cloud_tasks.exceptions import CloudTasksError
from cloud_tasks.taskfile import read_tasks
from tests.servers import free_port

DOC = Path(__file__).resolve().parents[2] / "docs" / "task-files.md"


def _documented() -> dict[str, str]:
    text = DOC.read_text()
    section = text.split("## In a bucket or on a web server", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^- ([^:`]+): `(.*)`$", section, re.M))


def _pattern(documented: str) -> re.Pattern[str]:
    """The documented message with each '…' standing for any text."""
    return re.compile(".*".join(re.escape(part) for part in documented.split("…")))


def _message(location: str) -> str:
    with pytest.raises(CloudTasksError) as info:
        read_tasks(location)
    return str(info.value)


@pytest.fixture
def web() -> Iterator[str]:
    body = b"[" + b" " * 21888 + b"]"

    class _Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/secret"):
                self.send_response(403)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path == "/cut.json":
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:1000])
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_every_documented_message_is_real(moto_server: str, web: str) -> None:
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    s3.create_bucket(Bucket="my-bucket")
    s3.put_object(Bucket="my-bucket", Key="cold.json", Body=b"[]", StorageClass="GLACIER")
    s3.put_object(Bucket="my-bucket", Key="t.json", Body=b'[{"task_id": "a"}]')
    refused = ClientError({"Error": {"Code": "AccessDenied", "Message": "Denied"}}, "GetObject")
    dead = f"http://127.0.0.1:{free_port()}"

    def on_web(message: str, base: str = web) -> str:
        return message.replace(base, "https://data.example").replace("/secret.json", "/tasks.json")

    actual = {
        "missing object": _message("s3://my-bucket/tasks.json"),
        "missing bucket": _message("s3://other-bucket/tasks.json"),
        "no permission": str(translate_s3_error(refused, "s3://my-bucket/secret.json")),
        "archived (Glacier) object": _message("s3://my-bucket/cold.json"),
        "web server refuses": on_web(_message(f"{web}/secret.json?X-Amz-Signature=abc")),
        "web server has no such file": on_web(_message(f"{web}/tasks.json")),
        "server cannot be reached": on_web(_message(f"{dead}/tasks.json"), dead),
        "download cut short": on_web(_message(f"{web}/cut.json")).replace("/cut.", "/tasks."),
        "malformed location": _message("s3://my-bucket"),
        "bad content": _message("s3://my-bucket/t.json"),
    }
    documented = _documented()
    assert sorted(documented) == sorted(actual)
    for label, message in actual.items():
        assert _pattern(documented[label]).fullmatch(message), (label, message)

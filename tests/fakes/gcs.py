"""A loopback fake of the Cloud Storage JSON API: enough for google-cloud-storage to read objects.

Serves what the client's download path asks for:

- ``GET /storage/v1/b/{bucket}/o/{object}`` — object metadata (``Blob.reload``), with a
  ``mediaLink`` back to this server, as the real service returns;
- ``GET /download/storage/v1/b/{bucket}/o/{object}?alt=media`` (and the same under
  ``/storage/v1``) — the bytes, honouring ``Range: bytes=a-b`` with 206, and 416 past the end
  (``BlobReader`` reads in ranged chunks and stops on 416);
- 404 with the service's error body for a missing bucket or object, 403 for a forbidden one;
- ``POST /upload/storage/v1/b/{bucket}/o?uploadType=multipart`` (``multipart/related``: the
  object's JSON metadata, then its bytes) and ``?uploadType=media&name=...``, answering the new
  object's metadata (``Blob.upload_from_string``) into a bucket that ``create_bucket`` made or
  that already holds an object;
- ``DELETE /storage/v1/b/{bucket}/o/{object}``: 204, or 404 for a missing object.

Point the client at it with ``STORAGE_EMULATOR_HOST`` (the client then uses anonymous
credentials). Every request is recorded as ``(method, path, query, headers)``, with
header names lower-cased.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import threading
import time
from base64 import b64encode
from hashlib import md5
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

_OBJECT_PATH = re.compile(r"^(?:/download)?/storage/v1/b/([^/]+)/o/(.+)$")
_UPLOAD_PATH = re.compile(r"^/upload/storage/v1/b/([^/]+)/o$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class FakeGcs:
    """Objects by (bucket, name); ``forbidden`` buckets or objects answer 403."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.generations: dict[tuple[str, str], int] = {}
        self.forbidden: set[tuple[str, str | None]] = set()
        self.buckets: set[str] = set()
        self.requests: list[tuple[str, str, dict[str, list[str]], dict[str, str]]] = []
        self._lock = threading.Lock()
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                with outer._lock:
                    headers = {key.lower(): value for key, value in self.headers.items()}
                    outer.requests.append((self.command, parts.path, query, headers))
                outer._serve(self, parts.path, query)

            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with outer._lock:
                    headers = {key.lower(): value for key, value in self.headers.items()}
                    outer.requests.append((self.command, parts.path, query, headers))
                outer._upload(self, parts.path, query, body)

            def do_DELETE(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                with outer._lock:
                    headers = {key.lower(): value for key, value in self.headers.items()}
                    outer.requests.append((self.command, parts.path, query, headers))
                outer._delete(self, parts.path)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def put(self, bucket: str, name: str, data: bytes) -> None:
        with self._lock:
            self.objects[(bucket, name)] = data
            self.generations[(bucket, name)] = time.time_ns() // 1000

    def create_bucket(self, bucket: str) -> None:
        with self._lock:
            self.buckets.add(bucket)

    def _bucket_exists(self, bucket: str) -> bool:
        return bucket in self.buckets or any(key[0] == bucket for key in self.objects)

    def media_requests(self) -> list[dict[str, str]]:
        """Headers of every download request, in order."""
        return [
            headers for _m, _p, query, headers in self.requests if query.get("alt") == ["media"]
        ]

    def start(self) -> FakeGcs:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ----------------------------------------------------------------------------------------

    def _serve(
        self, handler: BaseHTTPRequestHandler, path: str, query: dict[str, list[str]]
    ) -> None:
        match = _OBJECT_PATH.match(path)
        if match is None:
            self._error(handler, 404, f"Not Found: {path}", "notFound")
            return
        bucket, name = unquote(match.group(1)), unquote(match.group(2))
        if (bucket, None) in self.forbidden or (bucket, name) in self.forbidden:
            self._error(
                handler,
                403,
                f"anonymous caller does not have storage.objects.get access to the Google "
                f"Cloud Storage object. Permission 'storage.objects.get' denied on resource "
                f"(or it may not exist): {bucket}/{name}",
                "forbidden",
            )
            return
        with self._lock:
            data = self.objects.get((bucket, name))
            generation = self.generations.get((bucket, name), 0)
        if data is None:
            if not self._bucket_exists(bucket):
                self._error(handler, 404, "The specified bucket does not exist.", "notFound")
            else:
                self._error(handler, 404, f"No such object: {bucket}/{name}", "notFound")
            return
        asked = query.get("generation")
        if asked and asked != [str(generation)]:
            self._error(handler, 404, f"No such object: {bucket}/{name}", "notFound")
            return
        if query.get("alt") == ["media"]:
            self._media(handler, data, generation)
        else:
            self._json(handler, 200, self._metadata(bucket, name, data, generation))

    def _upload(
        self,
        handler: BaseHTTPRequestHandler,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
    ) -> None:
        match = _UPLOAD_PATH.match(path)
        if match is None:
            self._error(handler, 404, f"Not Found: {path}", "notFound")
            return
        bucket = unquote(match.group(1))
        kind = (query.get("uploadType") or [""])[0]
        if kind == "media":
            name, data = (query.get("name") or [""])[0], body
        elif kind == "multipart":
            content_type = handler.headers.get("Content-Type", "")
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
            )
            parts = list(message.iter_parts()) if message.is_multipart() else []
            if len(parts) != 2:
                self._error(handler, 400, "Multipart upload needs two parts.", "invalid")
                return
            name = json.loads(parts[0].get_payload(decode=True) or b"{}").get("name", "")
            data = parts[1].get_payload(decode=True) or b""
        else:
            self._error(handler, 400, f"Unsupported uploadType {kind!r}.", "invalid")
            return
        if not name:
            self._error(handler, 400, "Required parameter: name", "required")
            return
        if (bucket, None) in self.forbidden or (bucket, name) in self.forbidden:
            self._error(
                handler,
                403,
                f"caller does not have storage.objects.create access to the Google Cloud "
                f"Storage object: {bucket}/{name}",
                "forbidden",
            )
            return
        with self._lock:
            exists = self._bucket_exists(bucket)
        if not exists:
            self._error(handler, 404, "The specified bucket does not exist.", "notFound")
            return
        self.put(bucket, name, data)
        with self._lock:
            generation = self.generations[(bucket, name)]
        self._json(handler, 200, self._metadata(bucket, name, data, generation))

    def _delete(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        match = _OBJECT_PATH.match(path)
        if match is None or path.startswith("/download"):
            self._error(handler, 404, f"Not Found: {path}", "notFound")
            return
        bucket, name = unquote(match.group(1)), unquote(match.group(2))
        with self._lock:
            removed = self.objects.pop((bucket, name), None)
            self.generations.pop((bucket, name), None)
            if removed is not None:
                self.buckets.add(bucket)
        if removed is None:
            self._error(handler, 404, f"No such object: {bucket}/{name}", "notFound")
            return
        handler.send_response(204)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _metadata(self, bucket: str, name: str, data: bytes, generation: int) -> dict[str, Any]:
        quoted = quote(name, safe="")
        return {
            "kind": "storage#object",
            "id": f"{bucket}/{name}/{generation}",
            "selfLink": f"{self.url}/storage/v1/b/{bucket}/o/{quoted}",
            "mediaLink": (
                f"{self.url}/download/storage/v1/b/{bucket}/o/{quoted}"
                f"?generation={generation}&alt=media"
            ),
            "name": name,
            "bucket": bucket,
            "generation": str(generation),
            "metageneration": "1",
            "contentType": "application/octet-stream",
            "storageClass": "STANDARD",
            "size": str(len(data)),
            "md5Hash": b64encode(md5(data).digest()).decode(),
            "etag": "CAE=",
        }

    def _media(self, handler: BaseHTTPRequestHandler, data: bytes, generation: int) -> None:
        status, body = 200, data
        extra = {
            "x-goog-generation": str(generation),
            "x-goog-stored-content-length": str(len(data)),
        }
        wanted = handler.headers.get("Range")
        if wanted:
            match = _RANGE.match(wanted.strip())
            if match is None:
                self._error(handler, 400, f"bad Range header {wanted!r}", "invalid")
                return
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else len(data) - 1
            if start >= len(data):
                self._error(handler, 416, "The requested range cannot be satisfied.", "invalid")
                return
            end = min(end, len(data) - 1)
            status, body = 206, data[start : end + 1]
            extra["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        handler.send_response(status)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(body)))
        for key, value in extra.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(body)

    def _error(
        self, handler: BaseHTTPRequestHandler, status: int, message: str, reason: str
    ) -> None:
        payload = {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"message": message, "domain": "global", "reason": reason}],
            }
        }
        self._json(handler, status, payload)

    @staticmethod
    def _json(handler: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=UTF-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

"""Queue loading throughput: ``cloud_tasks load_queue`` into the Pub/Sub emulator and SQLite.

Run it from the repository root::

    .venv/bin/python benchmarks/queue_load.py [--tasks 20000] [--reference-venv PATH]

It starts its own Pub/Sub emulator (found under the gcloud SDK root) on a free loopback port,
writes a file of small tasks, and times, end to end as a user runs them (process start, file
validation, queue creation, sending, waiting for every acknowledgement):

- ``cloud_tasks load_queue --provider gcp`` into the emulator;
- ``cloud_tasks load_queue --provider local`` into a SQLite queue;
- the emulator's own ceiling: a bare ``google-cloud-pubsub`` publisher publishing the same
  messages as fast as it can (no file reading, no validation);
- with ``--reference-venv``, the reference implementation's ``load_queue --provider gcp``
  against the same emulator (rms-cloud-tasks 0.5.0 asks Cloud Monitoring for the queue depth
  first, which cannot work offline; when it fails the reason is printed).

Every load is checked by pulling the messages back and counting distinct task ids.
Target: at least 5,000 messages/s into the emulator.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

SDK_ROOTS = (
    "/usr/lib/google-cloud-sdk",
    "/usr/share/google-cloud-sdk",
    "/opt/google-cloud-sdk",
    "/snap/google-cloud-sdk/current",
    "~/google-cloud-sdk",
)
EMULATOR = Path("platform/pubsub-emulator/bin/cloud-pubsub-emulator")


def find_emulator() -> Path | None:
    roots = [os.environ.get("CLOUDSDK_ROOT_DIR", "")]
    gcloud = shutil.which("gcloud")
    if gcloud:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            roots.append(
                subprocess.run(
                    [gcloud, "info", "--format=value(installation.sdk_root)"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=False,
                ).stdout.strip()
            )
    roots.extend(SDK_ROOTS)
    for root in filter(None, roots):
        candidate = Path(root).expanduser() / EMULATOR
        if candidate.is_file():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def emulator(workdir: Path) -> Iterator[str]:
    launcher = find_emulator()
    if launcher is None:
        sys.exit(
            "The Pub/Sub emulator is not installed (gcloud components install pubsub-emulator)"
        )
    port = free_port()
    env = dict(os.environ)
    env.setdefault("JAVA_OPTS", "-Xmx1g")
    with (workdir / "emulator.log").open("wb") as log:
        process = subprocess.Popen(
            [str(launcher), "--host=127.0.0.1", f"--port={port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"The emulator did not start; see {workdir / 'emulator.log'}")
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def count_in_subscription(host: str, project: str, subscription: str) -> int:
    """Pull every message of ``subscription`` and return the number of distinct task ids."""
    os.environ["PUBSUB_EMULATOR_HOST"] = host
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(project, subscription)
    seen: set[str] = set()
    empty = 0
    while empty < 5:
        response = subscriber.pull(
            request={"subscription": path, "max_messages": 1000, "return_immediately": True},
            timeout=10,
        )
        if not response.received_messages:
            empty += 1
            time.sleep(0.2)
            continue
        empty = 0
        for received in response.received_messages:
            seen.add(json.loads(received.message.data)["task_id"])
        ack_ids = [m.ack_id for m in response.received_messages]
        subscriber.acknowledge(request={"subscription": path, "ack_ids": ack_ids})
    subscriber.close()
    return len(seen)


def timed(command: list[str], env: dict[str, str], timeout_s: float = 600) -> tuple[float, str]:
    """Wall time of ``command`` and its combined output; raises on a non-zero exit."""
    started = time.perf_counter()
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    elapsed = time.perf_counter() - started
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise RuntimeError(output.splitlines()[-1] if output else f"exit {result.returncode}")
    return elapsed, output


def raw_publisher(host: str, project: str, payloads: list[bytes]) -> float:
    """Seconds a bare publisher (default settings) takes to publish ``payloads``."""
    os.environ["PUBSUB_EMULATOR_HOST"] = host
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic = publisher.topic_path(project, "raw")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=subscriber.subscription_path(project, "raw"), topic=topic)
    started = time.perf_counter()
    futures = [publisher.publish(topic, data) for data in payloads]
    for future in futures:
        future.result()
    elapsed = time.perf_counter() - started
    subscriber.close()
    return elapsed


def line(label: str, count: int, seconds: float, note: str = "") -> None:
    rate = count / seconds if seconds > 0 else float("inf")
    print(f"{label:<58} {count:>7,} msgs {seconds:>7.2f} s {rate:>9,.0f} msg/s {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000, help="number of tasks (20000)")
    parser.add_argument(
        "--reference-venv",
        type=Path,
        help="virtualenv with rms-cloud-tasks==0.5.0 installed, to compare against",
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="queue-load-"))
    tasks = [{"task_id": f"task-{i:06d}", "data": {"n": i, "s": "abc"}} for i in range(args.tasks)]
    task_file = workdir / "tasks.json"
    task_file.write_text(json.dumps(tasks), encoding="utf-8")
    cli = [sys.executable, "-m", "cloud_tasks"]
    print(f"{args.tasks:,} tasks of ~60 bytes; working directory {workdir}")
    print(f"{'':<58} {'':>12} {'wall':>9} {'rate':>15}")

    with emulator(workdir) as host:
        env = dict(
            os.environ,
            PUBSUB_EMULATOR_HOST=host,
            RMS_CLOUD_TASKS_STATE_DIR=str(workdir),
            # Offline: no credential lookup may reach a metadata server.
            GCE_METADATA_HOST="127.0.0.1:1",
            GCE_METADATA_IP="127.0.0.1:1",
            NO_GCE_CHECK="true",
        )
        # The emulator is a JVM: warm it up so that no contender pays for its JIT.
        warm = [b'{"task_id":"warm","data":{}}'] * 20_000
        raw_publisher(host, f"warm-{uuid.uuid4().hex[:8]}", warm)

        project = f"bench-{uuid.uuid4().hex[:8]}"
        seconds, _ = timed(
            [
                *cli,
                "load_queue",
                "--provider",
                "gcp",
                "--project-id",
                project,
                "--job-id",
                "bench",
                "--tasks",
                str(task_file),
                "-q",
            ],
            env,
        )
        got = count_in_subscription(host, project, "bench")
        ours_gcp = args.tasks / seconds
        line(
            "cloud_tasks load_queue --provider gcp (emulator)",
            args.tasks,
            seconds,
            f"[{got:,} distinct in the queue]",
        )

        seconds, _ = timed(
            [
                *cli,
                "load_queue",
                "--provider",
                "local",
                "--job-id",
                "bench",
                "--tasks",
                str(task_file),
                "-q",
            ],
            env,
        )
        line("cloud_tasks load_queue --provider local (SQLite)", args.tasks, seconds)

        payloads = [
            json.dumps({"task_id": t["task_id"], "data": t["data"], "failures": 0}).encode()
            for t in tasks
        ]
        raw_project = f"bench-{uuid.uuid4().hex[:8]}"
        seconds = raw_publisher(host, raw_project, payloads)
        got = count_in_subscription(host, raw_project, "raw")
        line(
            "bare google-cloud-pubsub publisher (emulator ceiling)",
            args.tasks,
            seconds,
            f"[{got:,} distinct in the queue]",
        )

        if args.reference_venv is not None:
            reference = args.reference_venv / "bin" / "cloud_tasks"
            ref_project = f"bench-{uuid.uuid4().hex[:8]}"
            try:
                seconds, _ = timed(
                    [
                        str(reference),
                        "load_queue",
                        "--provider",
                        "gcp",
                        "--project-id",
                        ref_project,
                        "--job-id",
                        "bench",
                        "--task-file",
                        str(task_file),
                    ],
                    dict(env, GOOGLE_CLOUD_PROJECT=ref_project),
                    timeout_s=900,
                )
            except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
                print(f"reference load_queue --provider gcp could not run offline: {exc}")
            else:
                line("reference 0.5.0 load_queue --provider gcp (emulator)", args.tasks, seconds)
                print(f"ratio cloud_tasks / reference: {ours_gcp / (args.tasks / seconds):.1f}x")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""The queue commands against real queues: SQLite, SQS on moto, Pub/Sub on the emulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cloud_tasks.entrypoints.cli.main import cli, main

# The Pub/Sub adapter sets return_immediately on purpose when asked not to wait.
pytestmark = pytest.mark.filterwarnings("ignore:.*return_immediately:DeprecationWarning")


@pytest.fixture(autouse=True)
def _private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Queue files and load records go to this test's directory, not the user's."""
    monkeypatch.setenv("RMS_CLOUD_TASKS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("RMS_CLOUD_TASKS_QUEUE_DIR", raising=False)


#: The local job's queue file lives with it: beside the task database job-a.db, here.
JOB_DIR = Path(".cloud_tasks") / "job-a"


def write_tasks(path: Path, count: int, *, pad: int = 0) -> Path:
    tasks = [{"task_id": f"t{i:05d}", "data": {"i": i, "pad": "x" * pad}} for i in range(count)]
    path.write_text(json.dumps(tasks), encoding="utf-8")
    return path


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI in-process the way the console script does; returns (status, out, err)."""
    try:
        main(args)
        status = 0
    except SystemExit as exc:
        status = int(exc.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def show(provider_args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    status, out, err = run(["show_queue", *provider_args, "--format", "json"], capsys)
    assert status == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


LOCAL = ["--provider", "local", "--job-id", "job-a"]


def test_load_is_idempotent_and_show_reports_the_depth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = write_tasks(tmp_path / "tasks.json", 50)
    status, out, err = run(
        ["load_queue", *LOCAL, "--tasks", str(tasks), "--format", "json"], capsys
    )
    assert status == 0, err
    assert json.loads(out) == {
        "queue": "job-a",
        "provider": "local",
        "loaded": 50,
        "skipped": 0,
        "tasks_in_file": 50,
    }
    status, out, _ = run(["load_queue", *LOCAL, "--tasks", str(tasks)], capsys)
    assert status == 0
    assert "Loaded 0 task(s)" in out
    assert "Skipped 50" in out and "--reload" in out
    shown = show(LOCAL, capsys)
    assert shown["queue"] == "job-a"
    assert shown["depth"] == 50
    assert shown["events_depth"] == 0


def test_start_task_and_limit_select_a_slice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloud_tasks.adapters.local.sqlite_queue import SqliteTaskQueue, queue_file

    tasks = write_tasks(tmp_path / "tasks.json", 30)
    args = ["load_queue", *LOCAL, "--tasks", str(tasks), "--start-task", "10", "--limit", "5"]
    status, _, err = run(args, capsys)
    assert status == 0, err
    queue = SqliteTaskQueue(queue_file("job-a", JOB_DIR), "job-a")
    got = queue.receive(100, 60.0)
    assert sorted(m.task_id for m in got) == [f"t{i:05d}" for i in range(10, 15)]


def test_an_invalid_task_file_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tasks.json"
    records = [{"task_id": f"t{i}", "data": {}} for i in range(2000)]
    records.append({"task_id": "t3", "data": {}})  # a duplicate at the very end
    path.write_text(json.dumps(records), encoding="utf-8")
    status, out, err = run(["load_queue", *LOCAL, "--tasks", str(path)], capsys)
    assert status == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "t3" in err and str(path) in err
    status, _, err = run(["show_queue", *LOCAL], capsys)
    assert status == 1
    assert "does not exist" in err


def test_show_detail_shows_a_message_without_consuming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = write_tasks(tmp_path / "tasks.json", 1)
    assert run(["load_queue", *LOCAL, "--tasks", str(tasks)], capsys)[0] == 0
    status, out, _ = run(["show_queue", *LOCAL, "--detail", "--format", "json"], capsys)
    assert status == 0
    shown = json.loads(out)
    assert shown["sample"]["task_id"] == "t00000"
    assert shown["sample"]["data"] == {"i": 0, "pad": ""}
    # Released at once: it is still there for a worker.
    status, out, _ = run(["show_queue", *LOCAL, "--detail", "--format", "json"], capsys)
    assert json.loads(out)["sample"]["task_id"] == "t00000"
    assert json.loads(out)["depth"] == 1


def test_show_detail_escapes_control_characters_in_the_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile = "evil\u202etxt.exe\x7f\u2028\x1b[2J"
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps([{"task_id": hostile, "data": {"note": hostile}}]), "utf-8")
    assert run(["load_queue", *LOCAL, "--tasks", str(path)], capsys)[0] == 0
    status, out, err = run(["show_queue", *LOCAL, "--detail"], capsys)
    assert status == 0, err
    for raw in ("\u202e", "\x7f", "\u2028", "\x1b"):
        assert raw not in out
    assert out.count("evil\\u202etxt.exe\\x7f\\u2028\\u001b[2J") == 2
    # Machine output keeps the values as they are.
    status, out, _ = run(["show_queue", *LOCAL, "--detail", "--format", "json"], capsys)
    assert json.loads(out)["sample"]["task_id"] == hostile


def test_purge_asks_first_and_then_empties_the_queue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = write_tasks(tmp_path / "tasks.json", 20)
    assert run(["load_queue", *LOCAL, "--tasks", str(tasks)], capsys)[0] == 0
    declined = CliRunner().invoke(cli, ["purge_queue", *LOCAL], input="n\n")
    assert declined.exit_code != 0
    assert "about 20 message(s)" in declined.output
    assert show(LOCAL, capsys)["depth"] == 20
    accepted = CliRunner().invoke(cli, ["purge_queue", *LOCAL], input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert show(LOCAL, capsys)["depth"] == 0
    # After a purge the same file loads again in full.
    status, out, _ = run(["load_queue", *LOCAL, "--tasks", str(tasks), "--format", "json"], capsys)
    assert status == 0
    assert json.loads(out)["loaded"] == 20


def test_delete_asks_unless_forced_and_removes_both_queues(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = write_tasks(tmp_path / "tasks.json", 3)
    assert run(["load_queue", *LOCAL, "--tasks", str(tasks)], capsys)[0] == 0
    declined = CliRunner().invoke(cli, ["delete_queue", *LOCAL], input="n\n")
    assert declined.exit_code != 0
    assert show(LOCAL, capsys)["depth"] == 3
    status, out, _ = run(["delete_queue", *LOCAL, "--force"], capsys)
    assert status == 0
    assert "'job-a' and 'job-a-events'" in out
    status, _, err = run(["show_queue", *LOCAL], capsys)
    assert status == 1
    assert err.startswith("Error: ") and "job-a" in err and "load_queue" in err
    status, out, _ = run(["delete_queue", *LOCAL, "--force"], capsys)
    assert status == 0
    assert "nothing to delete" in out


def test_queue_files_are_owner_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tasks = write_tasks(tmp_path / "tasks.json", 3)
    assert run(["load_queue", *LOCAL, "--tasks", str(tasks)], capsys)[0] == 0
    queue_dir = tmp_path / JOB_DIR
    assert (queue_dir.stat().st_mode & 0o777) == 0o700
    for path in queue_dir.iterdir():
        assert (path.stat().st_mode & 0o777) == 0o600, path


def _cli_process(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cloud_tasks", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for_depth(depth: Any, minimum: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if depth() >= minimum:
                return
        except Exception:  # the queue may not exist yet
            pass
        time.sleep(0.02)


def test_a_load_killed_midway_and_run_again_loads_each_task_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloud_tasks.adapters.local.sqlite_queue import SqliteTaskQueue, queue_file

    count = 60_000
    tasks = write_tasks(tmp_path / "tasks.json", count)
    args = ["load_queue", *LOCAL, "--tasks", str(tasks)]
    process = _cli_process(args, dict(os.environ))
    queue = SqliteTaskQueue(queue_file("job-a", JOB_DIR), "job-a")
    _wait_for_depth(queue.depth, 1, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    partial = queue.depth()
    status, out, err = run([*args, "--format", "json"], capsys)
    assert status == 0, err
    summary = json.loads(out)
    assert summary["loaded"] + summary["skipped"] == count
    assert summary["skipped"] == partial
    assert queue.depth() == count


def test_sqs_load_interrupted_and_rerun_sends_each_task_once(
    moto_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloud_tasks.adapters.aws.sqs import SqsTaskQueue

    aws = ["--provider", "aws", "--job-id", "job-b", "--region", "us-east-1"]
    count = 600  # moto slows down as its queue grows; enough to interrupt the load midway
    tasks = write_tasks(tmp_path / "tasks.json", count)
    args = ["load_queue", *aws, "--tasks", str(tasks)]
    process = _cli_process(args, dict(os.environ))
    queue = SqsTaskQueue("job-b", region="us-east-1")
    _wait_for_depth(queue.depth, 1, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode in (0, 130), stderr
    status, out, err = run([*args, "--format", "json"], capsys)
    assert status == 0, err
    summary = json.loads(out)
    assert summary["loaded"] + summary["skipped"] == count
    assert queue.depth() == count
    assert show(aws, capsys) == {
        "queue": "job-b",
        "depth": count,
        "provider": "aws",
        "events_queue": "job-b-events",
        "events_depth": 0,
    }


def test_sqs_oversized_task_is_reported_before_anything_is_created(
    moto_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloud_tasks.adapters.aws.sqs import SqsTaskQueue

    path = tmp_path / "tasks.json"
    records = [{"task_id": "small", "data": {}}, {"task_id": "huge", "data": {"x": "y" * 300_000}}]
    path.write_text(json.dumps(records), encoding="utf-8")
    aws = ["--provider", "aws", "--job-id", "job-c", "--region", "us-east-1"]
    status, _, err = run(["load_queue", *aws, "--tasks", str(path)], capsys)
    assert status == 1
    assert "'huge'" in err and "262144" in err and "nothing was sent" in err
    assert not SqsTaskQueue("job-c", region="us-east-1").exists()


def test_sqs_missing_queue_is_one_clear_line(
    moto_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(["show_queue", "--provider", "aws", "--job-id", "nope"], capsys)
    assert status == 1
    assert out == ""
    assert err.count("\n") == 1
    assert "SQS queue 'nope' does not exist" in err


def test_pubsub_load_show_purge_delete(
    pubsub_emulator: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gcp = ["--provider", "gcp", "--job-id", "job-d", "--project-id", pubsub_emulator.project_id]
    tasks = write_tasks(tmp_path / "tasks.json", 40)
    status, out, err = run(["load_queue", *gcp, "--tasks", str(tasks), "--format", "json"], capsys)
    assert status == 0, err
    assert json.loads(out)["loaded"] == 40
    status, out, _ = run(["load_queue", *gcp, "--tasks", str(tasks), "--format", "json"], capsys)
    assert json.loads(out)["skipped"] == 40
    assert show(gcp, capsys)["depth"] == 40
    assert run(["purge_queue", *gcp, "--force"], capsys)[0] == 0
    assert show(gcp, capsys)["depth"] == 0
    assert run(["delete_queue", *gcp, "--force"], capsys)[0] == 0
    status, _, err = run(["show_queue", *gcp], capsys)
    assert status == 1
    assert "Pub/Sub queue 'job-d'" in err and "does not exist" in err

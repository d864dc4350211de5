"""File mode with real processes: outcomes, isolation, ordering, options and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.worker.helpers import by_task, read_events, run_script, write_tasks

QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart"


def test_quickstart_example_runs_unchanged(tmp_path: Path) -> None:
    """The Quick Start worker (examples/quickstart, the guide's code) as a user runs it."""
    shutil.copy(QUICKSTART / "my_tasks.json", tmp_path / "my_tasks.json")
    shutil.copy(QUICKSTART / "my_worker.py", tmp_path / "my_worker.py")
    proc = run_script(
        str(tmp_path / "my_worker.py"),
        ["--tasks", "my_tasks.json", "--num-simultaneous-tasks", "10"],
    )
    assert proc.returncode == 0, proc.stderr
    tasks = json.loads((tmp_path / "my_tasks.json").read_text())
    events = read_events()
    completed = [e for e in events if e["event_type"] == "task_completed"]
    assert sorted(e["task_id"] for e in completed) == sorted(t["task_id"] for t in tasks)
    for task in tasks:
        expected = task["data"]["num1"] + task["data"]["num2"]
        saved = json.loads((tmp_path / "results" / f"{task['task_id']}.json").read_text())
        assert saved == {"sum": expected}
    for event in completed:
        assert event["success"] is True and event["retry"] is False
        assert event["attempt"] == 1
        assert {"timestamp", "hostname", "instance_id", "elapsed_time", "result"} <= set(event)
        assert event["timestamp"].endswith("+00:00")


# The Quick Start guide's Step 2 code, line for line (the guide elides the body and the
# typing imports that its annotations need).
GUIDE_LINES = [
    "import asyncio",
    "import sys",
    "from cloud_tasks.worker import Worker",
    "def process_task(task_id: str, task_data: Dict[str, Any], worker_data: WorkerData)"
    " -> Tuple[bool, Any]:",
    "async def main():",
    "    # These command line arguments are used to override environment variables when",
    "    # specifying the behavior of the worker process manager.",
    "    worker = Worker(process_task, args=sys.argv[1:])",
    "    await worker.start()",
    'if __name__ == "__main__":',
    "    asyncio.run(main())",
]


def test_quickstart_example_keeps_the_guide_code() -> None:
    """The shipped example is the test fixture and keeps every line of the guide's code."""
    shipped = (QUICKSTART / "my_worker.py").read_text().splitlines()
    for line in GUIDE_LINES:
        # ``import Worker`` may go on with more names (``, WorkerData``).
        assert any(s == line or s.startswith(line + ",") for s in shipped), line


def test_every_outcome_is_reported_and_the_worker_keeps_going(tmp_path: Path) -> None:
    modes = ["success", "none", "retry", "raise", "exit", "kill", "sleep", "memory"]
    modes += ["unserializable", "success"]
    tasks = [{"task_id": f"t{i}-{mode}", "data": {"mode": mode}} for i, mode in enumerate(modes)]
    write_tasks(tmp_path / "tasks.json", tasks)
    proc = run_script(
        "outcomes_worker.py",
        [
            "--tasks", "tasks.json", "--num-simultaneous-tasks", "4", "--max-runtime", "1.5",
            "--max-memory-allowed-per-task", "1", "--retry-on-exit",
        ],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    events = by_task(read_events())
    assert sorted(events) == sorted(t["task_id"] for t in tasks)
    assert all(len(v) == 1 for v in events.values())
    ev = {task_id.split("-", 1)[1] + task_id.split("-")[0]: v[0] for task_id, v in events.items()}

    assert ev["successt0"]["event_type"] == "task_completed"
    assert ev["successt0"]["success"] is True and ev["successt0"]["retry"] is False
    assert ev["nonet1"]["result"] == {}
    assert ev["retryt2"]["event_type"] == "task_completed"
    assert ev["retryt2"]["success"] is False and ev["retryt2"]["retry"] is True
    assert ev["raiset3"]["event_type"] == "task_exception"
    assert "ValueError: bad input in t3-raise" in ev["raiset3"]["exception"]
    assert "Traceback" in ev["raiset3"]["exception"]
    assert ev["raiset3"]["retry"] is False  # --retry-on-exception is off
    assert ev["exitt4"]["event_type"] == "task_exited"
    assert ev["exitt4"]["exit_code"] == 3 and ev["exitt4"]["retry"] is True
    assert ev["killt5"]["event_type"] == "task_exited" and ev["killt5"]["exit_code"] == -9
    assert ev["sleept6"]["event_type"] == "task_timed_out"
    assert ev["sleept6"]["retry"] is False
    assert 1.4 <= ev["sleept6"]["elapsed_time"] < 10
    assert ev["memoryt7"]["event_type"] == "task_exception"
    assert ev["memoryt7"]["outcome"] == "memory"
    assert "MemoryError" in ev["memoryt7"]["exception"]
    assert ev["memoryt7"]["retry"] is False
    assert ev["unserializablet8"]["event_type"] == "task_exception"
    assert "not JSON-serializable" in ev["unserializablet8"]["exception"]
    assert ev["successt9"]["success"] is True
    for event in read_events():
        assert isinstance(event.get("retry", False), bool)


def test_each_task_runs_in_a_fresh_process(tmp_path: Path) -> None:
    tasks = [{"task_id": f"t{i}", "data": {"mode": "success", "value": i}} for i in range(12)]
    write_tasks(tmp_path / "tasks.json", tasks)
    proc = run_script("outcomes_worker.py", ["--tasks", "tasks.json", "-v"])
    assert proc.returncode == 0, proc.stderr
    completed = [e for e in read_events() if e["event_type"] == "task_completed"]
    assert [e["task_id"] for e in completed] == [t["task_id"] for t in tasks]  # file order
    for event in completed:
        assert event["result"]["calls"] == 1  # a global set by an earlier task is not seen
        assert event["result"]["leak"] is None  # nor is an os.environ change


def test_large_results_of_tasks_running_side_by_side_arrive_whole(tmp_path: Path) -> None:
    """Outcomes larger than one message (the worker reads them in parts of 32 KB) are never
    mixed up. About 80 KB each: several parts, and inside the 256 KiB event limit."""
    repeats = {f"t{i}": 40_000 + 7 * i for i in range(6)}
    tasks = [{"task_id": t, "data": {"mode": "big", "repeat": r}} for t, r in repeats.items()]
    write_tasks(tmp_path / "tasks.json", tasks)
    proc = run_script(
        "outcomes_worker.py", ["--tasks", "tasks.json", "--num-simultaneous-tasks", "3"]
    )
    assert proc.returncode == 0, proc.stderr
    completed = [e for e in read_events() if e["event_type"] == "task_completed"]
    assert sorted(e["task_id"] for e in completed) == sorted(repeats)
    for event in completed:
        assert event["success"] is True
        assert event["result"]["blob"] == event["task_id"] * repeats[event["task_id"]]


def test_skip_and_max_num_tasks_from_the_environment(tmp_path: Path) -> None:
    tasks = [{"task_id": f"t{i}", "data": {"mode": "success"}} for i in range(10)]
    write_tasks(tmp_path / "tasks.yaml", tasks)  # JSON is valid YAML
    (tmp_path / "logs").mkdir()  # the event log's folder is never created for you
    proc = run_script(
        "outcomes_worker.py",
        ["--max-num-tasks", "3"],
        env={
            "RMS_CLOUD_TASKS_TASKS": "tasks.yaml",
            "RMS_CLOUD_TASKS_TO_SKIP": "4",
            "RMS_CLOUD_TASKS_MAX_NUM_TASKS": "9",  # the command line wins
            "RMS_CLOUD_TASKS_EVENT_LOG_FILE": "logs/run.jsonl",
        },
    )
    assert proc.returncode == 0, proc.stderr
    events = read_events(tmp_path / "logs" / "run.jsonl")
    assert [e["task_id"] for e in events] == ["t4", "t5", "t6"]
    assert not (tmp_path / "events.log").exists()


def test_options_reach_worker_data(tmp_path: Path) -> None:
    write_tasks(tmp_path / "tasks.json", [{"task_id": "o", "data": {"mode": "options"}}])
    proc = run_script(
        "outcomes_worker.py",
        ["--tasks", "tasks.json", "--my-flag", "hello", "--max-runtime", "77"],
        env={
            "RMS_CLOUD_TASKS_NUM_TASKS_PER_INSTANCE": "3",
            "RMS_CLOUD_TASKS_RETRY_ON_EXIT": "Yes",
            "RMS_CLOUD_TASKS_MAX_RUNTIME": "5",
        },
    )
    assert proc.returncode == 0, proc.stderr
    (event,) = read_events()
    assert event["result"] == {
        "max_runtime": 77.0,
        "num_simultaneous_tasks": 3,
        "retry_on_exit": True,
        "my_flag": "hello",
        "termination": False,
        "shutdown": False,
    }


def test_no_event_log(tmp_path: Path) -> None:
    write_tasks(tmp_path / "tasks.json", [{"task_id": "a", "data": {"mode": "success"}}])
    proc = run_script("outcomes_worker.py", ["--tasks", "tasks.json", "--no-event-log-to-file"])
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "events.log").exists()


@pytest.mark.parametrize(
    ("content", "name", "needle"),
    [
        (None, "missing.json", "not found"),
        ("[{]", "broken.json", "broken.json"),
        ('[{"task_id": "a", "data": {}}, {"task_id": "a", "data": {}}]', "dup.json", "duplicate"),
        ("- task_id: a\n  data: {}\n", "tasks.txt", "extension"),
    ],
)
def test_bad_task_file_fails_before_any_task_runs(
    tmp_path: Path, content: str | None, name: str, needle: str
) -> None:
    if content is not None:
        (tmp_path / name).write_text(content)
    proc = run_script("outcomes_worker.py", ["--tasks", name])
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "error" in lines[0] and needle in lines[0] and "Traceback" not in proc.stderr
    assert read_events() == []


def test_bad_boolean_in_the_environment_is_one_clear_error(tmp_path: Path) -> None:
    write_tasks(tmp_path / "tasks.json", [{"task_id": "a", "data": {"mode": "success"}}])
    proc = run_script(
        "outcomes_worker.py", ["--tasks", "tasks.json"], env={"RMS_CLOUD_TASKS_IS_SPOT": "maybe"}
    )
    assert proc.returncode == 2
    assert "RMS_CLOUD_TASKS_IS_SPOT" in proc.stderr and "maybe" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert read_events() == []

"""A file-mode run ends with one summary on stderr; a long run on a terminal shows a bar."""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.worker.helpers import SCRIPTS, read_events, run_script, write_tasks

from cloud_tasks.entrypoints.worker.summary import MAX_FAILURES_SHOWN, error_line

_EVENT_OUTCOMES = {"task_exception": "raise", "task_exited": "exit"}


def _mixed_tasks(tmp_path: Path) -> Path:
    modes = ["success", "raise", "success", "exit", "retry", "raise", "raise", "none", "raise"]
    return write_tasks(
        tmp_path / "tasks.json",
        [{"task_id": f"t{i}", "data": {"mode": mode}} for i, mode in enumerate(modes)],
    )


def _summary(stderr: str) -> list[str]:
    lines = stderr.splitlines()
    (start,) = [i for i, line in enumerate(lines) if re.match(r"\d+ tasks? in ", line)]
    return lines[start:]


def test_the_summary_counts_every_outcome_and_names_the_first_failures(tmp_path: Path) -> None:
    tasks = _mixed_tasks(tmp_path)
    proc = run_script(
        "outcomes_worker.py", ["--tasks", str(tasks), "--num-simultaneous-tasks", "1"]
    )
    assert proc.returncode == 0, proc.stderr  # failed tasks do not change the exit status
    events = [e for e in read_events() if "task_id" in e]
    failed_ids = [
        e["task_id"]
        for e in events
        if e["event_type"] != "task_completed" or not e.get("success", False)
    ]
    head, *rest = _summary(proc.stderr)
    assert head.startswith(f"{len(events)} tasks in ")
    counts = collections.Counter(e.get("outcome") for e in events)
    for outcome, words in (
        ("success", "succeeded"),
        ("exception", "raised an exception"),
        ("exit", "exited"),
        ("retry_requested", "asked for a retry"),
    ):
        assert f"{counts[outcome]} {words}" in head
    shown = [line for line in rest if line.startswith("  failed ")]
    assert len(shown) == min(MAX_FAILURES_SHOWN, len(failed_ids))
    assert [line.split()[1].rstrip(":") for line in shown] == failed_ids[:MAX_FAILURES_SHOWN]
    raised = next(line for line in shown if line.startswith("  failed t1:"))
    assert raised.endswith("ValueError: bad input in t1")
    assert f"and {len(failed_ids) - MAX_FAILURES_SHOWN} more" in rest[-2]
    where = Path(rest[-1].removeprefix("events: "))
    assert where.is_absolute() and where == (Path.cwd() / "events.log").resolve()
    assert "\x1b" not in proc.stderr  # no bar, no colours: stderr is not a terminal


def test_without_an_event_file_the_summary_says_so(tmp_path: Path) -> None:
    tasks = write_tasks(tmp_path / "tasks.json", [{"task_id": "a", "data": {"mode": "none"}}])
    proc = run_script("outcomes_worker.py", ["--tasks", str(tasks), "--no-event-log-to-file"])
    assert proc.returncode == 0, proc.stderr
    summary = _summary(proc.stderr)
    assert summary[0].endswith("1 succeeded")
    assert "not written" in summary[-1] and not Path("events.log").exists()


def test_an_unreadable_task_file_is_one_line_and_no_summary(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("[{")
    proc = run_script("outcomes_worker.py", ["--tasks", str(tmp_path / "bad.json")])
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and " tasks in " not in proc.stderr


def test_a_long_run_on_a_terminal_shows_a_progress_bar_then_the_summary(tmp_path: Path) -> None:
    tasks = write_tasks(
        tmp_path / "tasks.json",
        [{"task_id": f"s{i}", "data": {"mode": "sleep", "seconds": 0.5}} for i in range(6)],
    )
    primary, secondary = os.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RMS_CLOUD_TASKS_")}
    env.update(TERM="xterm", COLUMNS="100")
    script = str(SCRIPTS / "outcomes_worker.py")
    proc = subprocess.Popen(
        [sys.executable, script, "--tasks", str(tasks), "--num-simultaneous-tasks", "1"],
        stdout=subprocess.DEVNULL,
        stderr=secondary,
        env=env,
    )
    os.close(secondary)
    output = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal closed: the worker exited
            break
        if not chunk:
            break
        output += chunk
    os.close(primary)
    assert proc.wait(timeout=30) == 0
    text = output.decode("utf-8", "replace")
    assert "\u2501" in text  # rich's bar
    assert "6 succeeded" in text.rsplit("\u2501", 1)[-1]  # the summary comes after the bar


def test_error_line_takes_the_exception_line_of_a_traceback() -> None:
    traceback_text = (
        "Traceback (most recent call last):\n"
        '  File "w.py", line 3, in process_task\n'
        "    raise KeyError('x')\n"
        "KeyError: 'x'\n"
    )
    assert error_line(traceback_text) == "KeyError: 'x'"
    assert error_line(traceback_text + "more detail\n") == "KeyError: 'x' ..."
    assert error_line("process exited with code 3") == "process exited with code 3"
    assert error_line("") == ""

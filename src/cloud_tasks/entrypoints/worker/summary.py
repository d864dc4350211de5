"""What a file-mode run tells at the end: counts per outcome, the first failures, the event log.

A run that lasts more than ``PROGRESS_AFTER_S`` seconds with stderr on a terminal also shows a
progress bar (``rich``, imported only then, so ``import cloud_tasks.worker`` stays light); it
is cleared before the summary is printed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import asyncio

#: Seconds a run must last before a terminal gets a progress bar.
PROGRESS_AFTER_S = 2.0
#: Failed tasks listed by id, with the last line of their error.
MAX_FAILURES_SHOWN = 5

# Outcome kinds (domain.retry.OutcomeKind values) as the summary words them, in display order.
_WORDS: dict[str, str] = {
    "success": "succeeded",
    "retry_requested": "asked for a retry",
    "exception": "raised an exception",
    "exit": "exited",
    "timeout": "timed out",
    "memory": "ran out of memory",
    "preempted": "were stopped",
}


def error_line(error: str) -> str:
    """The line that says what went wrong: for a traceback, the exception's own first line
    (``ValueError: bad input``), else the last line."""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    frames = [i for i, line in enumerate(lines) if line.startswith(" ")]
    if lines[0].startswith("Traceback") and frames and frames[-1] + 1 < len(lines):
        message = lines[frames[-1] + 1 :]
        return message[0] + (" ..." if len(message) > 1 else "")
    return lines[-1]


class RunSummary:
    """Counts outcomes as they come; ``finish`` writes the summary to ``stream``."""

    def __init__(self, stream: TextIO, events_path: str | None) -> None:
        self._stream = stream
        self._events_path = events_path
        self._started = time.monotonic()
        self._counts: dict[str, int] = {}
        self._failures: list[tuple[str, str]] = []
        self._failed = 0
        self._progress: Any = None
        self._bar: Any = None
        self._timer: asyncio.TimerHandle | None = None

    def show_progress_later(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the progress bar after ``PROGRESS_AFTER_S`` if stderr is a terminal."""
        if self._stream.isatty():
            self._timer = loop.call_later(PROGRESS_AFTER_S, self._start_progress)

    def record(self, task_id: str, outcome: str, error: str | None) -> None:
        """One finished task: its outcome kind and, for a failure, its one-line error."""
        self._counts[outcome] = self._counts.get(outcome, 0) + 1
        if outcome != "success":
            self._failed += 1
            if len(self._failures) < MAX_FAILURES_SHOWN:
                self._failures.append((task_id, error_line(error or "") or outcome))
        if self._bar is not None:
            self._progress.update(
                self._bar, completed=self.total, detail=self._detail(), refresh=False
            )

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def lines(self) -> list[str]:
        """The summary: counts, the first failures, where the events are."""
        elapsed = time.monotonic() - self._started
        parts = [f"{self._counts[k]} {w}" for k, w in _WORDS.items() if self._counts.get(k)]
        total = self.total
        head = f"{total} task{'' if total == 1 else 's'} in {elapsed:.1f} s"
        lines = [f"{head}: {', '.join(parts)}" if parts else f"{head}: none ran"]
        for task_id, error in self._failures:
            lines.append(f"  failed {task_id}: {error}")
        if self._failed > len(self._failures):
            lines.append(f"  ... and {self._failed - len(self._failures)} more failed tasks")
        if self._events_path is not None:
            lines.append(f"events: {Path(self._events_path).resolve()}")
        else:
            lines.append("events: not written to a file (--no-event-log-to-file)")
        return lines

    def finish(self) -> None:
        """Clear the progress bar and write the summary."""
        if self._timer is not None:
            self._timer.cancel()
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        self._stream.write("\n".join(self.lines()) + "\n")
        self._stream.flush()

    def _detail(self) -> str:
        return f"{self._failed} failed" if self._failed else ""

    def _start_progress(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("tasks"),
            BarColumn(),
            TextColumn("{task.completed} done"),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=Console(file=self._stream),
            transient=True,
        )
        self._bar = self._progress.add_task("tasks", total=None, detail=self._detail())
        self._progress.update(self._bar, completed=self.total)
        self._progress.start()


__all__ = ["MAX_FAILURES_SHOWN", "PROGRESS_AFTER_S", "RunSummary", "error_line"]

"""Per-task results out of a task database (``cloud_tasks results``).

One record per task with the keys of ``RESULT_KEYS``, as JSON lines or CSV, streamed: rows are
read in batches (``TaskDatabaseView.result_rows``) and written as they come, so memory stays
flat whatever the number of tasks. ``result`` is the JSON value the task returned (stored as
JSON text and copied as is into JSON lines; in CSV it is that JSON text).
"""

from __future__ import annotations

import contextlib
import csv
import json
import json.encoder
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Final

from cloud_tasks.adapters.local.taskdb_views import TaskDatabaseView
from cloud_tasks.domain.taskstate import STATES
from cloud_tasks.exceptions import ConfigError

RESULT_KEYS: Final = (
    "task_id",
    "state",
    "attempts",
    "result",
    "error",
    "elapsed_s",
    "instance_id",
)
FORMATS: Final = ("jsonl", "csv")
_FETCH = 10_000
_encode_str: Callable[[str], str] = json.encoder.encode_basestring_ascii


def _rows(db: TaskDatabaseView, states: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    unknown = sorted(state for state in set(states) if state not in STATES)
    if unknown:
        raise ConfigError(f"--state {unknown[0]}: not a task state; use one of {', '.join(STATES)}")
    yield from db.result_rows(states)


def _json_or_null(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return _encode_str(value)
    return json.dumps(value)


def _write_jsonl(rows: Iterator[tuple[Any, ...]], stream: IO[str]) -> int:
    encode = _encode_str
    other = _json_or_null
    count = 0
    lines: list[str] = []
    for task_id, state, attempts, result, error, elapsed_s, instance_id in rows:
        # ``result`` is already JSON text: copied, not parsed and dumped again.
        lines.append(
            f'{{"task_id": {encode(task_id)}, "state": {encode(state)}, '
            f'"attempts": {attempts}, "result": {"null" if result is None else result}, '
            f'"error": {other(error)}, "elapsed_s": {other(elapsed_s)}, '
            f'"instance_id": {other(instance_id)}}}\n'
        )
        if len(lines) >= _FETCH:
            stream.write("".join(lines))
            count += len(lines)
            lines.clear()
    stream.write("".join(lines))
    return count + len(lines)


def _write_csv(rows: Iterator[tuple[Any, ...]], stream: IO[str]) -> int:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(RESULT_KEYS)
    count = 0
    for row in rows:
        writer.writerow(["" if value is None else value for value in row])
        count += 1
    return count


def export_results(
    db: TaskDatabaseView,
    stream: IO[str],
    *,
    output_format: str = "jsonl",
    states: Sequence[str] = (),
) -> int:
    """Write one record per task (in load order, only ``states`` when given) to ``stream``.

    Returns the number of records.
    """
    rows = _rows(db, states)
    if output_format == "csv":
        return _write_csv(rows, stream)
    if output_format != "jsonl":
        raise ConfigError(f"--format {output_format}: use one of {', '.join(FORMATS)}")
    return _write_jsonl(rows, stream)


def export_results_to_file(
    db: TaskDatabaseView,
    output: str | Path,
    *,
    output_format: str = "jsonl",
    states: Sequence[str] = (),
) -> int:
    """``export_results`` into a new file: written whole or not at all, never over a file.

    Raises:
        ConfigError: ``output`` exists already, or cannot be written.
    """
    target = Path(output)
    if target.exists():
        raise ConfigError(f"{target}: already exists; remove it or choose another --output")
    try:
        handle, temp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
        )
    except OSError as exc:
        raise ConfigError(f"{target}: cannot write the results: {exc.strerror or exc}") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            count = export_results(db, stream, output_format=output_format, states=states)
        try:
            # A hard link fails when the target appeared meanwhile: never clobbers it.
            os.link(temp_name, target)
        except FileExistsError:
            raise ConfigError(
                f"{target}: already exists; remove it or choose another --output"
            ) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
    return count


__all__ = ["FORMATS", "RESULT_KEYS", "export_results", "export_results_to_file"]

"""Queue commands: load_queue, show_queue, purge_queue, delete_queue (SPEC §11)."""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

import click

from cloud_tasks.domain.options import JobConfig
from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.domain.text import escaped
from cloud_tasks.domain.text import shown as shown_value
from cloud_tasks.entrypoints.cli.options import (
    Number,
    common_options,
    format_option,
    resolve_config,
    verbosity,
)
from cloud_tasks.exceptions import ProviderError, QueueNotFoundError, TaskFileError
from cloud_tasks.ports import EventQueue, TaskQueue

if TYPE_CHECKING:
    from cloud_tasks.adapters.local.sqlite_queue import LoadJournal
    from cloud_tasks.service_layer.taskload import TaskFileSummary, TaskSpool

#: Tasks handed to the queue per call (and recorded as loaded at once); the adapters split
#: them into service-sized batches. SQS takes ten per request, so smaller chunks keep the
#: record close behind; Pub/Sub batches up to 1000 messages per request.
LOAD_CHUNK = {"aws": 100}
DEFAULT_LOAD_CHUNK = 1000
#: Chunks in flight at once for cloud queues (each adapter sends its batches concurrently too).
LOAD_CONCURRENCY = 4
SAMPLE_LEASE_S = 30.0


def _queues(config: JobConfig) -> tuple[TaskQueue, EventQueue]:
    from cloud_tasks import bootstrap

    return bootstrap.make_task_queue(config), bootstrap.make_event_queue(config)


def _journal(config: JobConfig, queue: TaskQueue) -> LoadJournal | None:
    """The local record of loaded task ids for a cloud queue (None for local/memory)."""
    from cloud_tasks import bootstrap

    return bootstrap.make_load_journal(config, queue)


def _chunks(tasks: Iterator[Task], size: int) -> Iterator[list[Task]]:
    while chunk := list(itertools.islice(tasks, size)):
        yield chunk


def _too_large(path: str, oversized: Sequence[str], limit: int, provider: str) -> TaskFileError:
    shown = ", ".join(f"'{shown_value(task_id)}'" for task_id in oversized[:5])
    more = f" and {len(oversized) - 5} more" if len(oversized) > 5 else ""
    return TaskFileError(
        f"{path}: {len(oversized)} task(s) exceed the {provider} queue's {limit}-byte message "
        f"limit: {shown}{more}; nothing was sent. Make their data smaller (e.g. store it in a "
        "bucket and pass its address)"
    )


def _read_once(
    tasks_path: str,
    spool: TaskSpool,
    *,
    max_message_bytes: int,
    start_task: int,
    limit: int | None,
    skip_completed_db: str | None,
) -> TaskFileSummary:
    """One read of the whole file: every task is checked, every one of the slice sized, and
    the messages of those to load (``--skip-completed``: not completed in the earlier job's
    database) kept in ``spool`` for sending."""
    from cloud_tasks.service_layer.exports import open_earlier_database
    from cloud_tasks.service_layer.taskload import scan_task_file

    earlier_db = (
        contextlib.nullcontext(None)
        if skip_completed_db is None
        else open_earlier_database(skip_completed_db)
    )
    with earlier_db as earlier:
        return scan_task_file(
            tasks_path,
            max_message_bytes=max_message_bytes,
            earlier=earlier,
            spool=spool,
            start=start_task,
            limit=limit,
        )


def _progress(enabled: bool, total: int) -> tuple[Callable[[int], None], Callable[[], None]]:
    """(advance, close) of a rich progress bar on stderr, or no-ops."""
    if not enabled:
        return (lambda _n: None), (lambda: None)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("Loading"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    bar = progress.add_task("load", total=total)
    progress.start()
    return (lambda n: progress.advance(bar, n)), progress.stop


@click.command("load_queue")
@common_options
@click.option(
    "--tasks",
    "--task-file",
    "tasks_path",
    type=str,
    required=True,
    help="JSON or YAML task file: a list of {task_id, data}; a path, s3://, gs:// or https:// URL.",
)
@click.option(
    "--start-task",
    type=Number("int", "start_task"),
    default=0,
    show_default=True,
    help="Skip the first N tasks of the file (the first task is 0).",
)
@click.option("--limit", type=Number("int", "limit"), default=None, help="Load at most N tasks.")
@click.option(
    "--reload",
    is_flag=True,
    help="Send every selected task again, even those already recorded as loaded.",
)
@click.option(
    "--skip-completed",
    "skip_completed_db",
    type=click.Path(dir_okay=False),
    default=None,
    help="Leave out the tasks completed in this earlier job's task database.",
)
@format_option
def load_queue(
    tasks_path: str,
    start_task: int,
    limit: int | None,
    reload: bool,
    skip_completed_db: str | None,
    output_format: str,
    **params: Any,
) -> None:
    """Create the task queue and its event queue when missing, then load tasks into it.

    The whole task file is checked first (format, ids, message size): if anything is wrong
    nothing is sent. Loading is idempotent: running the same command again, for example after
    an interruption, sends only the tasks that were not loaded yet (see docs/queues.md).
    """
    from cloud_tasks.service_layer.taskload import TaskSpool

    config = resolve_config(**params)
    queue, events = _queues(config)

    # The file (perhaps a download) is read once; the later passes read the spool.
    spool = click.get_current_context().with_resource(TaskSpool())
    read = _read_once(
        tasks_path,
        spool,
        max_message_bytes=queue.max_message_bytes,
        start_task=start_task,
        limit=limit,
        skip_completed_db=skip_completed_db,
    )
    total_in_file = read.total
    if read.oversized:
        raise _too_large(tasks_path, read.oversized, queue.max_message_bytes, config.provider)
    end = None if limit is None else start_task + limit
    stop = total_in_file if end is None else min(total_in_file, end)
    to_load = max(0, stop - start_task)
    # Nothing half-done: a file or a slice without tasks creates no queue.
    if total_in_file == 0:
        raise TaskFileError(f"{tasks_path}: the task file holds no tasks; nothing to load")
    if to_load == 0:
        raise TaskFileError(
            f"{tasks_path}: --start-task {start_task}"
            + (f" --limit {limit}" if limit is not None else "")
            + f" selects none of its {total_in_file} tasks (the first is 0); nothing to load"
        )

    if skip_completed_db is not None:
        to_load = read.selected
        if to_load == 0:
            click.echo(f"every selected task is completed in {skip_completed_db}; nothing to load")
            return

    existed = queue.exists()
    queue.create()
    events.create()
    journal = _journal(config, queue)
    if journal is not None and (reload or not existed):
        journal.clear()  # a new queue holds none of the tasks recorded for an older one
    # The queue's own record when it keeps one (SQLite), else the journal (SQS, Pub/Sub).
    send_once = queue.remembers_loads and not reload

    quiet = output_format == "json" or verbosity(params) < 0
    advance, close = _progress(not quiet, to_load)
    sent = skipped = 0

    def send(chunk: list[Task]) -> int:
        """Send the chunk's unrecorded tasks; returns how many were sent."""
        if send_once:
            return queue.send_once([Envelope(task) for task in chunk])
        fresh = chunk
        if journal is not None:
            known = journal.known([task.task_id for task in chunk])
            fresh = [task for task in chunk if task.task_id not in known]
        if fresh:
            queue.send([Envelope(task) for task in fresh])
            if journal is not None:
                journal.record(task.task_id for task in fresh)
        return len(fresh)

    workers = LOAD_CONCURRENCY if config.provider in ("aws", "gcp") else 1
    pool = ThreadPoolExecutor(max_workers=workers)
    pending: dict[Future[int], int] = {}

    def settle(done: set[Future[int]]) -> None:
        nonlocal sent, skipped
        for future in done:
            size = pending.pop(future)
            count = future.result()
            sent += count
            skipped += size - count
            advance(size)

    try:
        chunk_size = LOAD_CHUNK.get(config.provider, DEFAULT_LOAD_CHUNK)
        for chunk in _chunks(iter(spool), chunk_size):
            if len(pending) >= 2 * workers:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                settle(finished)
            pending[pool.submit(send, chunk)] = len(chunk)
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            settle(finished)
    finally:
        # On an error or Ctrl-C: let chunks already sending finish (and be recorded), drop the
        # rest, so a re-run picks up exactly where this one stopped.
        pool.shutdown(wait=True, cancel_futures=True)
        close()

    summary = {
        "queue": queue.name,
        "provider": config.provider,
        "loaded": sent,
        "skipped": skipped,
        "tasks_in_file": total_in_file,
    }
    if output_format == "json":
        click.echo(json.dumps(summary))
        return
    click.echo(f"Loaded {sent:,} task(s) into queue {queue.name!r} ({config.provider}).")
    if skipped:
        where = f" (recorded in {journal.path})" if journal is not None else ""
        click.echo(
            f"Skipped {skipped:,} task(s) already loaded into this queue{where}; "
            "pass --reload to send them again."
        )


@click.command("show_queue")
@common_options
@click.option(
    "--detail",
    is_flag=True,
    help="Also show one message. It is received and released at once, so its delivery "
    "count goes up by one.",
)
@format_option
def show_queue(detail: bool, output_format: str, **params: Any) -> None:
    """Show the approximate number of messages in the task queue."""
    config = resolve_config(**params)
    queue, events = _queues(config)
    depth = queue.depth()
    sample: dict[str, Any] | None = None
    if detail:
        received = queue.receive(1, SAMPLE_LEASE_S, wait_s=2.0)
        if received:
            message = received[0]
            queue.release(message.receipt)
            sample = {
                "task_id": message.task_id,
                "data": dict(message.data),
                "attempt": message.attempt,
                "delivery_count": message.delivery_count,
            }
    event_depth = _event_depth(events)
    if output_format == "json":
        payload: dict[str, Any] = {
            "queue": queue.name,
            "depth": depth,
            "provider": config.provider,
            "events_queue": events.name,
            "events_depth": event_depth,
        }
        if detail:
            payload["sample"] = sample
        click.echo(json.dumps(payload))
        return
    click.echo(f"Queue {queue.name!r} ({config.provider}): about {depth:,} message(s)")
    if event_depth is not None:
        click.echo(f"Event queue {events.name!r}: about {event_depth:,} unread event(s)")
    if detail:
        if sample is None:
            click.echo("No message was available to show (the queue is empty or all leased).")
        else:
            click.echo("Sample message:")
            # JSON escapes only the C0 controls: bidi overrides (U+202E), DEL and line
            # separators would reach the terminal raw.
            shown_json = json.dumps(sample, indent=2, ensure_ascii=False)
            click.echo("\n".join(escaped(line) for line in shown_json.split("\n")))


def _event_depth(events: EventQueue) -> int | None:
    try:
        return events.depth()
    except QueueNotFoundError:
        return None


def _purge_events(events: EventQueue) -> None:
    if events.exists():
        events.purge()


@click.command("purge_queue")
@common_options
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
def purge_queue(force: bool, **params: Any) -> None:
    """Remove every message from the task queue and its event queue (they stay in place)."""
    config = resolve_config(**params)
    queue, events = _queues(config)
    depth = queue.depth()  # raises QueueNotFoundError for a missing queue
    if not force:
        click.confirm(
            f"Remove about {depth:,} message(s) from queue {queue.name!r} and every event "
            f"from {events.name!r}?",
            abort=True,
        )
    queue.purge()
    _purge_events(events)
    journal = _journal(config, queue)
    if journal is not None:
        journal.clear()
    click.echo(f"Purged queue {queue.name!r} and {events.name!r}.")


@click.command("delete_queue")
@common_options
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
def delete_queue(force: bool, **params: Any) -> None:
    """Delete the task queue and its event queue, with everything in them."""
    config = resolve_config(**params)
    queue, events = _queues(config)
    present = [q for q in (queue, events) if q.exists()]
    if not present:
        click.echo(f"Queue {queue.name!r} does not exist; nothing to delete.")
        return
    if not force:
        try:
            what = f" (about {queue.depth():,} message(s))" if queue in present else ""
        except ProviderError:
            what = ""
        click.confirm(
            f"Delete {' and '.join(repr(q.name) for q in present)}{what}?",
            abort=True,
        )
    for item in present:
        item.delete()
    journal = _journal(config, queue)
    if journal is not None:
        journal.clear()
    click.echo(f"Deleted {' and '.join(repr(q.name) for q in present)}.")


COMMANDS: list[click.Command] = [load_queue, show_queue, purge_queue, delete_queue]

"""Job commands: run, manage_pool, status, stop, monitor_event_queue (SPEC §11)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, NoReturn

import attrs
import click

from cloud_tasks.adapters.local.taskdb import TaskDatabase, identify
from cloud_tasks.bootstrap import (
    Adapters,
    build_job_adapters,
    build_plan_adapters,
    open_task_database,
)
from cloud_tasks.domain.cost import estimate_job
from cloud_tasks.domain.options import JobConfig
from cloud_tasks.domain.text import one_line
from cloud_tasks.entrypoints.cli.options import (
    common_options,
    format_option,
    resolve_config,
    run_options,
    verbosity,
)
from cloud_tasks.exceptions import CloudTasksError, ConfigError, QueueNotFoundError
from cloud_tasks.redact import redact, redact_startup_script
from cloud_tasks.service_layer.exports import DUMP_CHOICES, EventExport
from cloud_tasks.service_layer.insight import PoolRecorder
from cloud_tasks.service_layer.joblock import JobLock, lock_holder
from cloud_tasks.service_layer.notify import JobNotifier
from cloud_tasks.service_layer.pool import JobOutcome, PoolManager, PoolSnapshot
from cloud_tasks.service_layer.preflight import require_checks, run_checks
from cloud_tasks.service_layer.report import build_report, format_report
from cloud_tasks.service_layer.session import (
    RUNNABLE_PROVIDERS,
    JobPlan,
    db_path_of,
    describe_plan,
    job_id_of,
    load_tasks,
    make_plan,
    pool_settings,
    worker_credentials_notice,
)
from cloud_tasks.service_layer.taskload import TaskSpool, read_task_file


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


def _no_check_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--no-check",
        "no_check",
        is_flag=True,
        help="Skip the preflight checks of 'cloud_tasks check' (credentials, permissions, "
        "image, quotas...).",
    )(function)


def _db_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--db-file",
        "db_file",
        type=str,
        default=None,
        help="Task database (default: db_file from the configuration, else <job_id>.db).",
    )(function)


def _require_runnable(config: JobConfig) -> None:
    if config.provider not in RUNNABLE_PROVIDERS:
        raise ConfigError(
            f"provider {config.provider!r} only simulates instances: use --dry-run to see the "
            "plan or 'cloud_tasks simulate' for a what-if run; use provider local, aws or gcp "
            "to run the job"
        )


class _LiveDisplay:
    """A progress bar with done/failed/running and money spent (a plain line when not a tty)."""

    def __init__(self, total: int, quiet: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
            disable=quiet or not self.console.is_terminal,
        )
        self.task = self.progress.add_task("tasks", total=total or None, detail="")
        self._last_line = time.monotonic()

    def __enter__(self) -> _LiveDisplay:
        self.progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.progress.stop()

    def log(self, message: str) -> None:
        if not self.quiet:
            # soft_wrap: a line is never broken at the console's width (80 columns when stderr
            # is not a terminal); one_line: an untrusted part cannot start a new line.
            self.progress.console.print(
                one_line(redact(message)), markup=False, highlight=False, soft_wrap=True
            )

    def update(self, snapshot: PoolSnapshot) -> None:
        c = snapshot.counts
        detail = (
            f"done {c.completed}  failed {c.failed}  running {c.running}  "
            f"instances {snapshot.instances}  ${snapshot.spend_usd:.4f}"
        )
        self.progress.update(
            self.task, completed=c.completed + c.failed, total=c.total or None, detail=detail
        )
        if not self.console.is_terminal and not self.quiet:
            now = time.monotonic()
            if now - self._last_line >= 10.0:
                self._last_line = now
                self.console.print(
                    f"{c.completed + c.failed}/{c.total} tasks: {detail}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )


def _final(outcome: JobOutcome, db: TaskDatabase, *, strict: bool, quiet: bool) -> None:
    report = build_report(db, time.time())
    click.echo(format_report(report))
    counts = outcome.counts
    if outcome.status != "completed":
        raise CloudTasksError(outcome.message)
    if counts.failed:
        click.echo(
            f"WARNING: {counts.failed} of {counts.total} tasks FAILED (see the errors above; "
            f"details in {db.path})."
        )
        if strict:
            sys.exit(1)
    elif not quiet:
        click.echo(f"All {counts.total} tasks completed.")


def _supervise(
    config: JobConfig,
    adapters: Adapters,
    db: TaskDatabase,
    *,
    tasks_known: bool,
    quiet: bool,
    strict: bool,
    resume_hint: str,
    output_file: str | None = None,
    dashboard_port: int | None = None,
) -> None:
    """Run the pool manager with a live display; Ctrl-C asks what to do.

    ``dashboard_port`` (``run --dashboard``): also serve the dashboard on loopback.
    """
    counts = db.counts()
    plan = make_plan(config, adapters, max(counts.remaining, 1))
    settings = pool_settings(config, plan, tasks_known=tasks_known)
    display = _LiveDisplay(counts.total, quiet)
    export = EventExport(db, output_file) if output_file else None
    clock = adapters.clock
    with (
        display,
        export or contextlib.nullcontext(),
        PoolRecorder(db.path, clock) as recorder,
        _dashboard(db.path, dashboard_port) as dashboard_url,
        _notifier(config, recorder, recorder.logged(display.log)) as notifier,
    ):
        if dashboard_url:
            click.echo(f"dashboard: {dashboard_url}", err=True)
        display.log(
            f"instance type {plan.best.name} ({plan.best.tasks_per_instance} tasks each, "
            f"${plan.best.price_per_hour_usd:.4f}/h), up to {plan.initial_count} instances"
        )
        notice = worker_credentials_notice(config)
        if notice:
            display.log(notice)
        while True:
            manager = PoolManager(
                compute=recorder.watch(adapters.compute),
                task_queue=adapters.task_queue,
                event_queue=adapters.event_queue,
                db=db,
                clock=clock,
                options=plan.options,
                settings=settings,
                on_update=_with_notifier(_with_export(display.update, export), notifier),
                log=recorder.logged(display.log),
                on_demand_options=plan.on_demand_options,
                recorder=recorder,
                stop_requested=_stop_request(
                    db, resume_hint, _restart_hint(config, db.meta().get("tasks_file"))
                ),
            )
            try:
                outcome = asyncio.run(_until_signal(manager.run()))
                break
            except _Terminated as terminated:
                _notify_end(notifier, db, "stopped", f"the manager got {terminated}")
                _stop_after_signal(manager, display, terminated, resume_hint)
            except CloudTasksError as exc:
                _notify_end(notifier, db, "failed", str(exc))
                raise
            except KeyboardInterrupt:
                choice = _ask_after_interrupt(display)
                if choice == "c":
                    display.log("continuing")
                    continue
                _notify_end(notifier, db, "stopped", "interrupted (Ctrl-C)")
                if choice == "t":
                    display.log("stopping every instance and deleting the queues")
                    asyncio.run(manager.stop_all("interrupted"))
                    _delete_queues(adapters)
                    display.log(f"stopped; the task database is kept in {db.path}")
                    sys.exit(130)
                display.log(
                    "instances left running. Resume with: "
                    f"{resume_hint}; stop them with: cloud_tasks stop"
                    + (f" --config {config.source}" if config.source else "")
                )
                sys.exit(130)
        if notifier is not None:
            notifier.finish(outcome.status, outcome.message, outcome.counts, outcome.spend_usd)
    _final(outcome, db, strict=strict, quiet=quiet)


@contextlib.contextmanager
def _notifier(
    config: JobConfig, recorder: PoolRecorder, log: Callable[[str], None]
) -> Iterator[JobNotifier | None]:
    """The job's notifier when ``notify`` is set; waits for its last deliveries on exit."""
    if config.run.notify is None:
        yield None
        return
    with JobNotifier(
        config.run.notify,
        recorder,
        job_id=job_id_of(config),
        max_total_cost_usd=config.run.limits.max_total_cost,
        log=log,
    ) as notifier:
        yield notifier


def _with_notifier(
    update: Callable[[PoolSnapshot], None], notifier: JobNotifier | None
) -> Callable[[PoolSnapshot], None]:
    if notifier is None:
        return update

    def update_and_notify(snapshot: PoolSnapshot) -> None:
        update(snapshot)
        notifier.update(snapshot)

    return update_and_notify


def _notify_end(notifier: JobNotifier | None, db: TaskDatabase, status: str, why: str) -> None:
    if notifier is not None:
        notifier.finish(status, why, db.counts(), db.spend_usd(time.time()))


@contextlib.contextmanager
def _dashboard(db_path: Path, port: int | None) -> Iterator[str | None]:
    """Serve the dashboard on loopback while the block runs; yields its address."""
    if port is None:
        yield None
        return
    from cloud_tasks.entrypoints.dashboard import DashboardServer

    try:
        server = DashboardServer(db_path, port=port)
    except CloudTasksError:
        if port == 0:
            raise
        server = DashboardServer(db_path, port=0)  # the port is taken: any free one
    server.start_background()
    try:
        yield server.url
    finally:
        server.stop()


class _Terminated(Exception):
    """The manager got SIGTERM or SIGHUP."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


async def _until_signal(run: Coroutine[Any, Any, JobOutcome]) -> JobOutcome:
    """Await the pool manager's ``run``; SIGTERM or SIGHUP cancel it (at an ``await``, so
    never inside a write to the task database) and raise ``_Terminated``."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if not received and task is not None:
            received.append(signum)
            task.cancel()

    signals = (signal.SIGTERM, signal.SIGHUP)
    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await run
    except asyncio.CancelledError:
        if received:
            raise _Terminated(received[0]) from None
        raise
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


def _stop_after_signal(
    manager: PoolManager, display: _LiveDisplay, terminated: _Terminated, resume_hint: str
) -> NoReturn:
    """SIGTERM/SIGHUP: stop every instance (none is left running unsupervised), keep the
    queues and the task database for ``run --continue``, say so, exit 130."""
    display.log(
        f"received {terminated}: stopping every instance; the queues and the task database are kept"
    )
    asyncio.run(manager.stop_all(f"manager got {terminated}"))
    display.log(f"stopped. Resume with: {resume_hint}")
    sys.exit(130)


def _stop_request(
    db: TaskDatabase, resume_hint: str, restart_hint: str
) -> Callable[[], str | None]:
    """What the pool manager asks at each check: did 'cloud_tasks stop' run for this job, or
    was its task database removed or replaced under it?"""

    def stop_requested() -> str | None:
        gone = db.gone()
        if gone is not None:
            # Interference: what the job records would go to a file no one can see. Stop
            # every instance rather than leave them running unseen.
            return (
                f"the task database {db.path} {gone} while the job ran; every instance was "
                "stopped and the queues are kept. Restore the file and resume with: "
                f"{resume_hint}, or start over with --force"
            )
        if not db.meta().get("stop_requested"):
            return None
        remaining = db.counts().remaining
        if db.meta().get("queues_deleted"):
            # --continue needs the task queue: without it only a new start works.
            return (
                f"the job was stopped with 'cloud_tasks stop --delete-queues' ({remaining} "
                f"tasks unfinished, recorded in {db.path}); its queues are gone, so start it "
                f"over with: {restart_hint}"
            )
        return (
            f"the job was stopped with 'cloud_tasks stop' ({remaining} tasks unfinished, kept "
            f"in {db.path}); resume it with: {resume_hint}"
        )

    return stop_requested


def _with_export(
    update: Callable[[PoolSnapshot], None], export: EventExport | None
) -> Callable[[PoolSnapshot], None]:
    """The manager's update callback, also appending new events to ``--output-file``."""
    if export is None:
        return update

    def update_and_export(snapshot: PoolSnapshot) -> None:
        update(snapshot)
        export.flush()

    return update_and_export


class _FirstRunTasks:
    """For ``run --continue``: the tasks of the interrupted first run (its task file, less
    those completed in its ``--skip-completed`` database), read once when first needed into a
    spool that the recording and the loading both read."""

    def __init__(self, db_path: Path) -> None:
        self._directory = db_path.parent
        self._spool: TaskSpool | None = None

    def tasks(self, meta: dict[str, Any]) -> TaskSpool:
        """The tasks; ``meta`` is the task database's metadata, which names the task file."""
        if self._spool is None:
            spool = TaskSpool(self._directory)
            try:
                with contextlib.ExitStack() as stack:
                    earlier = None
                    if meta.get("skip_completed"):
                        earlier = stack.enter_context(
                            open_task_database(meta["skip_completed"], existing=True)
                        )
                    read_task_file(meta["tasks_file"], earlier=earlier, spool=spool)
            except BaseException:
                spool.close()  # never kept half read
                raise
            self._spool = spool
        return self._spool

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()

    def __enter__(self) -> _FirstRunTasks:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _ask_after_interrupt(display: _LiveDisplay) -> str:
    if not sys.stdin.isatty():
        return "l"
    display.progress.stop()
    try:
        return str(
            click.prompt(
                "\nInterrupted. [t]erminate every instance and delete the queues, "
                "[l]eave them running (resume later with --continue), or [c]ontinue?",
                type=click.Choice(["t", "l", "c"]),
                default="c",
            )
        )
    except (KeyboardInterrupt, click.exceptions.Abort):
        return "l"
    finally:
        display.progress.start()


def _delete_queues(adapters: Adapters) -> None:
    for queue in (adapters.task_queue, adapters.event_queue):
        with contextlib.suppress(QueueNotFoundError):
            queue.delete()


@click.command("run")
@common_options
@run_options
@click.option(
    "--tasks",
    "--task-file",
    "tasks_file",
    type=str,
    default=None,
    help="JSON or YAML task file (a path or URL) to load (not needed with --continue).",
)
@click.option(
    "--continue",
    "resume",
    is_flag=True,
    help="Resume a job whose manager stopped (from its task database, queue and instances).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan and cost estimate; create nothing.")
@click.option(
    "--task-duration",
    type=click.FloatRange(min=0),
    default=None,
    help="With --dry-run: seconds one task takes, for the makespan and cost estimate.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Start the job over without asking: purge the messages its task queue holds and "
    "replace its task database (db_file). Without it, an existing task database is an error "
    "and a non-empty queue is purged only when you confirm.",
)
@_no_check_option
@click.option("--strict", is_flag=True, help="Exit 1 when any task failed.")
@click.option(
    "--output-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Append every event (not keep-alives) to this file as JSON lines while the job runs; "
    "with --continue into a new file, the events already recorded come first.",
)
@click.option(
    "--skip-completed",
    "skip_completed_db",
    type=click.Path(dir_okay=False),
    default=None,
    help="Load only the tasks that are not completed in this earlier job's task database.",
)
@click.option(
    "--dashboard",
    "dashboard",
    is_flag=True,
    help="Also serve the dashboard (see 'cloud_tasks dashboard') on 127.0.0.1 while the job "
    "runs, and print its address.",
)
@click.option(
    "--dashboard-port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="With --dashboard: the port (a free one when it is taken; 0 = any free port).",
)
@format_option
def run_command(**params: Any) -> None:
    """Load tasks, start and supervise instances until every task is done.

    Validates the configuration and the whole task file first, creates the task and event
    queues, records every task in the task database, loads the queue, picks the cheapest
    instance type meeting the constraints, starts instances with the generated startup
    script, replaces lost ones, and when every task is done stops everything and deletes the
    queues. Ctrl-C asks whether to stop everything, leave the instances running, or continue.
    """
    config = resolve_config(**params)
    quiet = verbosity(params) < 0
    for notice in config.notices:
        if verbosity(params) > 0:
            _echo_err(notice)
    job_id = job_id_of(config)
    db_path = db_path_of(config)
    tasks_file: str | None = params["tasks_file"]
    if params["resume"]:
        _require_runnable(config)
        _resume(
            config,
            db_path,
            quiet=quiet,
            strict=params["strict"],
            output_file=params["output_file"],
            dashboard_port=params["dashboard_port"] if params["dashboard"] else None,
        )
        return
    if tasks_file is None:
        raise click.UsageError("give the task file with --tasks FILE (or resume with --continue)")
    offline_notice: str | None = None
    if params["dry_run"]:
        # Without an account (or its libraries) the plan comes from the bundled catalog.
        adapters, offline_notice = build_plan_adapters(config, db_path)
    else:
        adapters = build_job_adapters(config, db_path)
    # The task file is read once: checked whole (and every message sized) before anything is
    # created, and the tasks to run kept in a spool that the recording and the loading read.
    spool = None if params["dry_run"] else TaskSpool(db_path.parent)
    try:
        _run_job(
            config, params, adapters, tasks_file, spool, offline_notice, job_id=job_id, quiet=quiet
        )
    finally:
        if spool is not None:
            spool.close()


def _run_job(
    config: JobConfig,
    params: dict[str, Any],
    adapters: Adapters,
    tasks_file: str,
    spool: TaskSpool | None,
    offline_notice: str | None,
    *,
    job_id: str,
    quiet: bool,
) -> None:
    """``run`` with a task file, once the adapters are built; ``spool`` is None for a dry run."""
    db_path = db_path_of(config)
    skip_db: str | None = params["skip_completed_db"]
    max_bytes = adapters.task_queue.max_message_bytes
    if skip_db is None:
        n_tasks = read_task_file(tasks_file, max_message_bytes=max_bytes, spool=spool).total
    else:
        from cloud_tasks.service_layer.exports import open_earlier_database

        with open_earlier_database(skip_db, db_path) as earlier:
            summary = read_task_file(
                tasks_file, max_message_bytes=max_bytes, earlier=earlier, spool=spool
            )
        skip_db = str(Path(skip_db).resolve())
        n_tasks = summary.selected
        if n_tasks == 0:
            click.echo(f"every task in {tasks_file} is completed in {skip_db}; nothing to run")
            return
    plan = make_plan(config, adapters, n_tasks)
    if spool is None:
        if offline_notice is not None:
            _echo_err(offline_notice)
        _print_dry_run(
            config,
            plan,
            n_tasks,
            params["task_duration"],
            params["output_format"],
            prices="catalog" if offline_notice is not None else "live",
        )
        return
    _require_runnable(config)
    _preflight(config, adapters, plan, skip=params["no_check"], quiet=quiet)
    # Before anything is created: db_file must be this job's task database or a new file in
    # a folder we can write to; never another file (which --force must not delete either).
    if TaskDatabase.check_new(db_path, job_id) and not params["force"]:
        raise ConfigError(
            f"{db_path}: a task database for job {job_id!r} already exists; resume it with "
            "--continue, or start over with --force"
        )
    with JobLock(db_path, job_id):
        adapters.task_queue.create()
        adapters.event_queue.create()
        depth = adapters.task_queue.depth()
        if depth > 0:
            if not params["force"] and not (
                sys.stdin.isatty()
                and click.confirm(
                    f"Queue {adapters.task_queue.name!r} already holds about {depth} messages. "
                    "Purge them and start over?"
                )
            ):
                raise ConfigError(
                    f"queue {adapters.task_queue.name!r} is not empty ({depth} messages); "
                    "resume with --continue, or purge it with --force"
                )
            adapters.task_queue.purge()
        TaskDatabase.remove(db_path, job_id)
        with open_task_database(db_path, job_id=job_id) as db:
            now = time.time()
            db.set_meta(
                job_id=job_id,
                provider=config.provider,
                queue=adapters.task_queue.name,
                config=config.source,
                tasks_file=tasks_file if "://" in tasks_file else str(Path(tasks_file).resolve()),
                started_at=now,
                loaded=False,
                skip_completed=skip_db,
            )
            # One transaction: a manager killed while recording leaves no task rows, and
            # 'recorded' tells --continue to record them again.
            db.add_tasks(spool, now, complete=True)
            if not quiet:
                _echo_err(f"loading {n_tasks} tasks into queue {adapters.task_queue.name!r}")
            load_tasks(adapters.task_queue, spool)
            db.set_meta(loaded=True)
            spool.close()
            _supervise(
                config,
                adapters,
                db,
                tasks_known=True,
                quiet=quiet,
                strict=params["strict"],
                resume_hint=_resume_hint(config),
                output_file=params["output_file"],
                dashboard_port=params["dashboard_port"] if params["dashboard"] else None,
            )


def _preflight(
    config: JobConfig, adapters: Adapters, plan: JobPlan, *, skip: bool, quiet: bool
) -> None:
    """The checks of 'cloud_tasks check', before anything is created: a failure is one line
    and exit 1; warnings are shown unless quiet."""
    if skip:
        return
    results = run_checks(config, adapters, plan)
    if not quiet:
        for result in results:
            if result.status == "warn":
                _echo_err(f"check: {result.name}: {result.detail}")
    require_checks(results)


def _resume_hint(config: JobConfig) -> str:
    return "cloud_tasks run --continue" + (f" --config {config.source}" if config.source else "")


def _restart_hint(config: JobConfig, tasks_file: str | None, *, pool_only: bool = False) -> str:
    """How to start a job over once its queues are deleted (``--continue`` needs them)."""
    where = f" --config {shlex.quote(config.source)}" if config.source else ""
    tasks = f" --tasks {shlex.quote(tasks_file)}" if tasks_file else " --tasks TASK_FILE"
    if pool_only:
        return f"cloud_tasks load_queue{where}{tasks}, then cloud_tasks manage_pool{where}"
    return f"cloud_tasks run --force{where}{tasks}"


def _resume(
    config: JobConfig,
    db_path: Path,
    *,
    quiet: bool,
    strict: bool,
    output_file: str | None = None,
    dashboard_port: int | None = None,
) -> None:
    job_id = job_id_of(config)
    with (
        open_task_database(db_path, job_id=job_id, existing=True) as db,
        JobLock(db_path, job_id),
        _FirstRunTasks(db_path) as first_run,
    ):
        # A 'stop' of an earlier run is not for this one.
        db.set_meta(stop_requested=None, queues_deleted=None)
        adapters = build_job_adapters(config, db_path)
        meta = db.meta()
        if not db.recorded() and not meta.get("loaded") and meta.get("tasks_file"):
            # The first run stopped while it recorded the tasks: record them all before the
            # database is trusted (tasks already recorded are left as they are).
            added = db.add_tasks(first_run.tasks(meta), time.time(), complete=True)
            if not quiet:
                _echo_err(f"recorded {added} tasks the interrupted run had not recorded")
        elif not db.recorded() and not meta.get("loaded") and db.counts().total == 0:
            raise ConfigError(
                f"{db_path}: the run that made this task database stopped before it recorded "
                "any task (and which task file); start the job again with --force"
            )
        if not adapters.task_queue.exists():
            if db.counts().remaining:
                raise ConfigError(
                    f"queue {adapters.task_queue.name!r} no longer exists but "
                    f"{db.counts().remaining} tasks are unfinished; start the job again with "
                    "--force"
                )
            click.echo("every task was already done")
            return
        if not meta.get("loaded") and meta.get("tasks_file"):
            load_tasks(adapters.task_queue, first_run.tasks(meta))
            db.set_meta(loaded=True)
            first_run.close()
        if not quiet:
            _echo_err(f"resuming job {job_id}: {db.counts().remaining} tasks left")
        _supervise(
            config,
            adapters,
            db,
            tasks_known=True,
            quiet=quiet,
            strict=strict,
            resume_hint=_resume_hint(config),
            output_file=output_file,
            dashboard_port=dashboard_port,
        )


def _print_dry_run(
    config: JobConfig,
    plan: Any,
    n_tasks: int,
    task_duration: float | None,
    output_format: str,
    *,
    prices: str = "live",
) -> None:
    data = describe_plan(plan, config, n_tasks)
    if config.provider in ("aws", "gcp"):
        # "catalog": planned offline from the bundled snapshot (the notice on stderr says why).
        data["prices"] = prices
    # The instances get the real script; what is printed hides its secret values.
    data["startup_script"] = redact_startup_script(data["startup_script"])
    if task_duration is not None:
        estimate = estimate_job(
            plan.best,
            plan.initial_count,
            n_tasks,
            task_duration,
            idle_tail_s=config.run.instance_termination_delay,
        )
        data["estimate"] = {
            "task_duration_s": task_duration,
            "instances": estimate.count,
            "makespan_s": estimate.makespan_s,
            "instance_hours": estimate.instance_hours,
            "total_cost_usd": estimate.total_cost_usd,
        }
    if output_format == "json":
        click.echo(json.dumps(data, indent=2))
        return
    lines = [
        f"Dry run of job {data['job_id']} on {data['provider']} ({data['region']}); "
        "nothing was created.",
        f"  tasks:              {n_tasks}",
        f"  instance type:      {data['instance_type']} ({data['vcpus']} vCPUs, "
        f"{data['memory_gib']:g} GiB, {'spot' if data['use_spot'] else 'on-demand'})"
        + (f" in {data['zone']}" if data["zone"] else ""),
        f"  instances:          {data['instances']} (limited by {data['limited_by']})",
        f"  price:              ${data['price_per_hour_usd']:.4f}/h each, "
        f"${data['total_price_per_hour_usd']:.4f}/h in total",
        f"  tasks per instance: {data['tasks_per_instance']}",
        f"  boot disk:          {data['boot_disk_gb']} GB"
        + (f" {data['boot_disk_type']}" if data["boot_disk_type"] else ""),
        f"  image:              {data['image']}",
    ]
    if len(data["spread"]) > 1:
        shown = ", ".join(
            f"{p['instances']} {p['instance_type']}" + (f"/{p['zone']}" if p["zone"] else "")
            for p in data["spread"]
        )
        lines.append(
            f"  spread over:        {shown} (spot pools within "
            f"{config.run.spot_spread_tolerance:.0%} of the best price per task slot)"
        )
    if data["fallbacks"]:
        shown = ", ".join(
            f"{f['instance_type']}" + (f"/{f['zone']}" if f["zone"] else "")
            for f in data["fallbacks"][:6]
        )
        lines.append(f"  on capacity errors: {shown}")
    if "estimate" in data:
        e = data["estimate"]
        lines.append(
            f"  estimate:           {e['makespan_s'] / 3600:.2f} h makespan, "
            f"{e['instance_hours']:.2f} instance-hours, ${e['total_cost_usd']:.2f} total "
            f"(tasks of {e['task_duration_s']:g} s)"
        )
    else:
        lines.append("  estimate:           pass --task-duration SECONDS for makespan and cost")
    lines.append("Startup script that would be sent:")
    lines.append(data["startup_script"].rstrip("\n"))
    click.echo("\n".join(lines))


@click.command("manage_pool")
@common_options
@run_options
@click.option("--strict", is_flag=True, help="Exit 1 when any task failed.")
@_no_check_option
def manage_pool_command(**params: Any) -> None:
    """Supervise the instance pool for an already loaded queue (see load_queue).

    Starts and replaces instances like 'run' until the queue is empty and every task seen is
    done, then stops the instances (the queues are kept).
    """
    config = resolve_config(**params)
    _require_runnable(config)
    quiet = verbosity(params) < 0
    db_path = db_path_of(config)
    job_id = job_id_of(config)
    adapters = build_job_adapters(config, db_path)
    if not adapters.task_queue.exists():
        raise ConfigError(
            f"queue {adapters.task_queue.name!r} does not exist; load it first with "
            "'cloud_tasks load_queue' (or use 'cloud_tasks run')"
        )
    if not params["no_check"]:
        checked = make_plan(config, adapters, max(adapters.task_queue.depth(), 1))
        _preflight(config, adapters, checked, skip=False, quiet=quiet)
    TaskDatabase.check_new(db_path, job_id)  # before the event queue is created
    with JobLock(db_path, job_id), open_task_database(db_path, job_id=job_id) as db:
        adapters.event_queue.create()
        if "started_at" not in db.meta():
            db.set_meta(job_id=job_id, provider=config.provider, started_at=time.time())
        counts = db.counts()
        plan = make_plan(config, adapters, max(adapters.task_queue.depth(), counts.remaining, 1))
        settings = pool_settings(config, plan, tasks_known=False)
        settings = attrs.evolve(settings, delete_queues=False)
        hint = "cloud_tasks manage_pool" + (f" --config {config.source}" if config.source else "")
        db.set_meta(stop_requested=None, queues_deleted=None)
        display = _LiveDisplay(0, quiet)
        with display, PoolRecorder(db.path, adapters.clock) as recorder:
            manager = PoolManager(
                compute=recorder.watch(adapters.compute),
                task_queue=adapters.task_queue,
                event_queue=adapters.event_queue,
                db=db,
                clock=adapters.clock,
                options=plan.options,
                settings=settings,
                on_update=display.update,
                log=recorder.logged(display.log),
                on_demand_options=plan.on_demand_options,
                recorder=recorder,
                stop_requested=_stop_request(db, hint, _restart_hint(config, None, pool_only=True)),
            )
            try:
                outcome = asyncio.run(_until_signal(manager.run()))
            except _Terminated as terminated:
                _stop_after_signal(manager, display, terminated, hint)
            except KeyboardInterrupt:
                display.log(
                    "interrupted; instances left running (stop them with 'cloud_tasks stop')"
                )
                sys.exit(130)
        _final(outcome, db, strict=params["strict"], quiet=quiet)


def _instance_states(adapters: Adapters, job_id: str) -> dict[str, str] | None:
    try:
        return {i.instance_id: i.state.value for i in adapters.compute.list_instances(job_id)}
    except CloudTasksError:
        return None


@click.command("status")
@common_options
@_db_option
@click.option(
    "--dump",
    "dump_state",
    type=click.Choice(DUMP_CHOICES),
    default=None,
    help="Instead of the report, write the tasks in this state (unfinished: all but completed) "
    "as a task file that run accepts unchanged.",
)
@click.option(
    "--output",
    "dump_output",
    type=click.Path(dir_okay=False),
    default=None,
    help="With --dump: the task file to write (.json, .yaml or .yml; default: JSON on stdout).",
)
@format_option
def status_command(**params: Any) -> None:
    """Show task counts, throughput, ETA, failures with their last error, instances, spend."""
    config = resolve_config(**params)
    db_path = db_path_of(config)
    job_id = job_id_of(config)
    if params["dump_state"] is not None:
        _dump(db_path, params["dump_state"], params["dump_output"], job_id)
        return
    if params["dump_output"] is not None:
        raise click.UsageError("--output goes with --dump STATE")
    with open_task_database(db_path, job_id=job_id, existing=True) as db:
        states = None
        if config.provider in RUNNABLE_PROVIDERS:
            try:
                states = _instance_states(build_job_adapters(config, db_path), job_id)
            except CloudTasksError:
                states = None
        report = build_report(db, time.time(), job_id=job_id, instance_states=states)
    if params["output_format"] == "json":
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(format_report(report))


def _dump(db_path: Path, choice: str, output: str | None, job_id: str) -> None:
    from cloud_tasks.service_layer.exports import dump_states, dump_tasks

    with open_task_database(db_path, job_id=job_id, existing=True) as db:
        count = dump_tasks(db, dump_states(choice), output)
    if output is not None:
        _echo_err(f"wrote {count} {choice} task(s) to {output}")


@click.command("stop")
@common_options
@_db_option
@click.option("--delete-queues", is_flag=True, help="Also delete the task and event queues.")
def stop_command(**params: Any) -> None:
    """Terminate this job's instances (found by their job tag), and optionally its queues."""
    config = resolve_config(**params)
    _require_runnable(config)
    db_path = db_path_of(config)
    job_id = job_id_of(config)
    adapters = build_job_adapters(config, db_path)
    # Tell a running manager first, so that it replaces none of the instances stopped here.
    holder = lock_holder(db_path)  # before it is told: it may end at once
    db = _own_database(db_path, job_id)
    deleting = bool(params["delete_queues"])
    told = db is not None and _noted(
        lambda: db.set_meta(stop_requested=time.time(), queues_deleted=deleting)
    )
    unfinished, tasks_file = 0, None
    try:
        instances = adapters.compute.list_instances(job_id)
        ids = [i.instance_id for i in instances]
        if ids:
            adapters.compute.terminate(ids)
        if db is not None:
            now = time.time()
            ended = [record.instance_id for record in db.instances(active_only=True)]
            _noted(lambda: [db.end_instance(i, now, "stopped") for i in ended])
            unfinished, tasks_file = db.counts().remaining, db.meta().get("tasks_file")
    finally:
        if db is not None:
            db.close()
    click.echo(f"stopped {len(ids)} instances of job {job_id}")
    if holder is not None and told:
        who = f"process {holder}" if holder > 0 else "its process"
        click.echo(
            f"the manager of job {job_id} ({who}) was told to stop; it ends at its next check"
        )
    if params["delete_queues"]:
        _delete_queues(adapters)
        click.echo(f"deleted queues {adapters.task_queue.name!r} and {adapters.event_queue.name!r}")
        if unfinished:
            click.echo(
                f"{unfinished} tasks were unfinished; without its queues the job cannot be "
                "resumed with --continue: start it over with: "
                + _restart_hint(config, tasks_file, pool_only=tasks_file is None)
            )


def _noted(write: Callable[[], object]) -> bool:
    """Run a write to the task database for ``stop``; a refusal is a note, not the end: the
    instances are stopped whatever the database says."""
    try:
        write()
    except CloudTasksError as exc:
        _echo_err(f"note: {exc}")
        return False
    return True


def _own_database(db_path: Path, job_id: str) -> TaskDatabase | None:
    """The job's task database for ``stop``; None (with a note) when there is none, or when
    the file is not one of this job's (it is left untouched)."""
    problem = identify(db_path)
    if problem == "missing":
        return None
    try:
        if problem is not None:
            raise CloudTasksError(f"{db_path}: not a Cloud Tasks task database ({problem})")
        return open_task_database(db_path, job_id=job_id, existing=True)
    except CloudTasksError as exc:
        _echo_err(f"note: {exc}; it is left untouched")
        return None


@click.command("monitor_event_queue")
@common_options
@_db_option
@click.option("--once", is_flag=True, help="Record the waiting events and exit.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds between polls.",
)
def monitor_event_queue_command(**params: Any) -> None:
    """Consume worker events into the task database (for workers started by hand).

    Runs until Ctrl-C (or, with --once, until the event queue is empty).
    """
    config = resolve_config(**params)
    _require_runnable(config)
    db_path = db_path_of(config)
    job_id = job_id_of(config)
    adapters = build_job_adapters(config, db_path)
    if not adapters.event_queue.exists():
        raise ConfigError(
            f"event queue {adapters.event_queue.name!r} does not exist; create it with "
            "'cloud_tasks load_queue' or 'cloud_tasks run'"
        )
    TaskDatabase.check_new(db_path, job_id)
    with JobLock(db_path, job_id), open_task_database(db_path, job_id=job_id) as db:
        if "started_at" not in db.meta():
            db.set_meta(job_id=job_id, provider=config.provider, started_at=time.time())
        total = 0
        try:
            while True:
                received = 0
                while batch := adapters.event_queue.receive(500, 0.0):
                    result = db.ingest([r.event for r in batch], time.time())
                    adapters.event_queue.ack([r.receipt for r in batch])
                    if result.rejected:
                        first = next(iter(result.rejected.values()))
                        _echo_err(
                            f"dropped {len(result.rejected)} invalid event(s) from the event "
                            f"queue (first: {first})"
                        )
                    received += len(batch)
                total += received
                c = db.counts()
                if received or params["once"]:
                    click.echo(
                        f"{total} events recorded: {c.completed} completed, {c.failed} failed, "
                        f"{c.pending + c.running} not finished"
                    )
                if params["once"]:
                    return
                time.sleep(params["interval"])
        except KeyboardInterrupt:
            click.echo(f"stopped; {total} events recorded in {db.path}")


COMMANDS: list[click.Command] = [
    run_command,
    manage_pool_command,
    status_command,
    stop_command,
    monitor_event_queue_command,
]

"""Sends a job's notifications (run option ``notify``) while the pool manager runs.

``JobNotifier.update`` is called with every snapshot of the job; the notifications due
(``domain.notifications``) are recorded as fired in the task database first, then delivered
from a background thread, so a slow or dead webhook never holds up the manager. A delivery
that fails is logged; the job goes on.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any

from cloud_tasks.adapters.notify import NotificationError, post_webhook, run_command
from cloud_tasks.domain.notifications import Notice, end_notice, progress_notices
from cloud_tasks.domain.options import Notify
from cloud_tasks.domain.taskstate import TaskCounts
from cloud_tasks.service_layer.insight import PoolRecorder
from cloud_tasks.service_layer.pool import PoolSnapshot

logger = logging.getLogger("cloud_tasks.notify")

#: Seconds ``close`` waits for notifications still being delivered.
CLOSE_TIMEOUT_S = 30.0

Deliver = Callable[[Mapping[str, Any]], None]


class JobNotifier:
    """Fires each notification of one job at most once (see the module docstring)."""

    def __init__(
        self,
        notify: Notify,
        recorder: PoolRecorder,
        *,
        job_id: str,
        max_total_cost_usd: float | None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.notify = notify
        self.recorder = recorder
        self.job_id = job_id
        self.max_total_cost_usd = max_total_cost_usd
        self.log = log or logger.warning
        self._fired = set(recorder.fired_notifications())
        self._queue: queue.Queue[Notice | None] = queue.Queue()
        self._thread = threading.Thread(
            target=self._deliver_all, name="cloud-tasks-notify", daemon=True
        )
        self._thread.start()
        self.delivered = 0
        self.failed = 0

    def update(self, snapshot: PoolSnapshot) -> None:
        """Fire the notifications the job's progress and spend call for."""
        counts = snapshot.counts
        notices = progress_notices(
            job_id=self.job_id,
            completed=counts.completed,
            failed=counts.failed,
            total=counts.total,
            spent_usd=snapshot.spend_usd,
            max_total_cost_usd=self.max_total_cost_usd,
            failure_rate=self.notify.failure_rate,
            fired=self._fired,
        )
        for notice in notices:
            self._fire(notice)

    def finish(self, status: str, message: str, counts: TaskCounts, spent_usd: float) -> None:
        """Fire the notification of how the run ended (``completed``, ``stopped``, or why it
        failed)."""
        self._fire(
            end_notice(
                job_id=self.job_id,
                status=status,
                message=message,
                completed=counts.completed,
                failed=counts.failed,
                total=counts.total,
                spent_usd=spent_usd,
                max_total_cost_usd=self.max_total_cost_usd,
            )
        )

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Wait (at most ``timeout_s``) for the notifications still being delivered."""
        self._queue.put(None)
        self._thread.join(timeout=timeout_s)
        if self._thread.is_alive():
            self.log(f"notify: gave up waiting for a notification after {timeout_s:g} s")

    def __enter__(self) -> JobNotifier:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _fire(self, notice: Notice) -> None:
        if notice.kind in self._fired:
            return
        self._fired.add(notice.kind)
        # Recorded before it is sent: at most once, also across 'run --continue'.
        if self.recorder.mark_fired(notice.kind, dict(notice.body)):
            self._queue.put(notice)

    def _deliver_all(self) -> None:
        while (notice := self._queue.get()) is not None:
            for what, deliver in self._targets():
                try:
                    deliver(notice.body)
                    self.delivered += 1
                except NotificationError as exc:
                    self.failed += 1
                    self.log(f"notify: the {notice.kind} notification's {what} failed: {exc}")

    def _targets(self) -> list[tuple[str, Deliver]]:
        targets: list[tuple[str, Deliver]] = []
        webhook, command = self.notify.webhook, self.notify.command
        if webhook:
            targets.append(("webhook", lambda body: post_webhook(webhook, body)))
        if command:
            targets.append(("command", lambda body: run_command(command, body)))
        return targets


__all__ = ["JobNotifier"]

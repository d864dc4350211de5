"""The pool manager's side of stopping the losing run of a task that runs twice (issue 19).

A task can run on two instances at once: a speculative copy of a straggler is a second message
on the queue, and a message whose lease lapsed is delivered again. Whichever run ends first
decides the task; the other is the loser. A worker stops a run whose message was deleted at its
next lease renewal, so the manager deletes (acks) the loser's delivery.

``LiveDeliveries`` follows the runs in progress from the ``receipt`` of their ``task_started``
events (workers send it in queue mode; without it nothing is followed and nothing is acked):

- the runs of a task are remembered from their start to their end (an outcome or a release
  from the instance that ran them), so memory holds only the runs in progress;
- when an outcome arrives for a task with other runs in progress and the task store then holds
  the task as ``completed`` or ``failed``, every other run's delivery is acked and the task is
  forgotten;
- a run that starts after its task was ``completed`` (a copy received after the original won,
  or a start event that arrived after the outcome) is acked at once;
- a task that is not terminal is never acked.

An outcome names its task and instance, not its delivery: when one instance runs two
deliveries of a task at once, its outcome ends neither (the task's end acks both; acking the
winner's own delivery again is harmless, since acks are idempotent).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from cloud_tasks.domain.events import (
    OUTCOME_EVENTS,
    TASK_RELEASED,
    TASK_STARTED,
)
from cloud_tasks.domain.taskstate import COMPLETED, TERMINAL_STATES

#: Events that end the run of the instance that sends them.
_RUN_ENDS: Final = OUTCOME_EVENTS | {TASK_RELEASED}

#: One run in progress: the instance that runs it (``None``: a worker without metadata) and
#: the receipt of its delivery.
_Run = tuple[str | None, str]


class LiveDeliveries:
    """The deliveries of the runs in progress, per task (see the module docstring)."""

    def __init__(self) -> None:
        self._runs: dict[str, list[_Run]] = {}
        # Tasks whose state decides an ack, kept until ``losers`` is given their states (a
        # busy task store must not lose them): those that got an outcome, those that started.
        self._ended: set[str] = set()
        self._started: set[str] = set()

    def __len__(self) -> int:
        """How many runs are remembered."""
        return sum(len(runs) for runs in self._runs.values())

    def tasks(self) -> set[str]:
        """The tasks with runs remembered."""
        return set(self._runs)

    def observe(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Learn from a batch of accepted worker events, in their order."""
        runs = self._runs
        if not runs:
            # Nothing followed yet: only a start with a receipt matters (``simulate`` sends
            # millions of events through here, none with one).
            for event in events:
                if "receipt" in event:
                    break
            else:
                return
        for event in events:
            get = event.get
            kind = get("event_type")
            if kind == TASK_STARTED:
                receipt = get("receipt")
                if type(receipt) is not str or not receipt:
                    continue  # an older worker, or file mode: nothing to stop it with
                task_id = str(get("task_id"))
                runs.setdefault(task_id, []).append((_instance(get("instance_id")), receipt))
                self._started.add(task_id)
            elif runs and kind in _RUN_ENDS:
                ended = get("task_id")
                task_runs = runs.get(ended) if type(ended) is str else None
                if task_runs is None:
                    continue
                task_id = str(ended)
                sender = _instance(get("instance_id"))
                mine = [i for i, (instance, _receipt) in enumerate(task_runs) if instance == sender]
                if len(mine) == 1:
                    del task_runs[mine[0]]
                    if not task_runs:
                        del runs[task_id]
                if kind != TASK_RELEASED and task_id in runs:
                    self._ended.add(task_id)

    def to_look_up(self) -> list[str]:
        """Tasks whose state ``losers`` needs (those with runs in progress only)."""
        runs = self._runs
        wanted = {t for t in self._ended if t in runs} | {t for t in self._started if t in runs}
        if not wanted:
            self._ended.clear()
            self._started.clear()
        return sorted(wanted)

    def losers(self, states: Mapping[str, str]) -> list[str]:
        """Receipts to ack, given the task store's ``states`` of ``to_look_up()``.

        A task that got an outcome and is terminal loses every run left; a task that only
        started is acked when it is ``completed``. The tasks acked are forgotten.
        """
        runs = self._runs
        receipts: list[str] = []
        for task_id, state in states.items():
            if task_id not in runs:
                continue
            if (task_id in self._ended and state in TERMINAL_STATES) or state == COMPLETED:
                receipts.extend(receipt for _instance, receipt in runs.pop(task_id))
        self._ended.clear()
        self._started.clear()
        return receipts

    def forget_instances(self, instance_ids: Iterable[str]) -> None:
        """These instances are gone: their runs ended with them (their messages come back)."""
        gone = set(instance_ids)
        runs = self._runs
        if not gone or not runs:
            return
        for task_id, task_runs in list(runs.items()):
            kept = [run for run in task_runs if run[0] not in gone]
            if not kept:
                del runs[task_id]
            elif len(kept) < len(task_runs):
                runs[task_id] = kept


def _instance(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


__all__ = ["LiveDeliveries"]

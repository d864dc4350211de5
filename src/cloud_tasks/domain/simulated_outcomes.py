"""How simulated task attempts end (SPEC §9): a failure probability and a file of outcomes.

``simulate`` asks a ``FailureModel`` how each attempt of each task ends; the simulated worker
then applies the real retry rules (``domain.retry``) to that outcome. An outcomes file lists
tasks by id, each with the outcome of its attempts in order (the last one repeats), as one
task per line::

    # task id        outcome of attempt 1, 2, ...
    task-0000003     exception
    task-0000007     fail,fail,success

or as a JSON object (``{"task-0000003": "exception", "task-0000007": ["fail", "success"]}``).
Outcomes are the words of ``OUTCOME_WORDS``: ``success``; ``fail`` (``process_task`` returned
``(False, result)``: always retried, up to ``max_attempts``); ``exception``, ``exit`` and
``timeout`` (retried when ``retry_on_exception``, ``retry_on_exit``, ``retry_on_timeout``);
``memory`` (never retried). Tasks the file does not list fail at the model's ``rate``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

import attrs

from cloud_tasks.domain.retry import OutcomeKind
from cloud_tasks.domain.text import shown
from cloud_tasks.exceptions import ConfigError

#: The words of an outcomes file and ``--failure-kind``, and the outcome each stands for.
OUTCOME_WORDS: Final[Mapping[str, OutcomeKind]] = {
    "success": OutcomeKind.SUCCESS,
    "fail": OutcomeKind.RETRY_REQUESTED,
    "exception": OutcomeKind.EXCEPTION,
    "exit": OutcomeKind.EXIT,
    "timeout": OutcomeKind.TIMEOUT,
    "memory": OutcomeKind.MEMORY,
}
_WORDS_HELP: Final = ", ".join(OUTCOME_WORDS)


def outcome_word(word: str, where: str) -> OutcomeKind:
    """The outcome ``word`` names; ``where`` says where it was read, for the error line.

    Raises:
        ConfigError: not one of ``OUTCOME_WORDS``.
    """
    kind = OUTCOME_WORDS.get(word.strip().lower())
    if kind is None:
        raise ConfigError(f"{where}: unknown outcome {shown(word, 40)!r}; use one of {_WORDS_HELP}")
    return kind


@attrs.frozen
class FailureModel:
    """How each attempt ends: listed tasks as listed, others fail at ``rate`` with ``kind``.

    ``table`` maps a task id to the outcomes of its attempts (attempt 1 first; the last one
    repeats for later attempts).
    """

    rate: float = 0.0
    kind: OutcomeKind = OutcomeKind.EXCEPTION
    table: Mapping[str, tuple[OutcomeKind, ...]] = attrs.field(factory=dict)

    @property
    def fails_at_all(self) -> bool:
        """Whether any attempt can end otherwise than in success."""
        return self.rate > 0 or any(
            kind is not OutcomeKind.SUCCESS for kinds in self.table.values() for kind in kinds
        )

    def outcome(self, task_id: str, attempt: int, draw: float) -> OutcomeKind:
        """How ``attempt`` (1 = first) of ``task_id`` ends; ``draw`` is uniform in [0, 1)."""
        listed = self.table.get(task_id)
        if listed is not None:
            return listed[min(attempt, len(listed)) - 1]
        return self.kind if draw < self.rate else OutcomeKind.SUCCESS


def outcomes_from_text(text: str, source: str) -> dict[str, tuple[OutcomeKind, ...]]:
    """The outcomes listed in a file's ``text`` (see the module docstring).

    Raises:
        ConfigError: a line or entry that is not a task id and outcomes, with where it is.
    """
    stripped = text.strip()
    table: dict[str, tuple[OutcomeKind, ...]] = {}
    if stripped.startswith("{"):
        try:
            whole = json.loads(stripped)
        except ValueError as exc:
            raise ConfigError(f"{source}: not valid JSON ({exc})") from None
        if not isinstance(whole, dict):
            raise ConfigError(f"{source}: expected a JSON object of task id to outcomes")
        for task_id, value in whole.items():
            words = [value] if isinstance(value, str) else value
            if (
                not isinstance(words, list)
                or not words
                or not all(isinstance(word, str) for word in words)
            ):
                raise ConfigError(
                    f"{source}: task {shown(task_id, 60)!r}: expected an outcome or a list of "
                    f"outcomes ({_WORDS_HELP})"
                )
            where = f"{source}: task {shown(task_id, 60)!r}"
            table[task_id] = tuple(outcome_word(word, where) for word in words)
        return table
    for number, line in enumerate(text.splitlines(), start=1):
        item = line.split("#", 1)[0].strip()
        if not item:
            continue
        where = f"{source}, line {number}"
        parts = item.split(None, 1)
        if len(parts) != 2:
            raise ConfigError(
                f"{where}: expected a task id and its outcomes (task-7 fail,success), "
                f"got {shown(item, 60)!r}"
            )
        task_id, words = parts
        if task_id in table:
            raise ConfigError(f"{where}: task {shown(task_id, 60)!r} is listed twice")
        table[task_id] = tuple(
            outcome_word(word, where) for word in words.replace(" ", "").split(",")
        )
    return table


__all__ = ["OUTCOME_WORDS", "FailureModel", "outcome_word", "outcomes_from_text"]

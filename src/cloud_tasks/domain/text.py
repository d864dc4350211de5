"""Showing untrusted text (task ids, errors from workers) to a person.

Task ids and error texts come from task files and worker events: they may hold newlines,
terminal escape codes, lone surrogates or megabytes of text. Every display (``status``, the run
log, error lines) passes them through ``shown``, which escapes what is not printable the way
``repr`` does and cuts long text, so one value is one short line and cannot drive the terminal.
Machine output (``--format json``, dumped task files, results) keeps the values as they are.
"""

from __future__ import annotations

#: Characters of a value shown in a line, before the cut.
SHOWN_LIMIT = 80
#: An error line longer than this is cut in its middle (its start says what, its end what to do).
LINE_LIMIT = 2000
ELLIPSIS = "…"


def _escape(char: str) -> str:
    if char.isprintable():
        return char
    return repr(char)[1:-1]  # '\n', '\x1b', '\u2028', '\ud800', ...


def escaped(text: str) -> str:
    """``text`` with every non-printable character escaped (``\\n``, ``\\x1b``, ``\\ud800``)."""
    if text.isprintable():
        return text
    return "".join(_escape(char) for char in text)


def shown(value: object, limit: int = SHOWN_LIMIT) -> str:
    """``value`` as a string fit for one line: escaped, and cut to ``limit`` characters + '…'.

    Only the first ``limit`` characters are looked at, so a 300 KB id costs no more than a
    short one.
    """
    text = value if isinstance(value, str) else str(value)
    head = escaped(text[: limit + 1])
    if len(head) > limit or len(text) > limit:
        return head[:limit] + ELLIPSIS
    return head


def one_line(message: str, limit: int = LINE_LIMIT) -> str:
    """An error message as one line: escaped; when longer than ``limit``, its middle is cut."""
    if len(message) <= limit:
        text = escaped(message)
        if len(text) <= limit:
            return text
    half = limit // 2
    head = escaped(message[:half])[:half]
    tail = escaped(message[-half:])[-half:]
    return f"{head}{ELLIPSIS}{tail}"


def collapse_whitespace(text: str) -> str:
    """``text`` with every run of whitespace (line breaks included) made one space, for
    provider messages that hold line breaks."""
    return " ".join(text.split())


__all__ = [
    "ELLIPSIS",
    "LINE_LIMIT",
    "SHOWN_LIMIT",
    "collapse_whitespace",
    "escaped",
    "one_line",
    "shown",
]

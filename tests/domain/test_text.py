"""Untrusted text shown to a person: escaped, one line, cut (``cloud_tasks.domain.text``)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cloud_tasks.domain.text import ELLIPSIS, LINE_LIMIT, SHOWN_LIMIT, one_line, shown


@given(st.text())
def test_shown_is_one_printable_line_of_bounded_length(text: str) -> None:
    result = shown(text)
    assert result.isprintable()
    assert len(result) <= SHOWN_LIMIT + 1
    if text.isprintable() and len(text) <= SHOWN_LIMIT:
        assert result == text  # ordinary ids are shown as they are


@given(st.text(), st.integers(min_value=10, max_value=300))
def test_one_line_is_printable_and_bounded(text: str, limit: int) -> None:
    result = one_line(text, limit)
    assert result.isprintable()
    assert len(result) <= limit + 1


def test_escapes_read_like_repr() -> None:
    assert shown("a\nb\x1b[31mred\x07") == "a\\nb\\x1b[31mred\\x07"
    assert shown("bidi\u202eevil\u2028") == "bidi\\u202eevil\\u2028"
    assert shown("lone\ud800") == "lone\\ud800"
    assert shown("x" * 10_000) == "x" * SHOWN_LIMIT + ELLIPSIS
    assert shown(12345) == "12345"


def test_a_300_kb_value_becomes_a_short_line() -> None:
    huge = "\n" * 300_000
    assert len(shown(huge)) == SHOWN_LIMIT + 1
    message = "error: task " + "é\x1b" * 150_000 + " failed; fix it like this"
    line = one_line(message)
    assert len(line) <= LINE_LIMIT + 1
    assert line.startswith("error: task ") and line.endswith("fix it like this")

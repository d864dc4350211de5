"""A task's outcome as the worker reads it, whichever encoding the task process chose.

A task process sends a result of built-in types as marshal data (cheaper to write in a freshly
forked process) and anything else as a JSON record; the worker must read the same record
either way, and every result that is not JSON must stay an error outcome (SPEC §7).
"""

from __future__ import annotations

import collections
import enum
import json
from typing import Any

import pytest

from cloud_tasks.entrypoints.worker.forkserver import (
    _MARSHALLED,
    ChildReport,
    _encode_outcome,
)


class Colour(enum.IntEnum):
    RED = 1


def _record(returned: Any) -> dict[str, Any] | None:
    return ChildReport(1, 0, _encode_outcome("t1", returned)).outcome()


@pytest.mark.parametrize(
    "result",
    [
        {"i": 1, "s": "x", "f": 1.5, "b": True, "n": None, "l": [1, [2, {"k": "v"}]]},
        {"tuple": (1, 2), 3: "int key", 2.5: "float key", None: "none key", True: "bool"},
        ["a", 1],
        "text",
        10**30,
        {"unicode": "é€𝄞", "empty": {}},
    ],
)
def test_a_result_of_builtin_types_reads_back_as_its_json_round_trip(result: Any) -> None:
    payload = _encode_outcome("t1", (True, result))
    assert payload[:1] == _MARSHALLED
    expected = json.loads(json.dumps(result))
    assert ChildReport(1, 0, payload).outcome() == {"kind": "success", "result": expected}


def test_false_is_a_retry_request_and_none_an_empty_result() -> None:
    assert _record((False, None)) == {"kind": "retry_requested", "result": {}}
    assert _record([True, None]) == {"kind": "success", "result": {}}


@pytest.mark.parametrize(
    "result",
    [
        {"score": float("nan")},
        {"score": float("-inf")},
        {"set": {1, 2}},
        {"bytes": b"raw"},
        {"complex": 1j},
        {(1, 2): "tuple key"},
    ],
)
def test_a_builtin_result_that_is_not_json_is_an_exception_outcome(result: Any) -> None:
    record = _record((True, result))
    assert record is not None
    assert record["kind"] == "exception"
    assert "not JSON-serializable" in record["exception"]
    assert "result" not in record


def test_a_circular_result_is_an_exception_outcome() -> None:
    loop: list[Any] = []
    loop.append(loop)
    record = _record((True, {"loop": loop}))
    assert record is not None and record["kind"] == "exception"
    assert "not JSON-serializable" in record["exception"]


def test_a_result_marshal_refuses_goes_as_json() -> None:
    result = collections.OrderedDict(colour=Colour.RED)
    payload = _encode_outcome("t1", (True, result))
    assert payload[:1] == b"{"
    assert ChildReport(1, 0, payload).outcome() == {"kind": "success", "result": {"colour": 1}}


def test_a_result_neither_can_encode_raises_for_the_task() -> None:
    with pytest.raises(TypeError, match="not JSON-serializable"):
        _encode_outcome("t1", (True, {"value": object()}))


def test_an_outcome_cut_short_is_no_outcome() -> None:
    payload = _encode_outcome("t1", (True, {"blob": "x" * 1000}))
    assert ChildReport(1, 0, payload[: len(payload) // 2]).outcome() is None
    assert ChildReport(1, 0, _MARSHALLED).outcome() is None
    assert ChildReport(1, 0, b"").outcome() is None


def test_a_large_result_goes_as_json() -> None:
    """The worker checks a marshalled result on its event loop, so only small ones come so."""
    result = {"blob": "x" * 100_000, "pair": (1, 2)}
    payload = _encode_outcome("t1", (True, result))
    assert payload[:1] == b"{"
    assert ChildReport(1, 0, payload).outcome() == {
        "kind": "success",
        "result": {"blob": "x" * 100_000, "pair": [1, 2]},
    }

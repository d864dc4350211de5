"""The one cattrs converter for configuration values, with strict scalar hooks.

``int(2.5)`` and ``bool("no")`` never happen here: a value of the wrong type is rejected with
a ``ValueProblem`` that says what was expected and what was found. Whole classes are
structured at once (``structure``); cattrs' own ``transform_error`` gives the path of every bad
value (``gcp.instance_types[1]``), and the loader adds the file.
"""

from __future__ import annotations

import math
import reprlib
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    IterableValidationError,
    IterableValidationNote,
)

from cloud_tasks.domain.options import Notify

_T = TypeVar("_T")

_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60
_SHORT.maxlist = 5
_SHORT.maxdict = 5
_SHORT.maxlevel = 2


class ValueProblem(ValueError):
    """A value has the wrong type or shape; the message has no location."""


@attrs.frozen
class Problem:
    """One bad value: where (``gcp.max_instances``) and what is wrong with it."""

    path: str
    message: str


class StructureError(ValueError):
    """Some values could not be structured; ``problems`` in the order of the class's fields."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))
        self.problems = problems


def describe(value: Any) -> str:
    """A short, safe rendering of a user's value for an error message (never huge)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return _SHORT.repr(value)


def _expected(what: str, value: Any) -> ValueProblem:
    return ValueProblem(f"expected {what}, got {describe(value)}")


def _strict_int(value: Any, _type: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _expected("an integer", value)
    return value


def _strict_float(value: Any, _type: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _expected("a number", value)
    result = float(value)
    if math.isnan(result) or math.isinf(result):
        raise _expected("a finite number", value)
    return result


def _strict_bool(value: Any, _type: Any) -> bool:
    if not isinstance(value, bool):
        raise _expected("true or false", value)
    return value


def _strict_str(value: Any, _type: Any) -> str:
    if not isinstance(value, str):
        raise _expected("a string", value)
    return value


def _noted(exc: Exception, note: str) -> Exception:
    exc.add_note(note)
    return exc


def _str_tuple(value: Any, _type: Any) -> tuple[str, ...]:
    """A string or a list of strings, as a tuple (``"n2-"`` → ``("n2-",)``)."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple):
        raise _expected("a string or a list of strings", value)
    errors: list[Exception] = []
    for index, item in enumerate(value):
        try:
            _strict_str(item, str)
        except ValueProblem as exc:
            errors.append(_noted(exc, IterableValidationNote(f"@ [{index}]", index, str)))
    if errors:
        raise IterableValidationError("invalid items", errors, tuple[str, ...])
    return tuple(value)


_NOTIFY_KEYS = ("webhook", "command", "failure_rate")


def _notify(value: Any, _type: Any) -> Notify:
    """A webhook URL, or a mapping with ``webhook`` and/or ``command`` (and ``failure_rate``)."""
    if isinstance(value, Notify):
        return value
    if isinstance(value, str):
        return Notify(webhook=value)
    if not isinstance(value, dict):
        # The value is not shown: it may hold the webhook's token.
        raise ValueProblem(
            "expected a webhook URL or a mapping with webhook and/or command, "
            f"got a {type(value).__name__}"
        )
    fields: dict[str, Any] = {}
    errors: list[Exception] = []
    for key, item in value.items():
        name = key.replace("-", "_") if isinstance(key, str) else key
        try:
            if name not in _NOTIFY_KEYS:
                raise ValueProblem(f"unknown key {describe(key)}; use {', '.join(_NOTIFY_KEYS)}")
            fields[name] = (
                _strict_float(item, float) if name == "failure_rate" else _strict_str(item, str)
            )
        except ValueProblem as exc:
            shown = name if name in _NOTIFY_KEYS else key
            errors.append(_noted(exc, AttributeValidationNote(f"@ {shown}", shown, Any)))
    if errors:
        raise ClassValidationError("invalid notify", errors, Notify)
    return Notify(**fields)


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _str_tuple)
    converter.register_structure_hook(Notify, _notify)
    return converter


#: The converter every configuration value and value object goes through.
converter = _make_converter()


def structure(value: Any, cls: type[_T], path: str) -> _T:
    """Structure ``value`` into ``cls``; ``path`` names ``value`` in error messages.

    Raises:
        StructureError: every bad value with its path (``path.key[index]``).
    """
    try:
        return converter.structure(value, cls)
    except (ClassValidationError, IterableValidationError) as exc:
        messages: list[str] = []

        def message(error: BaseException, _type: Any) -> str:
            text = str(error) if isinstance(error, ValueProblem) else f"invalid value ({error})"
            messages.append(text)
            return text

        lines = cattrs.transform_error(exc, path, message)
        # transform_error writes "<message> @ <path>"; the path is what follows our message.
        problems = [
            Problem(line[len(text) + 3 :], text) for line, text in zip(lines, messages, strict=True)
        ]
        raise StructureError(problems) from None
    except ValueProblem as exc:
        raise StructureError([Problem(path, str(exc))]) from None

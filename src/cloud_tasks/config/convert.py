"""The one cattrs converter for configuration values, with strict scalar hooks.

``int(2.5)`` and ``bool("no")`` never happen here: a value of the wrong type is rejected with
a ``ValueProblem`` that says what was expected and what was found; the loader adds the key
path and the file.
"""

from __future__ import annotations

import math
import reprlib
from typing import Any

import cattrs

from cloud_tasks.config.schema import Kind, OptionSpec
from cloud_tasks.domain.options import Notify

_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60
_SHORT.maxlist = 5
_SHORT.maxdict = 5
_SHORT.maxlevel = 2


class ValueProblem(ValueError):
    """A value has the wrong type or shape; the message has no location yet.

    ``subpath`` locates the bad part inside the value (``[1]`` for the second list item).
    """

    def __init__(self, message: str, subpath: str = "") -> None:
        super().__init__(message)
        self.subpath = subpath


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


def _str_tuple(value: Any, _type: Any) -> tuple[str, ...]:
    """A string or a list of strings, as a tuple (``"n2-"`` → ``("n2-",)``)."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple):
        raise _expected("a string or a list of strings", value)
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise ValueProblem(f"expected a string, got {describe(item)}", f"[{index}]")
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
    for key, item in value.items():
        name = key.replace("-", "_") if isinstance(key, str) else key
        if name not in _NOTIFY_KEYS:
            raise ValueProblem(
                f"unknown key {describe(key)}; use {', '.join(_NOTIFY_KEYS)}", f".{key}"
            )
        try:
            fields[name] = (
                _strict_float(item, float) if name == "failure_rate" else _strict_str(item, str)
            )
        except ValueProblem as exc:
            raise ValueProblem(str(exc), f".{name}") from None
    return Notify(**fields)


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _str_tuple)
    converter.register_structure_hook(Notify, _notify)
    return converter


#: The converter every configuration value and value object goes through.
converter = _make_converter()

_TYPES: dict[Kind, Any] = {
    "int": int,
    "float": float,
    "bool": bool,
    "str": str,
    "str_list": tuple[str, ...],
    "notify": Notify,
}


def structure_option(spec: OptionSpec, value: Any) -> Any:
    """Convert a raw value for option ``spec`` strictly; ``None`` only where "no limit" is valid.

    Raises:
        ValueProblem: the value has the wrong type.
    """
    if value is None:
        if spec.optional:
            return None
        raise _expected(_WHAT[spec.kind], value)
    return converter.structure(value, _TYPES[spec.kind])


_WHAT: dict[Kind, str] = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "str_list": "a string or a list of strings",
    "notify": "a webhook URL or a mapping with webhook and/or command",
}

"""A nesting limit for YAML that holds the same under every PyYAML build.

PyYAML composes nodes recursively: the pure-Python loader runs out of Python stack (a
``RecursionError``) a few hundred levels down, while libyaml 0.2.6 stops at 1,000 levels with
its own error and libyaml 0.2.5 has no limit at all. So that a deeply nested file gets the same
one-line answer everywhere, the parser's events are scanned first (the parser keeps an explicit
stack, so this scan never recurses) and anything nested deeper than ``MAX_YAML_DEPTH`` is
refused before a node is composed.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.events import (
    CollectionEndEvent,
    CollectionStartEvent,
    NodeEvent,
)

MAX_YAML_DEPTH = 100
"""Deepest nesting of lists and mappings accepted in a task file or a configuration file."""


class TooDeep(Exception):
    """The document nests lists or mappings deeper than the limit."""

    def __init__(self, line: int, column: int, item: int | None) -> None:
        super().__init__(line, column, item)
        self.line = line  # 1-based
        self.column = column  # 1-based
        self.item = item  # index of the top-level list element it is in, if any

    def describe(self) -> str:
        return (
            f"nested more than {MAX_YAML_DEPTH} levels deep at line {self.line}, column "
            f"{self.column}; flatten the data or keep it in a file of its own"
        )


def check_yaml_depth(data: bytes | str, loader_class: Any, max_depth: int = MAX_YAML_DEPTH) -> None:
    """Raise ``TooDeep`` when ``data`` nests deeper than ``max_depth``.

    Syntax errors are left for the loader that reads the document afterwards, which reports
    them with its own position, so this scan stops quietly at the first one. libyaml reads
    ahead and may stop at its own nesting limit before this scan sees the events; then the
    document is scanned again with the pure-Python parser, which has no such limit.
    """
    try:
        _scan(data, loader_class, max_depth)
    except yaml.YAMLError:
        if loader_class is yaml.SafeLoader or issubclass(loader_class, yaml.SafeLoader):
            return
        try:
            _scan(data, yaml.SafeLoader, max_depth)
        except yaml.YAMLError:
            return


def _scan(data: bytes | str, loader_class: Any, max_depth: int) -> None:
    depth = 0
    item = -1
    loader = loader_class(data)
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, NodeEvent) and depth == 1:
                item += 1
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > max_depth:
                    mark = event.start_mark
                    line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
                    raise TooDeep(line, column, item if item >= 0 else None)
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    finally:
        loader.dispose()

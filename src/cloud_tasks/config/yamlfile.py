"""Reading a configuration file: size cap, UTF-8, safe YAML with strict booleans.

The loader is ``yaml.SafeLoader`` with two changes that keep configuration files honest:
only ``true``/``false`` are booleans (YAML 1.2; an unquoted ``no`` stays the string ``"no"``
and is then rejected where a boolean is expected, instead of silently becoming ``False``), and
a key given twice in one mapping is an error rather than "the last one wins".
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

from cloud_tasks.exceptions import ConfigError
from cloud_tasks.yaml_depth import TooDeep, check_yaml_depth

MAX_CONFIG_BYTES = 1024 * 1024

_BOOL_TAG = "tag:yaml.org,2002:bool"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans and duplicate-key detection."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):  # also called for other nodes, which it rejects
            seen: set[Any] = set()
            for key_node, _value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:
                    continue  # unhashable; the base class reports it
                if duplicate:
                    raise ConstructorError(
                        None, None, f"key {key!r} is given twice", key_node.start_mark
                    )
        return super().construct_mapping(node, deep=deep)


_ConfigLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def yaml_error_line(exc: yaml.YAMLError, where: str) -> str:
    """One line for a YAML syntax error: file, line, column and the parser's complaint."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        where = f"{where}, line {mark.line + 1}, column {mark.column + 1}"
    return f"{where}: invalid YAML: {problem}"


def parse_config_yaml(text: str, where: str) -> Any:
    """Parse configuration text with the strict loader.

    Raises:
        ConfigError: the text is not valid YAML (with file, line and column).
    """
    try:
        check_yaml_depth(text, _ConfigLoader)
    except TooDeep as exc:
        raise ConfigError(f"{where}: invalid YAML: {exc.describe()}") from None
    try:
        return yaml.load(text, Loader=_ConfigLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error_line(exc, where)) from None
    except RecursionError:
        raise ConfigError(f"{where}: invalid YAML: nested too deeply") from None


def read_config_file(path: Path) -> Any:
    """Read and parse a configuration file; ``None`` for an empty file.

    Raises:
        ConfigError: the file is missing, unreadable, larger than 1 MB, not UTF-8 or not YAML.
    """
    where = str(path)
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(
            f"{where}: configuration file not found; check the --config path"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{where}: is a directory; --config needs a YAML file") from None
    except OSError as exc:
        raise ConfigError(
            f"{where}: cannot read configuration file: {exc.strerror or exc}"
        ) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{where}: configuration file is larger than 1 MB; is this the right file?"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{where}: not UTF-8 text (bad byte at offset {exc.start}); is this the right file?"
        ) from None
    return parse_config_yaml(text, where)

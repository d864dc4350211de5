"""Reading task files (SPEC §3): JSON as a stream, YAML of any valid form.

A task file is a list of ``{"task_id": str, "data": mapping}``. JSON is parsed incrementally
(``json.JSONDecoder.raw_decode`` over a buffered, chunked read), so a file of millions of tasks
is never held in memory whole; YAML is parsed with ``safe_load`` semantics.

Every error is a ``TaskFileError`` whose message names the file, the task index (counted from
0 in file order, as ``--start-task`` counts) and, where the parser knows it, the line.

A task file may also live in a bucket or on a web server (``s3://bucket/key``,
``gs://bucket/object``, ``https://…``): a ``TaskSource`` adapter opens it as a stream and the
same parser reads it as it arrives; the extension comes from the object name or URL path.
"""

from __future__ import annotations

import codecs
import datetime
import difflib
import json
import math
import re
import reprlib
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from cloud_tasks.domain.tasks import Task, encoded_size
from cloud_tasks.exceptions import TaskFileError
from cloud_tasks.locations import parse_location

if TYPE_CHECKING:
    import yaml
    from yaml.nodes import MappingNode, Node

    from cloud_tasks.ports import TaskSource

TASK_FILE_SUFFIXES: tuple[str, ...] = (".json", ".yaml", ".yml")
#: Values one YAML task may stand for once its aliases are expanded (a task message is at most
#: a few MB, so a legitimate task is far below this).
MAX_YAML_TASK_NODES = 1_000_000

_CHUNK_BYTES = 1 << 20
# A decode error this close to the end of the buffer may only mean the value continues in the
# next chunk (a truncated literal, number or \uXXXX escape), not that the JSON is wrong.
_LOOKAHEAD_CHARS = 16
_NOT_JSON_SPACE = re.compile(r"[^ \t\n\r]")
_SEPARATOR = re.compile(r"[ \t\n\r]*,[ \t\n\r]*")
_KEYS = ("task_id", "data")
_MERGE_TAG = "tag:yaml.org,2002:merge"

_SHORT = reprlib.Repr()
_SHORT.maxstring = 40
_SHORT.maxother = 40
_SHORT.maxlist = 4
_SHORT.maxdict = 4
_SHORT.maxlevel = 2


def iter_tasks(path: str | Path, *, source: TaskSource | None = None) -> Iterator[Task]:
    """Yield the tasks of a JSON or YAML task file in file order, reading lazily.

    ``path`` is a local path or a URL (``s3://``, ``gs://``, ``http(s)://``); ``source`` opens
    it (default: the adapter ``bootstrap.make_task_source`` picks for its scheme). Each call
    reads the file once. The extension and the file's existence (and, for a remote file,
    access to it) are checked at once; everything else is checked as the tasks are read, so
    an error may come after some tasks were yielded. Call ``validate_task_file`` first when
    nothing may happen unless the whole file is valid.

    Raises:
        TaskFileError: the file is missing, forbidden, unreachable, unreadable, malformed, or
            has an invalid task or a duplicate task_id.
        CredentialsError: a cloud location was given and no credentials could be found.
    """
    location = parse_location(path)
    where = location.display
    suffix = location.suffix
    if suffix not in TASK_FILE_SUFFIXES:
        raise TaskFileError(
            f"{where}: unsupported task file extension {suffix or '(none)'!r}; "
            "use .json, .yaml or .yml"
        )
    if source is None:
        from cloud_tasks.bootstrap import make_task_source

        source = make_task_source(location)
    stream = source.open(location)
    if suffix == ".json":
        text = _JsonStream(stream, where)
        return _tasks(_json_records(text), text.line_at, stream, where, from_yaml=False)
    return _tasks(_yaml_records(stream, where), _same_line, stream, where, from_yaml=True)


def read_tasks(path: str | Path) -> list[Task]:
    """All tasks of a task file, fully validated."""
    return list(iter_tasks(path))


def validate_task_file(path: str | Path) -> int:
    """Check a whole task file without keeping its tasks; return the number of tasks.

    This is the pass to run before enqueuing anything: when it returns, every task is valid
    and every task_id unique.
    """
    count = 0
    for _task in iter_tasks(path):
        count += 1
    return count


def find_oversized(tasks: Iterable[Task], max_bytes: int) -> list[str]:
    """The ids of tasks whose queue message would be larger than ``max_bytes``, in order."""
    return [task.task_id for task in tasks if encoded_size(task) > max_bytes]


class _Located(Exception):
    """A problem with one task, before the file and line are attached."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


# A record source yields (index, value, position); a line function maps the position to the
# line, and must be called before the source advances.
_Records = Iterator[tuple[int, Any, int]]


def _same_line(line: int) -> int:
    return line


def _tasks(
    records: _Records,
    line_of: Callable[[int], int],
    stream: IO[bytes],
    where: str,
    *,
    from_yaml: bool,
) -> Iterator[Task]:
    seen: dict[str, int] = {}
    try:
        for index, value, position in records:
            # Fast path for the well-formed task; _make_task explains anything else.
            if (
                type(value) is dict
                and len(value) == 2
                and type(task_id := value.get("task_id")) is str
                and task_id
                and (task_id.isascii() or _is_unicode(task_id))
                and type(data := value.get("data")) is dict
                and not from_yaml
            ):
                task = Task(task_id, data)
            else:
                try:
                    task = _make_task(value, from_yaml=from_yaml)
                except _Located as exc:
                    raise TaskFileError(
                        _at(where, index, line_of(position)) + exc.problem
                    ) from None
            first = seen.setdefault(task.task_id, index)
            if first != index:
                raise TaskFileError(
                    _at(where, index, line_of(position))
                    + f"duplicate task_id {task.task_id!r} (first used by task index {first})"
                )
            yield task
    finally:
        stream.close()


def _at(where: str, index: int, line: int | None) -> str:
    return f"{where}, task index {index}" + (f" (line {line})" if line else "") + ": "


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {_SHORT.repr(value)}"
    if isinstance(value, int | float):
        return f"the number {value}"
    return f"{type(value).__name__} {_SHORT.repr(value)}"


def _make_task(value: Any, *, from_yaml: bool) -> Task:
    if not isinstance(value, dict):
        raise _Located(f"expected a mapping with task_id and data, got {_type_name(value)}")
    if len(value) != 2 or "task_id" not in value or "data" not in value:
        for key in value:
            if key not in _KEYS:
                match = difflib.get_close_matches(str(key), _KEYS, n=1)
                hint = f"; did you mean {match[0]!r}?" if match else ""
                raise _Located(
                    f"unknown key {_SHORT.repr(key)}{hint} (a task has only task_id and data)"
                )
        missing = next(key for key in _KEYS if key not in value)
        hint = " (use {} for a task without data)" if missing == "data" else ""
        raise _Located(f"missing key {missing!r}{hint}")
    task_id, data = value["task_id"], value["data"]
    if not isinstance(task_id, str):
        raise _Located(
            f"task_id must be a string, got {_type_name(task_id)}; quote it "
            f'("{_SHORT.repr(task_id)}")'
        )
    if not task_id:
        raise _Located("task_id must not be empty")
    if not _is_unicode(task_id):
        raise _Located(
            f"task_id {_SHORT.repr(task_id)} holds a lone surrogate (an unpaired \\ud800-"
            "\\udfff escape), which is not Unicode text and cannot be stored; fix the id"
        )
    if not isinstance(data, dict):
        raise _Located(f"data must be a mapping, got {_type_name(data)}")
    if from_yaml:
        problem = _json_problem(data, "data", set())
        if problem:
            raise _Located(problem)
    return Task(task_id, data)


_JSON_SCALARS = (str, int, bool, type(None))


def _is_unicode(text: str) -> bool:
    """False when ``text`` holds a lone surrogate (``"\\ud800"`` in JSON): not storable text."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _NotStorable(Exception):
    """Valid JSON syntax whose value cannot be stored as JSON (raised from decoder hooks)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _refuse_constant(name: str) -> Any:
    raise _NotStorable(f"{name} is not JSON (numbers must be finite); write null or a string")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NotStorable(
            f"the number {_SHORT.repr(text)} is too large for a float (it would become "
            "Infinity, which is not JSON); write it as a string"
        )
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _NotStorable(f"key {_SHORT.repr(key)} is given twice in one object")
            seen.add(key)
    return result


def _too_many_digits() -> str:
    return (
        f"an integer has more than {sys.get_int_max_str_digits()} digits, more than Python "
        "reads; write it as a string"
    )


def _json_problem(value: Any, path: str, checked: set[int]) -> str | None:
    """Why a YAML value cannot travel as JSON (a date, a set, binary, a non-string key)."""
    if isinstance(value, _JSON_SCALARS):
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return f"{path}: {value} is not JSON (numbers must be finite); write null or a string"
    if id(value) in checked:  # a YAML alias to an already checked value
        return None
    if isinstance(value, dict):
        checked.add(id(value))
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}: key {_SHORT.repr(key)} is not a string; quote it"
            problem = _json_problem(item, f"{path}.{key}", checked)
            if problem:
                return problem
        return None
    if isinstance(value, list):
        checked.add(id(value))
        for index, item in enumerate(value):
            problem = _json_problem(item, f"{path}[{index}]", checked)
            if problem:
                return problem
        return None
    if isinstance(value, datetime.date):
        return f"{path}: {value} is a date, which JSON cannot hold; quote it"
    kind = type(value).__name__
    return f"{path}: {_SHORT.repr(value)} is a {kind}, which JSON cannot hold; quote it"


class _JsonStream:
    """A growing text buffer over a binary file, with line numbers for any offset."""

    def __init__(self, stream: IO[bytes], where: str) -> None:
        self._stream = stream
        self.where = where
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._bytes_read = 0
        self._started = False
        self.eof = False
        self.buf = ""
        self.pos = 0
        self._lines_before = 0  # newlines in text already dropped from the buffer
        self._column_before = 0  # characters of the current line already dropped

    def line_at(self, pos: int) -> int:
        return self._lines_before + self.buf.count("\n", 0, pos) + 1

    def column_at(self, pos: int) -> int:
        newline = self.buf.rfind("\n", 0, pos)
        if newline < 0:
            return self._column_before + pos + 1
        return pos - newline

    def more(self, chars: int = _CHUNK_BYTES) -> bool:
        """Drop consumed text and append at least one more chunk; ``False`` at end of file."""
        if self.pos:
            newline = self.buf.rfind("\n", 0, self.pos)
            if newline < 0:
                self._column_before += self.pos
            else:
                self._lines_before += self.buf.count("\n", 0, self.pos)
                self._column_before = self.pos - newline - 1
            self.buf = self.buf[self.pos :]
            self.pos = 0
        while not self.eof:
            try:
                data = self._stream.read(max(chars, _CHUNK_BYTES))
            except OSError as exc:
                raise TaskFileError(
                    f"{self.where}: cannot read task file: {exc.strerror or exc}"
                ) from None
            try:
                text = self._decoder.decode(data, final=not data)
            except UnicodeDecodeError as exc:
                raise TaskFileError(
                    f"{self.where}: not UTF-8 text (bad byte near offset "
                    f"{self._bytes_read + exc.start}); is this a task file?"
                ) from None
            self._bytes_read += len(data)
            if not data:
                self.eof = True
            if not self._started and text:
                self._started = True
                text = text.removeprefix("\ufeff")
            if text:
                self.buf += text
                return True
        return False

    def next_char(self) -> str:
        """Skip JSON whitespace; the next character, or ``""`` at end of file."""
        while True:
            match = _NOT_JSON_SPACE.search(self.buf, self.pos)
            if match:
                self.pos = match.start()
                return self.buf[self.pos]
            self.pos = len(self.buf)
            if not self.more():
                return ""

    def fail(self, pos: int, problem: str, index: int | None = None) -> TaskFileError:
        place = f"line {self.line_at(pos)}, column {self.column_at(pos)}"
        if index is None:
            return TaskFileError(f"{self.where}, {place}: {problem}")
        return TaskFileError(f"{self.where}, task index {index} ({place}): {problem}")


def _json_records(source: _JsonStream) -> _Records:
    """Yield each element of the top-level JSON list, reading the file chunk by chunk."""
    first = source.next_char()
    if first == "":
        raise TaskFileError(
            f"{source.where}: the task file is empty; expected a JSON list of tasks"
        )
    if first != "[":
        if not first.isprintable():
            raise TaskFileError(
                f"{source.where}: does not start like a JSON list of tasks (a binary file?)"
            )
        got = {"{": "an object"}.get(first, repr(first))
        raise source.fail(source.pos, f"expected a JSON list of tasks at the top level, got {got}")
    source.pos += 1
    if source.next_char() == "]":
        source.pos += 1
    else:
        yield from _json_elements(source)
    if source.next_char():
        raise source.fail(source.pos, "unexpected text after the closing ']'")


def _json_elements(source: _JsonStream) -> _Records:
    """Yield the list's elements; ``source.pos`` is at the first one and ends after ']'."""
    # The decoder's scanner (C when available); typeshed does not declare the attribute.
    # NaN, Infinity, 1e999 and duplicate keys are valid to Python's parser but not storable JSON.
    decoder = json.JSONDecoder(
        object_pairs_hook=_unique_keys, parse_constant=_refuse_constant, parse_float=_finite_float
    )
    scan: Callable[[str, int], tuple[Any, int]] = decoder.scan_once  # type: ignore[attr-defined]
    separator = _SEPARATOR.match
    index = 0
    while True:
        buf, pos = source.buf, source.pos
        try:
            value, end = scan(buf, pos)
        except (json.JSONDecodeError, StopIteration) as exc:
            if isinstance(exc, StopIteration):
                message, error_pos = "Expecting value", int(exc.value)
            else:
                message, error_pos = exc.msg, exc.pos
            maybe_truncated = (
                message.startswith("Unterminated string")
                or error_pos >= len(buf) - _LOOKAHEAD_CHARS
            )
            if maybe_truncated and not source.eof:
                source.more(len(buf) - pos)  # grow by doubling: linear even for huge tasks
                continue
            raise source.fail(error_pos, f"invalid JSON: {message}", index) from None
        except RecursionError:
            raise source.fail(pos, "invalid JSON: nested too deeply", index) from None
        except _NotStorable as exc:
            raise source.fail(pos, exc.problem, index) from None
        except ValueError:
            # int() refuses more digits than sys.get_int_max_str_digits(); a prefix cut at the
            # end of the buffer already has that many, so the whole number is refused too.
            raise source.fail(pos, _too_many_digits(), index) from None
        if end >= len(buf) and not source.eof:
            source.more()  # a number or literal may continue in the next chunk
            continue
        yield index, value, pos
        # The common case, ", " then the next element in the same buffer, without a call.
        match = separator(buf, end)
        if match is not None and match.end() < len(buf) and buf[match.end()] != "]":
            source.pos = match.end()
            index += 1
            continue
        source.pos = end
        char = source.next_char()
        if char == ",":
            source.pos += 1
            if source.next_char() == "]":
                raise source.fail(source.pos, "trailing comma before ']'", index)
            index += 1
            continue
        if char == "]":
            source.pos += 1
            return
        if char == "":
            raise source.fail(source.pos, "the file ends before the closing ']'", index)
        raise source.fail(source.pos, f"expected ',' or ']' after the task, got {char!r}", index)


def _yaml_records(stream: IO[bytes], where: str) -> _Records:
    """Yield each element of the top-level YAML sequence with its line."""
    # Imported here: a JSON task file (and the worker reading one) needs no YAML parser.
    import yaml
    from yaml.nodes import MappingNode, SequenceNode

    from cloud_tasks.yaml_depth import TooDeep, check_yaml_depth

    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = stream.read()
    try:
        check_yaml_depth(data, loader_class)
    except TooDeep as exc:
        index = exc.item if exc.item is not None else 0
        raise TaskFileError(_at(where, index, exc.line) + exc.describe()) from None
    loader = loader_class(data)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as exc:
            raise TaskFileError(_yaml_error(exc, where)) from None
        if node is None:
            raise TaskFileError(f"{where}: the task file is empty; expected a YAML list of tasks")
        if not isinstance(node, SequenceNode):
            got = "a mapping" if isinstance(node, MappingNode) else "a single value"
            raise TaskFileError(
                f"{where}, line {node.start_mark.line + 1}: expected a list of tasks at the "
                f"top level, got {got}"
            )
        expanded: dict[int, int] = {}
        for index, item in enumerate(node.value):
            line = item.start_mark.line + 1
            try:
                size = _expanded_size(item, expanded)
            except RecursionError:
                raise TaskFileError(_at(where, index, line) + "nested too deeply") from None
            except _NotStorable as exc:
                raise TaskFileError(_at(where, index, line) + exc.problem) from None
            if size > MAX_YAML_TASK_NODES:
                raise TaskFileError(
                    _at(where, index, line)
                    + f"expands to more than {MAX_YAML_TASK_NODES} values through YAML aliases "
                    "(*name); write the data out or keep it in a file"
                )
            try:
                value = loader.construct_object(item, deep=True)
            except yaml.YAMLError as exc:
                raise TaskFileError(_at(where, index, line) + _yaml_error(exc, "")) from None
            except RecursionError:
                raise TaskFileError(_at(where, index, line) + "nested too deeply") from None
            except ValueError:
                raise TaskFileError(_at(where, index, line) + _too_many_digits()) from None
            yield index, value, line
    finally:
        loader.dispose()


def _expanded_size(node: Node, sizes: dict[int, int]) -> int:
    """How many values ``node`` stands for once every alias in it is expanded.

    Aliases share nodes, so a few lines of YAML can stand for billions of values (the "billion
    laughs"); each shared node is counted once and its size reused, so this stays linear in
    the size of the file.
    """
    from yaml.nodes import MappingNode, SequenceNode

    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = 1  # a recursive alias: PyYAML refuses it when constructing
    total = 1
    if isinstance(node, SequenceNode):
        total += sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, MappingNode):
        total += sum(
            _expanded_size(key, sizes) + _expanded_size(value, sizes) for key, value in node.value
        )
        _check_unique_keys(node)
    sizes[id(node)] = total
    return total


def _check_unique_keys(node: MappingNode) -> None:
    """Refuse a mapping that gives one key twice (YAML would keep the last silently)."""
    from yaml.nodes import ScalarNode

    seen: set[tuple[str, str]] = set()
    for key, _ in node.value:
        if isinstance(key, ScalarNode) and key.tag != _MERGE_TAG:
            spelled = (key.tag, key.value)
            if spelled in seen:
                raise _NotStorable(
                    f"key {_SHORT.repr(key.value)} is given twice in one mapping "
                    f"(line {key.start_mark.line + 1})"
                )
            seen.add(spelled)


def _yaml_error(exc: yaml.YAMLError, where: str) -> str:
    import yaml

    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if isinstance(exc, yaml.reader.ReaderError):
        problem = "not UTF-8 text or contains control characters; is this a task file?"
    place = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    prefix = f"{where}, " if where and place else (f"{where}: " if where else "")
    return f"{prefix}{place}invalid YAML: {problem}"

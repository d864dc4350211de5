"""Generated junk through the configuration and task-file loaders, in process.

Whatever the bytes or the structure, the loaders either accept the input or raise our
``ConfigError``/``TaskFileError``; nothing else (a ``KeyError``, a ``RecursionError``, a
YAML or JSON exception) ever escapes.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud_tasks.config import load_config
from cloud_tasks.config.schema import PROVIDER_OPTIONS, RUN_OPTIONS, SECTIONS
from cloud_tasks.exceptions import ConfigError, TaskFileError
from cloud_tasks.taskfile import read_tasks

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["no", "yes", "on", "1e3", "0x10", "~", "2024-01-02", "a*", "../x", ""]),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), children, max_size=4),
    ),
    max_leaves=12,
)
option_names = st.sampled_from(sorted(RUN_OPTIONS) + sorted(PROVIDER_OPTIONS)).map(
    lambda name: name.replace("_", "-") if len(name) % 2 else name
)
sections = st.dictionaries(st.one_of(option_names, st.text(max_size=10)), values, max_size=6)
configs = st.one_of(
    values,
    st.dictionaries(
        st.one_of(st.sampled_from(SECTIONS), st.text(max_size=8)),
        st.one_of(sections, values),
        max_size=4,
    ),
)
task_like = st.one_of(
    values,
    st.fixed_dictionaries({"task_id": values, "data": values}),
    st.fixed_dictionaries(
        {
            "task_id": st.text(max_size=6),
            "data": st.dictionaries(st.text(max_size=5), values, max_size=3),
        }
    ),
)
task_files = st.one_of(values, st.lists(task_like, max_size=6))


@contextmanager
def _file(suffix: str, content: bytes) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"junk{suffix}"
        path.write_bytes(content)
        yield path


def _dump_yaml(value: Any) -> bytes:
    return yaml.safe_dump(value, allow_unicode=True).encode()


def _dump_json(value: Any) -> bytes:
    return json.dumps(value, default=str).encode()


def _load_config(content: bytes) -> None:
    with _file(".yml", content) as path:
        try:
            load_config(path)
        except ConfigError as exc:
            assert str(exc).strip() and "\n" not in str(exc).strip()


def _read_tasks(suffix: str, content: bytes) -> None:
    with _file(suffix, content) as path:
        try:
            read_tasks(path)
        except TaskFileError as exc:
            assert str(path) in str(exc)


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_as_a_config(content: bytes) -> None:
    _load_config(content)


@FUZZ
@given(st.text(alphabet=st.sampled_from(list("ab:-_ \n\t[]{}&*!|>'\"#,.0123456789")), max_size=200))
def test_yaml_shaped_text_as_a_config(content: str) -> None:
    _load_config(content.encode())


@FUZZ
@given(configs)
def test_structured_junk_as_a_config(config: Any) -> None:
    _load_config(_dump_yaml(config))


@FUZZ
@given(st.sampled_from([".json", ".yaml", ".yml"]), st.binary(max_size=400))
def test_random_bytes_as_a_task_file(suffix: str, content: bytes) -> None:
    _read_tasks(suffix, content)


@FUZZ
@given(st.text(alphabet=st.sampled_from(list('[]{}",:- \n\ttask_iddata0123&*!')), max_size=200))
def test_json_and_yaml_shaped_text_as_a_task_file(content: str) -> None:
    _read_tasks(".json", content.encode())
    _read_tasks(".yaml", content.encode())


@FUZZ
@given(task_files)
def test_structured_junk_as_a_task_file(tasks: Any) -> None:
    _read_tasks(".json", _dump_json(tasks))
    _read_tasks(".yaml", _dump_yaml(tasks))

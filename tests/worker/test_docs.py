"""docs/worker.md: its Python examples run, and it documents every option."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cloud_tasks.entrypoints.worker.options import option_table, render_option_table

DOC = Path(__file__).parents[2] / "docs" / "worker.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_python_example_runs(index: int) -> None:
    namespace: dict[str, object] = {"__name__": f"docs_worker_example_{index}"}
    exec(compile(BLOCKS[index], f"{DOC}:block{index}", "exec"), namespace)


def test_every_option_and_variable_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert len(BLOCKS) >= 2
    for flags, env_names, _ in option_table():
        for name in [*flags.split(", "), *env_names.split(", ")]:
            assert name in text, name


def test_option_table_is_generated_from_the_option_table() -> None:
    assert render_option_table() in DOC.read_text(encoding="utf-8"), (
        "docs/worker.md is out of date: replace its option table with "
        "cloud_tasks.entrypoints.worker.options.render_option_table()"
    )

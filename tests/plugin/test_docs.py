"""Every ```python block of docs/testing.md runs as a test file of a throwaway project."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _blocks() -> list[str]:
    return _BLOCK.findall(DOC.read_text(encoding="utf-8"))


def _test_names(source: str) -> list[str]:
    tree = ast.parse(source)
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    ]


def test_every_option_has_an_example() -> None:
    text = DOC.read_text(encoding="utf-8")
    options = [
        "num_simultaneous_tasks",
        "max_runtime",
        "max_attempts",
        "retry_on_exception",
        "retry_on_exit",
        "retry_on_timeout",
        "spot_termination_after",
        "spot_termination_delay",
        "duplicate_delivery",
    ]
    code = "\n".join(_blocks())
    for option in options:
        assert f"### `{option}`" in text, option
        assert f"{option}=" in code, option


def test_python_examples_pass(pytester: pytest.Pytester) -> None:
    blocks = _blocks()
    assert len(blocks) >= 12
    expected = 0
    for index, source in enumerate(blocks):
        names = _test_names(source)
        assert names, f"block {index} of {DOC.name} has no test"
        expected += len(names)
        pytester.makepyfile(**{f"test_doc_block_{index:02d}": source})
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=expected)

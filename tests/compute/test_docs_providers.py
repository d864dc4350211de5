"""docs/providers.md: every ```python block runs and every ```yaml block loads."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

DOC = Path(__file__).resolve().parents[2] / "docs" / "providers.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_python_examples_run() -> None:
    blocks = _blocks("python")
    assert blocks
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {})


def test_yaml_examples_load() -> None:
    blocks = _blocks("yaml")
    assert len(blocks) >= 2
    for block in blocks:
        assert isinstance(yaml.safe_load(block), dict)


def test_the_permissions_check_verifies_are_listed() -> None:
    from cloud_tasks.adapters.aws.preflight import EC2_ACTIONS
    from cloud_tasks.adapters.gcp.preflight import PERMISSIONS

    text = DOC.read_text()
    for permission in (*EC2_ACTIONS, *PERMISSIONS):
        assert f"`{permission}`" in text, permission

"""docs/how-it-works.md names the modules where each rule lives: every one of them exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "how-it-works.md"
PACKAGE = ROOT / "src" / "cloud_tasks"
TESTS = ROOT / "tests"


def _named_paths() -> list[str]:
    return re.findall(r"`((?:[a-z_]+/)*[a-z_]+\.py)`", DOC.read_text(encoding="utf-8"))


def test_the_layers_section_names_modules() -> None:
    assert len(_named_paths()) >= 20


def test_every_module_the_doc_names_exists() -> None:
    missing = [
        path
        for path in _named_paths()
        if not (PACKAGE / path).is_file() and not (ROOT / path).is_file()
    ]
    assert missing == []


def _imports(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return re.findall(r"^\s*(?:from|import) (cloud_tasks[\w.]*)", text, flags=re.MULTILINE)


def test_imports_point_down_the_layers() -> None:
    upward = {
        "adapters": (
            "cloud_tasks.service_layer",
            "cloud_tasks.entrypoints",
            "cloud_tasks.bootstrap",
        ),
        "domain": (
            "cloud_tasks.service_layer",
            "cloud_tasks.entrypoints",
            "cloud_tasks.bootstrap",
            "cloud_tasks.adapters",
            "cloud_tasks.config",
        ),
        "service_layer": ("cloud_tasks.entrypoints",),
    }
    wrong = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for layer, banned in upward.items()
        for path in sorted((PACKAGE / layer).rglob("*.py"))
        for name in _imports(path)
        if name.startswith(banned)
    ]
    assert wrong == []

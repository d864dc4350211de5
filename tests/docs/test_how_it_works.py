"""docs/how-it-works.md names the modules where each rule lives: every one of them exists."""

from __future__ import annotations

import ast
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


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (inside functions and TYPE_CHECKING too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and not node.level:
            names.add(node.module)
    return names


def test_only_adapters_speak_sql() -> None:
    """SQL belongs to the SQLite adapters (``adapters/local/``): the service layer, the
    entry points and the domain ask them, by name, for plain values."""
    wrong = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if not path.relative_to(PACKAGE).as_posix().startswith("adapters/")
        and any(
            name == "sqlite3" or name.startswith("sqlite3.") for name in _imported_modules(path)
        )
    ]
    assert wrong == []


def test_the_sql_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from sqlite3 import connect\n    return connect\n")
    assert "sqlite3" in _imported_modules(module)

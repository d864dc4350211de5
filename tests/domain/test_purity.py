"""The domain stays pure: no I/O, clock, randomness or SDK can be imported into it (SPEC §1).

Every module under ``src/cloud_tasks/domain/`` is parsed with ``ast`` and every import, at any
depth (inside functions and ``TYPE_CHECKING`` blocks too), must be the standard library minus the
modules that reach the outside world, ``attrs``, ``cloud_tasks.domain`` or
``cloud_tasks.exceptions`` (itself stdlib-only, and the one hierarchy every layer raises).
Builtins that do I/O or import dynamically, and reading the clock through ``datetime``, are
refused too.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import cloud_tasks.domain

DOMAIN_DIR = Path(cloud_tasks.domain.__file__).parent
DOMAIN_PACKAGE = "cloud_tasks.domain"

BANNED_STDLIB = frozenset(
    {
        "os",
        "time",
        "random",
        "asyncio",
        "subprocess",
        "socket",
        "threading",
        # Also outside world, clocks, randomness or dynamic imports in other clothes.
        "_thread",
        "multiprocessing",
        "concurrent",
        "signal",
        "shutil",
        "tempfile",
        "glob",
        "secrets",
        "uuid",
        "urllib",
        "http",
        "ssl",
        "select",
        "selectors",
        "socketserver",
        "sqlite3",
        "importlib",
        "ctypes",
        "sched",
    }
)
ALLOWED_THIRD_PARTY = frozenset({"attrs", "attr"})
ALLOWED_PROJECT = ("cloud_tasks.domain", "cloud_tasks.exceptions")
BANNED_CALLS = frozenset({"open", "print", "input", "eval", "exec", "__import__", "breakpoint"})
CLOCK_READS = frozenset({"now", "utcnow", "today"})


def _resolve(node: ast.ImportFrom, module: str) -> str:
    if not node.level:
        return node.module or ""
    package = module.rsplit(".", node.level)[0]
    return f"{package}.{node.module}" if node.module else package


def _allowed(name: str) -> bool:
    top = name.split(".")[0]
    if name in ALLOWED_PROJECT or name.startswith(tuple(f"{p}." for p in ALLOWED_PROJECT)):
        return True
    if top in ALLOWED_THIRD_PARTY:
        return True
    return top in sys.stdlib_module_names and top not in BANNED_STDLIB and top != "cloud_tasks"


def purity_violations(source: str, module: str) -> list[str]:
    """Every impure import or call in ``source`` (the text of ``module``), as ``line: what``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [
                f"{node.lineno}: import {alias.name}"
                for alias in node.names
                if not _allowed(alias.name)
            ]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, module)
            if target == "__future__":
                continue
            if target in ("cloud_tasks", "cloud_tasks.domain"):
                # ``from cloud_tasks import adapters`` names the module in the imported names.
                bad = [a.name for a in node.names if not _allowed(f"{target}.{a.name}")]
            else:
                bad = [] if _allowed(target) else [a.name for a in node.names]
            if bad:
                found.append(f"{node.lineno}: from {target} import {', '.join(bad)}")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in BANNED_CALLS:
                found.append(f"{node.lineno}: call to {func.id}()")
            elif isinstance(func, ast.Attribute) and func.attr in CLOCK_READS:
                found.append(f"{node.lineno}: clock read .{func.attr}()")
    return found


def _domain_modules() -> list[tuple[str, Path]]:
    modules = []
    for path in sorted(DOMAIN_DIR.rglob("*.py")):
        relative = path.relative_to(DOMAIN_DIR).with_suffix("")
        parts = [p for p in relative.parts if p != "__init__"]
        # A package's own __init__ resolves relative imports against the package itself.
        name = ".".join([DOMAIN_PACKAGE, *parts]) + (".__init__" if path.stem == "__init__" else "")
        modules.append((name, path))
    return modules


def test_the_domain_has_modules_to_check() -> None:
    names = {name for name, _ in _domain_modules()}
    assert {"cloud_tasks.domain.selection", "cloud_tasks.domain.sizing"} <= names


@pytest.mark.parametrize(("module", "path"), _domain_modules(), ids=lambda v: str(v))
def test_domain_module_is_pure(module: str, path: Path) -> None:
    assert purity_violations(path.read_text(encoding="utf-8"), module) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import os", "1: import os"),
        ("import os.path", "1: import os.path"),
        ("from time import monotonic", "1: from time import monotonic"),
        ("import random as r", "1: import random"),
        ("import asyncio", "1: import asyncio"),
        ("import subprocess", "1: import subprocess"),
        ("import socket", "1: import socket"),
        ("import threading", "1: import threading"),
        ("import boto3", "1: import boto3"),
        ("from botocore.exceptions import ClientError", "1: from botocore.exceptions import"),
        ("from google.cloud import pubsub_v1", "1: from google.cloud import pubsub_v1"),
        ("import yaml", "1: import yaml"),
        ("import cattrs", "1: import cattrs"),
        ("from cloud_tasks.adapters.memory import queue", "1: from cloud_tasks.adapters.memory"),
        ("from cloud_tasks import adapters", "1: from cloud_tasks import adapters"),
        ("from .. import ports", "1: from cloud_tasks import ports"),
        ("from ..adapters import aws", "1: from cloud_tasks.adapters import aws"),
        ("def f():\n    import time\n    return time.time()", "2: import time"),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import os", "3: import os"),
        ("x = __import__('os')", "1: call to __import__()"),
        ("import importlib", "1: import importlib"),
        ("data = open('f').read()", "1: call to open()"),
        ("import datetime\nnow = datetime.datetime.now()", "2: clock read .now()"),
    ],
)
def test_the_checker_catches_impure_source(source: str, expected: str) -> None:
    found = purity_violations(source, "cloud_tasks.domain.example")
    assert len(found) == 1 and found[0].startswith(expected), found


def test_the_checker_accepts_pure_source() -> None:
    source = "\n".join(
        [
            "from __future__ import annotations",
            "import math, re, json, enum",
            "from collections.abc import Mapping",
            "import attrs",
            "from attr import Factory",
            "from cloud_tasks.domain.offers import InstanceOffer",
            "from cloud_tasks.exceptions import ConfigError",
            "from . import options",
            "from .constraints import InstanceConstraints",
            "from .. import exceptions",
            "from cloud_tasks.domain import selection",
        ]
    )
    assert purity_violations(source, "cloud_tasks.domain.example") == []

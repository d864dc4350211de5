"""The task-source adapters depend on the port and the domain only: no import circle.

Each adapter module is imported first in a fresh interpreter (an import circle fails there or
drags in the modules that use the port), and every import it makes, at any depth (inside
functions too, where the old circle hid), is checked against the layers it may use.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import cloud_tasks

SRC = Path(cloud_tasks.__file__).parent
ADAPTERS = (
    "cloud_tasks.adapters.local.taskfile",
    "cloud_tasks.adapters.aws.s3",
    "cloud_tasks.adapters.gcp.storage",
    "cloud_tasks.adapters.web.http",
)
#: What the port's users and the composition root are: an adapter importing one is a circle.
ABOVE = (
    "cloud_tasks.taskfile",
    "cloud_tasks.bootstrap",
    "cloud_tasks.sources",
    "cloud_tasks.service_layer",
    "cloud_tasks.entrypoints",
    "cloud_tasks.config",
)


def _imports(module: str) -> set[str]:
    path = SRC.joinpath(*module.split(".")[1:]).with_suffix(".py")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return {name for name in found if name.startswith("cloud_tasks")}


def _is_above(name: str) -> bool:
    return any(name == top or name.startswith(f"{top}.") for top in ABOVE)


@pytest.mark.parametrize("module", ADAPTERS)
def test_an_adapter_imports_no_user_of_the_port(module: str) -> None:
    assert not {name for name in _imports(module) if _is_above(name)}
    # ... nor does any project module it imports (the stream wrapper, the port, locations).
    for name in _imports(module) - {module}:
        if SRC.joinpath(*name.split(".")[1:]).with_suffix(".py").exists():
            assert not {n for n in _imports(name) if _is_above(n)}, name


@pytest.mark.parametrize("module", [*ADAPTERS, "cloud_tasks.ports", "cloud_tasks.locations"])
def test_each_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    code = (
        f"import sys, json, {module}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('cloud_tasks'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert module in loaded
    assert not [name for name in loaded if _is_above(name)]

"""YAML is only ever read with safe loaders: no tag can construct a Python object."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from cloud_tasks.config import load_config
from cloud_tasks.config.yamlfile import _ConfigLoader
from cloud_tasks.exceptions import ConfigError, TaskFileError
from cloud_tasks.taskfile import read_tasks

SRC = Path(__file__).resolve().parents[2] / "src" / "cloud_tasks"
#: Loaders allowed in yaml.load calls (each is, or derives from, yaml.SafeLoader).
SAFE_LOADERS = {"_ConfigLoader", "yaml.SafeLoader", "yaml.CSafeLoader", "SafeLoader"}
UNSAFE = {
    "unsafe_load",
    "unsafe_load_all",
    "full_load",
    "full_load_all",
    "Loader",
    "FullLoader",
    "UnsafeLoader",
    "CLoader",
    "CFullLoader",
    "CUnsafeLoader",
}
PAYLOAD = '!!python/object/apply:os.system ["touch pwned"]'


def test_the_source_calls_yaml_only_with_safe_loaders() -> None:
    calls = 0
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "yaml"
            ):
                continue
            where = f"{path.relative_to(SRC)}:{node.lineno}"
            assert node.attr not in UNSAFE, f"unsafe yaml.{node.attr} at {where}"
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("load", "load_all")
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "yaml"
            ):
                calls += 1
                loader = {k.arg: ast.unparse(k.value) for k in node.keywords}.get("Loader")
                assert loader in SAFE_LOADERS, f"{path}:{node.lineno} loads YAML with {loader}"
    assert calls >= 1  # the scan looked at the real loading code
    assert issubclass(_ConfigLoader, yaml.SafeLoader)


def test_a_python_tag_in_a_config_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(f"provider: local\nlocal:\n  job_id: safe\n  max_instances: {PAYLOAD}\n")
    with pytest.raises(ConfigError, match="could not determine a constructor"):
        load_config(config)
    assert not Path("pwned").exists() and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "tag", [PAYLOAD, "!!python/name:os.system", '!!python/object/new:os.system ["touch pwned"]']
)
def test_a_python_tag_in_a_task_file_is_refused(tmp_path: Path, tag: str) -> None:
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(f"- task_id: a\n  data:\n    x: {tag}\n")
    with pytest.raises(TaskFileError, match="could not determine a constructor"):
        read_tasks(tasks)
    assert not Path("pwned").exists()

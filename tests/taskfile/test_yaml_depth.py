"""The YAML nesting limit answers the same under libyaml and the pure-Python loader."""

from __future__ import annotations

import pytest
import yaml

from cloud_tasks.yaml_depth import MAX_YAML_DEPTH, TooDeep, check_yaml_depth

LOADERS = [yaml.SafeLoader]
if getattr(yaml, "CSafeLoader", None) is not None:
    LOADERS.append(yaml.CSafeLoader)


def _nested(depth: int) -> str:
    return "- task_id: a\n  data: {x: " + "[" * depth + "1" + "]" * depth + "}\n"


@pytest.mark.parametrize("loader", LOADERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("depth", [MAX_YAML_DEPTH + 1, 1_500, 50_000])
def test_too_deep_is_refused_with_its_position(loader: type, depth: int) -> None:
    with pytest.raises(TooDeep) as caught:
        check_yaml_depth(_nested(depth), loader)
    assert caught.value.line == 2
    assert caught.value.item == 0
    assert "nested more than" in caught.value.describe()


@pytest.mark.parametrize("loader", LOADERS, ids=lambda c: c.__name__)
def test_the_deepest_allowed_document_loads_without_recursion_error(loader: type) -> None:
    text = _nested(MAX_YAML_DEPTH - 3)  # list, mapping and the data's own mapping come first
    check_yaml_depth(text, loader)
    value = yaml.load(text, Loader=loader)
    depth = 0
    inner = value[0]["data"]["x"]
    while isinstance(inner, list):
        inner, depth = inner[0], depth + 1
    assert depth == MAX_YAML_DEPTH - 3


@pytest.mark.parametrize("loader", LOADERS, ids=lambda c: c.__name__)
def test_syntax_errors_are_left_to_the_loader(loader: type) -> None:
    check_yaml_depth("- [1, 2\n- {", loader)  # no exception: the loader reports it with a mark

"""docs/configuration.md: the option table matches the code, and every example loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cloud_tasks.config import PROVIDER_OPTIONS, RUN_OPTIONS, load_config, render_option_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(), re.S | re.M)


def test_option_table_is_generated_from_the_value_objects() -> None:
    text = DOC.read_text()
    start = text.index("-->\n", text.index("<!-- option-table")) + len("-->\n")
    end = text.index("<!-- end option-table -->")
    assert text[start:end] == render_option_table(), (
        "docs/configuration.md is out of date: replace the table with "
        "cloud_tasks.config.render_option_table()"
    )


def test_every_option_is_documented_with_help() -> None:
    text = DOC.read_text()
    for spec in (*RUN_OPTIONS.values(), *PROVIDER_OPTIONS.values()):
        assert f"| `{spec.name}` |" in text
        assert spec.help, f"{spec.name} has no help text"


@pytest.mark.parametrize("block", _blocks("yaml"))
def test_every_yaml_example_loads(block: str) -> None:
    Path("startup.sh").write_text("#!/bin/bash\npython3 my_worker.py\n")
    Path("myconfig.yml").write_text(block)
    config = load_config("myconfig.yml", cli_overrides={})
    assert config.source == "myconfig.yml"


def test_precedence_example_prints_the_documented_notices() -> None:
    example = next(b for b in _blocks("yaml") if "min_cpu: 2" in b)
    notices = next(b for b in _blocks("text") if "overrides" in b)
    Path("myconfig.yml").write_text(example)
    config = load_config("myconfig.yml", cli_overrides={"max_cpu": 12})
    assert config.run.constraints.min_cpu == 8
    assert config.run.constraints.max_cpu == 12
    assert list(config.notices) == notices.strip().splitlines()


def test_documented_error_messages_are_real() -> None:
    errors = next(b for b in _blocks("text") if "expected an integer" in b).splitlines()
    cases = [
        ("gcp:\n  max_instances: 2.5\n", {}),
        ("run:\n  min_cpu: 8\n  max_cpu: 4\n", {}),
        ("", {"job_id": "My_Job"}),
        ("run:\n  max_cpu: 1\n\n\n\ngcp:\n  zone: a: b\n", {}),
    ]
    for expected, (text, overrides) in zip(errors, cases, strict=True):
        Path("myconfig.yml").write_text(text)
        with pytest.raises(Exception, match=re.escape(expected)):
            load_config("myconfig.yml", cli_overrides=overrides)

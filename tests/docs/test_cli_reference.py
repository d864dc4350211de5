"""docs/cli.md is the commands' own help, regenerated; every SPEC §11 command is in it."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_main import SPEC_COMMANDS
from tests.docs.cli_reference import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_reference_matches_the_commands() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/cli.md is stale: run `python -m tests.docs.cli_reference > docs/cli.md`"
    )


def test_every_spec_command_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for command in SPEC_COMMANDS:
        assert f"## `{command}`" in text

"""docs/reliability.md: every test it cites exists, and its example behaves as it says."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from cloud_tasks.config import load_config
from cloud_tasks.redact import redact_startup_script

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"


def test_every_cited_test_exists() -> None:
    text = DOC.read_text()
    cited = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", text)
    assert len(cited) >= 20
    for path, name in cited:
        tree = ast.parse((ROOT / path).read_text())
        names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert name in names, f"{path}::{name} is cited in {DOC.name} but does not exist"


def test_the_secret_example(tmp_path: Path) -> None:
    block = re.search(r"```yaml\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert block is not None
    config_file = tmp_path / "config.yml"
    config_file.write_text(block.group(1))
    script = load_config(config_file).run.startup_script
    assert script is not None
    shown = redact_startup_script(script)
    assert "export API_TOKEN=***\n" in shown
    assert "export DB_URL=***  # cloud_tasks: secret\n" in shown
    assert "export RESULTS_BUCKET=my-results\n" in shown
    assert "abc123secret" not in shown and "user:pw" not in shown

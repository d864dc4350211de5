"""Every numeric option has one sane range (SPEC §4), checked the same way everywhere."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud_tasks.config import RUN_OPTIONS, load_config
from cloud_tasks.domain.option_schema import OPTIONS
from cloud_tasks.domain.ranges import RANGES, range_problem
from cloud_tasks.entrypoints.worker.options import parse_worker_options
from cloud_tasks.exceptions import ConfigError

WORKER_OPTIONS = [option for option in OPTIONS if option.worker_flags]
WORKER_NUMBERS = [spec.name for spec in WORKER_OPTIONS if spec.kind in ("int", "float")]
CONFIG_NUMBERS = [name for name, spec in RUN_OPTIONS.items() if spec.kind in ("int", "float")]
DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_numeric_option_has_a_range() -> None:
    missing = [n for n in [*CONFIG_NUMBERS, *WORKER_NUMBERS] if n not in RANGES]
    assert missing == []


@pytest.mark.parametrize("name", CONFIG_NUMBERS)
def test_defaults_are_in_range(name: str) -> None:
    default = RUN_OPTIONS[name].default
    if default is not None:
        assert range_problem(name, default) is None


@pytest.mark.parametrize("name", sorted(RANGES))
@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -math.inf, 1e300, -1, 10**5000],
    ids=["nan", "inf", "-inf", "1e300", "-1", "5001-digits"],
)
def test_extremes_are_refused_everywhere(name: str, value: float) -> None:
    problem = range_problem(name, value)
    assert problem is not None
    assert len(problem) < 160  # one readable line, even for a 5,000-digit number


@given(st.sampled_from(sorted(RANGES)), st.floats(allow_nan=False, allow_infinity=False))
def test_in_range_exactly_when_inside_the_bounds(name: str, value: float) -> None:
    bounds = RANGES[name]
    low_ok = value > bounds.low if bounds.above_low else value >= bounds.low
    low_ok = low_ok or (bounds.or_zero and value == 0)
    assert (range_problem(name, value) is None) == (low_ok and value <= bounds.high)


@pytest.mark.parametrize(
    ("yaml_text", "fragment"),
    [
        # 25 days overflowed the fork server's poll timeout: the job sat at 0 done.
        ("max_runtime: 2160000", "run.max_runtime: must be greater than 0 and at most 604800"),
        # Made every task fail with exit code 70 (setrlimit overflow).
        ("max_memory_allowed_per_task: 1.0e+300", "run.max_memory_allowed_per_task: must be"),
        # ~10^300 tasks per instance and an endless crash loop of instances.
        ("cpus_per_task: 1.0e-300", "run.cpus_per_task: must be from 0.01 to 10000 vCPUs"),
        ("max_instances: " + "9" * 5000, "a number has more digits than Python reads"),
        ("max_instances: " + "9" * 40, "run.max_instances: must be from 0 to 100000"),
        ("keepalive_interval: .nan", "expected a finite number"),
        ("scaling_check_interval: 0", "run.scaling_check_interval: must be from 0.1 to 86400"),
        # A keep-alive or a lease renewal every nanosecond would spin; 0 still means off.
        ("keepalive_interval: 1.0e-9", "run.keepalive_interval: must be 0 (off) or from 0.1"),
        ("keepalive_timeout: 0.001", "run.keepalive_timeout: must be 0 (off) or from 1 to"),
    ],
)
def test_config_refuses_out_of_range_values(tmp_path: Path, yaml_text: str, fragment: str) -> None:
    path = tmp_path / "c.yml"
    path.write_text(f"run:\n  {yaml_text}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert fragment in message and "\n" not in message and len(message) < 200


def test_flags_share_the_config_ranges() -> None:
    with pytest.raises(ConfigError, match=r"^--max-runtime: must be greater than 0 and at most"):
        load_config(None, cli_overrides={"max_runtime": 25 * 86400.0})


@pytest.mark.parametrize(
    ("args", "environ", "fragment"),
    [
        (["--max-runtime", "nan"], {}, "--max-runtime: must be a finite number, not NaN"),
        (["--keepalive-interval", "inf"], {}, "--keepalive-interval: must be a finite number"),
        (["--tasks-to-skip", "9" * 30], {}, "--tasks-to-skip: must be from 0 to"),
        (["--max-runtime", "2160000"], {}, "--max-runtime: must be greater than 0 and at most"),
        ([], {"RMS_CLOUD_TASKS_MAX_RUNTIME": "1e400"}, "RMS_CLOUD_TASKS_MAX_RUNTIME: must be"),
        ([], {"RMS_CLOUD_TASKS_TO_SKIP": "1" + "0" * 20}, "RMS_CLOUD_TASKS_TO_SKIP: must be"),
        (
            [],
            {"RMS_CLOUD_TASKS_MAX_MEMORY_ALLOWED_PER_TASK": "1e300"},
            "RMS_CLOUD_TASKS_MAX_MEMORY_ALLOWED_PER_TASK: must be from 0.01 to",
        ),
        ([], {"RMS_CLOUD_TASKS_VISIBILITY_TIMEOUT": "-inf"}, "must be a finite number"),
        (["--visibility-timeout", "1e-9"], {}, "--visibility-timeout: must be from 0.1 to"),
        (["--keepalive-interval", "1e-9"], {}, "must be 0 (off) or from 0.1 to 86400"),
    ],
)
def test_worker_options_refuse_out_of_range_values(
    args: list[str], environ: dict[str, str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        parse_worker_options(["--tasks", "t.json", *args], environ, prog="worker")
    assert caught.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and fragment in errors[0], errors


def test_docs_list_every_range() -> None:
    config = (DOCS / "configuration.md").read_text()
    worker = (DOCS / "worker.md").read_text().splitlines()
    for name in CONFIG_NUMBERS:
        interval = re.escape(RANGES[name].interval())
        assert re.search(rf"\| `{name}` \| [^|]+ \| `{interval}` \|", config), name
    for spec in WORKER_OPTIONS:
        if spec.name in WORKER_NUMBERS:
            row = next(line for line in worker if line.startswith(f"| `{spec.worker_flags[0]}"))
            assert f"`{RANGES[spec.name].interval()}`" in row

"""The shared click options, exercised through a small command with CliRunner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from cloud_tasks.config import RUN_OPTIONS
from cloud_tasks.entrypoints.cli.options import (
    RUN_FLAGS,
    common_options,
    format_option,
    resolve_config,
    run_options,
    verbosity,
)
from cloud_tasks.exceptions import ConfigError


@click.command()
@common_options
@run_options
@format_option
@click.option("--tasks", default=None)
def show(**params: Any) -> None:
    """Print the resolved configuration's interesting parts as JSON."""
    config = resolve_config(**params)
    click.echo(
        json.dumps(
            {
                "provider": config.provider,
                "section": config.section,
                "job_id": config.provider_options.job_id,
                "max_instances": config.run.limits.max_instances,
                "max_cpu": config.run.constraints.max_cpu,
                "use_spot": config.run.constraints.use_spot,
                "instance_types": list(config.run.constraints.instance_types),
                "max_runtime": config.run.max_runtime,
                "notices": list(config.notices),
                "format": params["output_format"],
                "verbosity": verbosity(params),
                "tasks": params["tasks"],
            }
        )
    )


def _run(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(show, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)  # type: ignore[no-any-return]


def test_defaults_without_flags() -> None:
    out = _run()
    assert out["provider"] == "local"
    assert out["max_instances"] == 10
    assert out["use_spot"] is False
    assert out["format"] == "text"
    assert out["verbosity"] == 0
    assert out["notices"] == []


def test_flags_override_the_file_and_say_so() -> None:
    Path("c.yml").write_text("provider: gcp\ngcp:\n  max_cpu: 8\n  max_instances: 3\n")
    out = _run("--config", "c.yml", "--max-cpu", "4", "--use-spot", "--max-runtime", "7")
    assert out["max_cpu"] == 4
    assert out["max_instances"] == 3  # not passed: the file's value stands
    assert out["use_spot"] is True
    assert out["max_runtime"] == 7.0
    assert out["notices"] == ["--max-cpu=4 overrides gcp.max_cpu=8"]


def test_no_form_of_a_boolean_overrides_true() -> None:
    Path("c.yml").write_text("run:\n  use_spot: true\n")
    assert _run("--config", "c.yml")["use_spot"] is True
    assert _run("--config", "c.yml", "--no-use-spot")["use_spot"] is False


def test_repeatable_list_flag_and_provider_case() -> None:
    out = _run("--provider", "GCP", "--instance-types", "n2-", "--instance-types", "^e2-")
    assert out["provider"] == "gcp"
    assert out["instance_types"] == ["n2-", "^e2-"]


def test_common_flags_format_and_verbosity() -> None:
    out = _run("--job-id", "abc", "--format", "json", "-vv", "--tasks", "t.json")
    assert out["job_id"] == "abc"
    assert out["format"] == "json"
    assert out["verbosity"] == 2
    assert out["tasks"] == "t.json"
    assert _run("-q")["verbosity"] == -1


def test_memory_provider_flag_plans_the_configured_cloud() -> None:
    Path("c.yml").write_text("provider: aws\naws:\n  max_instances: 4\n")
    out = _run("--config", "c.yml", "--provider", "memory")
    assert (out["provider"], out["section"], out["max_instances"]) == ("memory", "aws", 4)


def test_bad_flag_value_is_a_config_error_naming_the_flag() -> None:
    result = CliRunner().invoke(show, ["--job-id", "Bad_Id"])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == "--job-id: 'Bad_Id' must start with a lowercase letter"


def test_bad_file_is_a_config_error_naming_the_file() -> None:
    Path("c.yml").write_text("run:\n  max_instances: many\n")
    result = CliRunner().invoke(show, ["--config", "c.yml"])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == ("run.max_instances: expected an integer, got 'many' (c.yml)")


def test_wrong_flag_type_is_a_usage_error() -> None:
    result = CliRunner().invoke(show, ["--max-instances", "2.5"])
    assert result.exit_code == 2
    assert "'2.5' is not a valid integer" in result.output


def test_help_lists_every_run_option_but_startup_script() -> None:
    result = CliRunner().invoke(show, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for name in RUN_OPTIONS:
        flag = "--" + name.replace("_", "-")
        if name == "startup_script":
            assert f"{flag} " not in result.output
        else:
            assert flag in result.output, flag
    assert set(RUN_FLAGS) == set(RUN_OPTIONS) - {"startup_script"}
    for flag in (
        "--config",
        "--provider",
        "--queue-name",
        "--region",
        "--zone",
        "--project-id",
        "--credentials-file",
        "--verbose",
        "--quiet",
        "--format",
    ):
        assert flag in result.output


def test_boolean_flags_have_a_no_form() -> None:
    params = {p.name: p for p in show.params}
    use_spot = params["use_spot"]
    assert isinstance(use_spot, click.Option)
    assert use_spot.secondary_opts == ["--no-use-spot"]
    assert use_spot.default is None


@pytest.mark.parametrize("name", ["max_instances", "max_runtime", "cpu_family"])
def test_scalar_flags_default_to_not_passed(name: str) -> None:
    params = {p.name: p for p in show.params}
    assert params[name].default is None

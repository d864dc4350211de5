"""``cloud_tasks simulate`` through click's CliRunner: text, JSON, task files, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cloud_tasks.entrypoints.cli.main import cli, main

CONFIG = "provider: gcp\ngcp:\n  job_id: sim\n  use_spot: true\n  max_instances: 3\n  max_cpu: 4\n"


def _invoke(*args: str) -> tuple[int, str, str]:
    Path("c.yml").write_text(CONFIG)
    result = CliRunner().invoke(cli, ["simulate", "--config", "c.yml", *args])
    return result.exit_code, result.stdout, result.stderr


def test_json_output_has_the_documented_keys_and_repeats_per_seed() -> None:
    args = (
        "--num-tasks",
        "300",
        "--task-duration",
        "lognormal:4,0.5",
        "--preemption-rate",
        "2",
        "--seed",
        "7",
        "--format",
        "json",
    )
    code, out, err = _invoke(*args)
    assert code == 0, err
    data = json.loads(out)
    for key in (
        "makespan_s",
        "cost_usd",
        "lower_bound_usd",
        "cost_ratio",
        "instance_hours",
        "retries",
        "preemptions",
        "utilisation",
        "instance_type",
        "max_instances",
    ):
        assert key in data
    assert data["status"] == "completed" and data["completed"] == 300
    assert data["instance_type"].startswith(("e2-", "n2", "n1-", "c2", "t2", "n4", "c3", "c4"))
    assert data["region"].startswith("us-")  # the gcp part of the catalog
    assert data["max_instances"] <= 3 and data["preemptions"] > 0
    assert abs(data["cost_ratio"] - data["cost_usd"] / data["lower_bound_usd"]) < 1e-3
    assert _invoke(*args)[1] == out
    assert json.loads(_invoke(*args[:-3], "8", "--format", "json")[1]) != data


def test_text_output_and_flag_overrides() -> None:
    code, out, err = _invoke("--num-tasks", "50", "--task-duration", "60", "--max-instances", "2")
    assert code == 0, err
    assert "Simulated 50 tasks (60 s), seed 0" in out
    assert "Pool:        2 x " in out and "limited by max_instances" in out
    assert "completed: 50 completed, 0 failed" in out
    assert "--max-instances=2 overrides gcp.max_instances=3" in err


def test_tasks_from_a_task_file() -> None:
    Path("tasks.json").write_text(
        json.dumps([{"task_id": f"t{i}", "data": {"i": i}} for i in range(25)])
    )
    code, out, err = _invoke(
        "--tasks", "tasks.json", "--task-duration", "uniform:10,20", "--format", "json"
    )
    assert code == 0, err
    assert json.loads(out)["completed"] == 25


def test_a_task_the_simulated_clouds_queue_refuses_is_refused_as_run_refuses_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """300 KB fit a Pub/Sub message but not an SQS one: simulate says what 'run' would."""
    big = [{"task_id": "big-one", "data": {"x": "y" * 300_000}}, {"task_id": "small", "data": {}}]
    Path("tasks.json").write_text(json.dumps(big))
    code, out, err = _invoke("--tasks", "tasks.json", "--task-duration", "10", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["completed"] == 2
    Path("aws.yml").write_text(CONFIG.replace("gcp", "aws"))
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--config", "aws.yml", "--tasks", "tasks.json", "--task-duration", "10"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert "larger than the queue's 262144-byte message limit ('big-one')" in err
    assert len(err.strip().splitlines()) == 1
    Path("tasks.json").write_text("[]")
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--config", "aws.yml", "--tasks", "tasks.json", "--task-duration", "10"])
    assert exit_info.value.code == 1 and "holds no tasks" in capsys.readouterr().err


def _fails(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run the real entry point (its error handling included); exit code and stderr."""
    Path("c.yml").write_text(CONFIG)
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--config", "c.yml", *args])
    return int(exit_info.value.code or 0), capsys.readouterr().err


def test_bad_input_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _fails(capsys, "--num-tasks", "5", "--task-duration", "lognormal:4")
    assert code == 1 and "lognormal:4: expected 2 numbers" in err
    code, err = _fails(capsys, "--num-tasks", "5", "--task-duration", "missing.txt")
    assert code == 1 and "not a number, uniform:A,B, lognormal:MU,SIGMA or a readable file" in err
    code, err = _fails(capsys, "--task-duration", "5")
    assert code == 2 and "exactly one of --tasks FILE and --num-tasks N" in err
    code, err = _fails(capsys, "--num-tasks", "5", "--task-duration", "5", "--provider", "aws")
    assert code == 2 and "always runs on the memory provider" in err
    code, err = _fails(capsys, "--num-tasks", "5", "--task-duration", "5", "--min-cpu", "4096")
    assert code == 1 and err.startswith("Error:") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--num-tasks", "5", "--task-duration", "1e300"), "from 0 to 604800 seconds"),
        (("--num-tasks", "5", "--task-duration", "lognormal:40,1"), "a task duration must be"),
        (("--num-tasks", "10000", "--task-duration", "86400"), "a simulation covers"),
        (("--num-tasks", "10000000000", "--task-duration", "1"), "--num-tasks: must be from 1"),
        (("--num-tasks", "5", "--task-duration", "1", "--boot-time", "inf"), "--boot-time"),
        (("--num-tasks", "5", "--task-duration", "1", "--preemption-rate", "nan"), "NaN"),
        (("--num-tasks", "5", "--task-duration", "1", "--max-runtime", "1e9"), "--max-runtime"),
    ],
)
def test_hostile_numbers_are_refused_at_once(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], fragment: str
) -> None:
    # Each of these used to run for hours of CPU (or forever) before saying anything.
    code, err = _fails(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("Error:"), err
    assert fragment in lines[0]

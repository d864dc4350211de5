"""The simulate command: what-if runs of the pool manager on virtual time (SPEC §9, §11)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from cloud_tasks.entrypoints.cli.options import (
    common_options,
    format_option,
    resolve_config,
    run_options,
    verbosity,
)
from cloud_tasks.exceptions import ConfigError


@click.command(
    "simulate",
    epilog="Example: cloud_tasks simulate --config myconfig.yml --num-tasks 100000 "
    "--task-duration lognormal:5,0.8 --preemption-rate 0.1 --seed 1",
)
@common_options
@run_options
@click.option(
    "--tasks",
    "--task-file",
    "tasks_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Task file (JSON or YAML) whose tasks are simulated; their data is not used.",
)
@click.option(
    "--num-tasks",
    type=click.IntRange(min=1),
    default=None,
    help="Simulate this many tasks instead of a task file.",
)
@click.option(
    "--task-duration",
    "task_duration",
    required=True,
    help="Seconds per task: a number (90), uniform:LOW,HIGH, lognormal:MU,SIGMA (median e^MU "
    "seconds), or a file of measured durations (one number per line, a JSON list, the event "
    "file of 'run --output-file', or 'status --format json' output).",
)
@click.option(
    "--preemption-rate",
    type=click.FloatRange(min=0.0),
    default=0.0,
    show_default=True,
    help="Spot preemptions per instance per hour (Poisson); 0.1 = 10%/h.",
)
@click.option(
    "--pool-preemption-rate",
    type=click.FloatRange(min=0.0),
    default=0.0,
    show_default=True,
    help="Spot reclaim waves per capacity pool (one type in one zone) per hour; a wave "
    "takes every spot instance of its pool at once.",
)
@click.option(
    "--compare-spread",
    is_flag=True,
    help="Also simulate the same job (same seed) with every instance in the best pool "
    "(spot_spread_tolerance 0) and print both.",
)
@click.option(
    "--boot-time",
    type=click.FloatRange(min=0.0),
    default=30.0,
    show_default=True,
    help="Seconds from starting an instance until its worker takes tasks.",
)
@click.option(
    "--slow-instances",
    default=None,
    metavar="FRACTION:FACTOR",
    help="Model slow hosts: that fraction of the instances runs every task FACTOR times "
    "slower (0.05:4 = 5% of instances, 4x slower). Pair with --speculative-after.",
)
@click.option(
    "--failure-rate",
    type=click.FloatRange(min=0.0, max=1.0),
    default=0.0,
    show_default=True,
    help="Chance that an attempt of a task fails (drawn per task and attempt from the seed); "
    "the run's retry options decide what happens next (max_attempts, retry_on_exception, ...).",
)
@click.option(
    "--failure-kind",
    type=click.Choice(["fail", "exception", "exit", "timeout", "memory"]),
    default="exception",
    show_default=True,
    help="How the --failure-rate failures end: fail (process_task returned False), exception, "
    "exit, timeout (the attempt runs max_runtime) or memory.",
)
@click.option(
    "--outcomes",
    "outcomes_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="File of outcomes: one task per line, 'TASK_ID OUTCOME[,OUTCOME...]' (attempt 1, "
    "2, ...; the last repeats), outcomes success, fail, exception, exit, timeout, memory; "
    "or a JSON object. Listed tasks ignore --failure-rate.",
)
@click.option(
    "--capacity-error",
    "capacity_errors",
    multiple=True,
    metavar="TYPE[@ZONE][:FRACTION]",
    help="Launches of instance types matching TYPE (a regular expression; * = every type) in "
    "ZONE (default every zone) fail with a capacity error, FRACTION of the time (default "
    "always), so the pool falls back to other zones and types. Repeatable.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Random seed: the same seed gives the same simulation.",
)
@format_option
def simulate_command(**params: Any) -> None:
    """Simulate a job on virtual time: makespan, cost, retries, against the lower bound.

    Runs the same pool manager as 'run' against the memory provider: instance type, pool size
    and every run option come from the configuration (a config for aws or gcp uses that
    cloud's part of the bundled catalog). Instances boot after --boot-time and spot instances
    are preempted at --preemption-rate; each task takes a duration drawn from --task-duration,
    and fails as --failure-rate and --outcomes say, with the run's retry rules. Nothing is
    started anywhere.
    """
    from cloud_tasks.domain.simulated_outcomes import FailureModel, outcome_word
    from cloud_tasks.service_layer.simulation import (
        duration_model_from_option,
        format_result,
        outcomes_from_option,
        parse_capacity_error,
        parse_slow_instances,
        simulate,
    )

    provider = params.get("provider")
    if provider is not None and provider.lower() != "memory":
        raise click.UsageError(
            f"--provider {provider}: simulate always runs on the memory provider; leave "
            "--provider out (a config for aws or gcp is simulated with that cloud's catalog)"
        )
    slow_text = params.pop("slow_instances")
    slow = parse_slow_instances(slow_text) if slow_text is not None else None
    capacity_errors = [parse_capacity_error(text) for text in params.pop("capacity_errors")]
    outcomes_file = params.pop("outcomes_file")
    failures = FailureModel(
        params.pop("failure_rate"),
        outcome_word(params.pop("failure_kind"), "--failure-kind"),
        outcomes_from_option(str(outcomes_file)) if outcomes_file is not None else {},
    )
    tasks_file = params.pop("tasks_file")
    num_tasks = params.pop("num_tasks")
    if (tasks_file is None) == (num_tasks is None):
        raise click.UsageError("give exactly one of --tasks FILE and --num-tasks N")
    params["provider"] = "memory"
    config = resolve_config(**params)
    as_json = params["output_format"] == "json"
    level = verbosity(params)
    if not as_json and level >= 0:
        for notice in config.notices:
            # Running on the memory provider is what simulate does, not an override to report.
            if not notice.startswith("--provider=memory overrides"):
                click.echo(notice, err=True)
    duration = duration_model_from_option(params["task_duration"])
    tasks = None
    if tasks_file is not None:
        from cloud_tasks.bootstrap import cloud_message_limit
        from cloud_tasks.domain.tasks import Task
        from cloud_tasks.service_layer.taskload import read_task_file

        # Only the ids are simulated, but a task the simulated cloud's queue would refuse
        # makes 'run' refuse the file: simulate refuses it the same way.
        tasks = []
        read_task_file(
            str(tasks_file),
            max_message_bytes=cloud_message_limit(config),
            on_task=lambda task: tasks.append(Task(task.task_id)),
        )

    def simulated(job: Any) -> Any:
        return simulate(
            job,
            duration=duration,
            tasks=tasks,
            num_tasks=num_tasks,
            preemption_rate_per_hour=params["preemption_rate"],
            pool_preemption_rate_per_hour=params["pool_preemption_rate"],
            boot_time_s=params["boot_time"],
            seed=params["seed"],
            slow_instances=slow,
            failures=failures,
            capacity_errors=capacity_errors,
            log=(lambda line: click.echo(line, err=True)) if level >= 1 and not as_json else None,
        )

    run = simulated(config)
    single = None
    if params["compare_spread"]:
        import attrs

        single = simulated(
            attrs.evolve(config, run=attrs.evolve(config.run, spot_spread_tolerance=0.0))
        ).result
    if as_json:
        data = run.result.to_dict()
        if single is not None:
            data["single_pool"] = single.to_dict()
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(format_result(run.result))
        if single is not None:
            r = run.result
            click.echo(
                f"Single pool: makespan {single.makespan_s:.0f} s, cost ${single.cost_usd:.4f} "
                f"vs spread over {r.capacity_pools} pools: makespan {r.makespan_s:.0f} s, "
                f"cost ${r.cost_usd:.4f} (same seed {r.seed})"
            )
    if not run.result.status == "completed":
        raise ConfigError(f"the simulated job did not finish: {run.result.message}")


COMMANDS: list[click.Command] = [simulate_command]

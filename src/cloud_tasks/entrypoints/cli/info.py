"""Information commands: list_instance_types, list_images, list_regions,
list_running_instances."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from cloud_tasks.adapters.offer_records import offer_to_record
from cloud_tasks.domain.options import JobConfig
from cloud_tasks.domain.selection import Candidate, rank_offers_in_zone
from cloud_tasks.entrypoints.cli.options import (
    common_options,
    format_option,
    resolve_config,
    run_options,
)
from cloud_tasks.exceptions import ConfigError


def _echo_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2))


def _print_table(title: str, columns: list[str], rows: list[list[str]], right: set[int]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        table.add_column(column, justify="right" if index in right else "left")
    for row in rows:
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:
        # Piped or captured output: keep rows whole instead of wrapping to 80 columns.
        console = Console(width=200)
    console.print(table)


def _money(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _gpus(count: int, gpu_type: str, memory_gib: float) -> str:
    return f"{count}x {gpu_type} {memory_gib:g} GiB" if count else "-"


def _record_provider(config: JobConfig) -> str:
    if config.provider == "memory" and config.section in ("aws", "gcp"):
        return config.section
    return config.provider


def candidate_record(candidate: Candidate, provider: str) -> dict[str, Any]:
    """The JSON record of a ranked offer: the catalog format plus what selection derived."""
    record = offer_to_record(candidate.offer, provider)
    record.update(
        tasks_per_instance=candidate.tasks_per_instance,
        boot_disk_gb=candidate.boot_disk_gb,
        boot_disk_type=candidate.boot_disk_type,
        use_spot=candidate.use_spot,
        all_in_price_per_hour=candidate.price_per_hour_usd,
        price_per_task_slot=candidate.price_per_task_slot_hour_usd,
    )
    return record


@click.command(name="list_instance_types")
@common_options
@run_options
@format_option
@click.option("--detail", is_flag=True, help="Also show CPU family and rank and all-in prices.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Show at most this many types."
)
@click.option(
    "--refresh-prices",
    is_flag=True,
    help="Fetch prices from the provider now instead of the 24-hour cache.",
)
def list_instance_types(
    detail: bool, limit: int | None, refresh_prices: bool, **params: Any
) -> None:
    """List instance types meeting the constraints, cheapest per task slot first.

    Uses the same filter and order as 'run', so the first line is the type 'run' would pick.
    Constraints come from the configuration file and from flags (--min-cpu, --instance-types,
    --use-spot, --min-gpus, --gpu-type, --gpus-per-task, ...).
    """
    from cloud_tasks.bootstrap import (
        catalog_stand_in,
        make_pricing,
        offline_plan_notice,
        pricing_region,
    )

    config = resolve_config(**params)
    # Without an account (or its libraries) the offers come from the bundled catalog.
    notice = offline_plan_notice(config)
    if notice is not None:
        click.echo(notice, err=True)
    pricing = make_pricing(config if notice is None else catalog_stand_in(config))
    region = pricing_region(config, pricing)
    constraints = config.run.constraints
    candidates = rank_offers_in_zone(
        pricing.offers(region, refresh=refresh_prices), constraints, config.provider_options.zone
    )
    from cloud_tasks.domain.spread import candidate_shares
    from cloud_tasks.service_layer.plan import MAX_FALLBACK_TYPES

    spread = candidate_shares(candidates, config.run.spot_spread_tolerance, 1 + MAX_FALLBACK_TYPES)
    if limit is not None:
        candidates = candidates[:limit]
    provider = _record_provider(config)
    if params.get("output_format") == "json":
        records = [candidate_record(c, provider) for c in candidates]
        if spread:
            for c, record in zip(candidates, records, strict=True):
                record["spread_share"] = round(spread.get((c.name, c.offer.zone or ""), 0.0), 4)
        _echo_json(records)
        return
    show_zone = any(c.offer.zone for c in candidates)
    show_gpus = any(c.offer.gpus for c in candidates)
    columns = ["Type", *(["Zone"] if show_zone else []), "vCPU", "Mem GiB", "Arch", "SSD GB"]
    columns += ["GPUs"] if show_gpus else []
    columns += ["Boot disk", "On-demand $/h", "Spot $/h", "Tasks", "$/task-slot/h"]
    if spread:
        columns += ["Spread"]
    if detail:
        columns += ["All-in $/h", "CPU family", "Rank"]
    rows = []
    for c in candidates:
        o = c.offer
        row = [o.name, *([o.zone or "any"] if show_zone else []), str(o.vcpus)]
        row += [f"{o.memory_gib:g}", o.architecture, f"{o.local_ssd_gib:g}"]
        row += [_gpus(o.gpus, o.gpu_type, o.gpu_memory_gib)] if show_gpus else []
        row += [f"{c.boot_disk_gb} GB {c.boot_disk_type or ''}".strip()]
        row += [_money(o.price_per_hour_usd), _money(o.spot_price_per_hour_usd)]
        row += [str(c.tasks_per_instance), _money(c.price_per_task_slot_hour_usd, 5)]
        if spread:
            share = spread.get((c.name, o.zone or ""), 0.0)
            row += [f"{share:.0%}" if share else "-"]
        if detail:
            row += [_money(c.price_per_hour_usd), o.cpu_family, str(o.cpu_rank)]
        rows.append(row)
    pricing_kind = "spot" if constraints.use_spot else "on-demand"
    source = "" if notice is None else ", bundled catalog"
    title = f"{len(rows)} instance types in {region} ({provider}, {pricing_kind} prices{source})"
    if spread:
        title += (
            f"; a spot pool spreads over the {len(spread)} within "
            f"{config.run.spot_spread_tolerance:.0%} of the best"
        )
    numeric = {i for i, name in enumerate(columns) if name not in ("Type", "Zone", "Arch", "GPUs")}
    numeric -= {columns.index("Boot disk")}
    if detail:
        numeric -= {columns.index("CPU family")}
    _print_table(title, columns, rows, numeric)


@click.command(name="list_images")
@common_options
@format_option
@click.option(
    "--arch",
    "image_architecture",
    type=click.Choice(["x86_64", "arm64"]),
    default=None,
    help="Only images for this architecture.",
)
def list_images(image_architecture: str | None, **params: Any) -> None:
    """List the default (Ubuntu 24.04 LTS) images the provider offers, newest first."""
    from cloud_tasks.bootstrap import make_compute

    config = resolve_config(**params)
    images = make_compute(config).list_images(image_architecture)
    if params.get("output_format") == "json":
        _echo_json(
            [
                {
                    "name": i.name,
                    "architecture": i.architecture,
                    "description": i.description,
                    "created": i.created,
                }
                for i in images
            ]
        )
        return
    rows = [[i.name, i.architecture, i.created, i.description] for i in images]
    _print_table(f"{len(rows)} images", ["Image", "Arch", "Created", "Description"], rows, set())


@click.command(name="list_regions")
@common_options
@format_option
def list_regions(**params: Any) -> None:
    """List regions and their zones."""
    from cloud_tasks.bootstrap import make_compute

    config = resolve_config(**params)
    regions = make_compute(config).list_regions()
    if params.get("output_format") == "json":
        _echo_json([{"name": r.name, "zones": list(r.zones)} for r in regions])
        return
    rows = [[r.name, ", ".join(r.zones)] for r in regions]
    _print_table(f"{len(rows)} regions", ["Region", "Zones"], rows, set())


def _age(launched_at: float, now: float) -> str:
    if launched_at <= 0:
        return "-"
    seconds = max(0, int(now - launched_at))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


@click.command(name="list_running_instances")
@common_options
@format_option
@click.option(
    "--all", "all_jobs", is_flag=True, help="Every instance managed by cloud_tasks, any job."
)
def list_running_instances(all_jobs: bool, **params: Any) -> None:
    """List this job's instances (or, with --all, every managed one) with state and price."""
    from cloud_tasks.bootstrap import make_compute

    config = resolve_config(**params)
    job_id = None if all_jobs else config.provider_options.job_id
    if job_id is None and not all_jobs:
        raise ConfigError("no job id: pass --job-id, set job_id in the config, or use --all")
    instances = make_compute(config).list_instances(job_id)
    now = time.time()
    if params.get("output_format") == "json":
        _echo_json(
            [
                {
                    "instance_id": i.instance_id,
                    "name": i.name,
                    "job_id": i.job_id,
                    "state": i.state.value,
                    "instance_type": i.instance_type,
                    "zone": i.zone,
                    "is_spot": i.is_spot,
                    "price_per_hour": i.price_per_hour_usd,
                    "launched_at": i.launched_at,
                    "age_s": max(0.0, now - i.launched_at) if i.launched_at else None,
                }
                for i in instances
            ]
        )
        return
    rows = [
        [
            i.instance_id,
            i.job_id,
            i.state.value,
            i.instance_type,
            i.zone,
            "spot" if i.is_spot else "on-demand",
            _age(i.launched_at, now),
            _money(i.price_per_hour_usd),
        ]
        for i in instances
    ]
    total = sum(i.price_per_hour_usd for i in instances)
    columns = ["Instance", "Job", "State", "Type", "Zone", "Market", "Age", "$/h"]
    _print_table(f"{len(rows)} instances, {total:.4f} $/h", columns, rows, {6, 7})


COMMANDS: list[click.Command] = [
    list_instance_types,
    list_images,
    list_regions,
    list_running_instances,
]

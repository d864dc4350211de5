"""The information commands through click: offline on the memory provider, and on GCP fakes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cloud_tasks.adapters.memory.catalog import MemoryPricing, bundled_catalog
from cloud_tasks.adapters.offer_records import load_catalog
from cloud_tasks.domain.constraints import InstanceConstraints
from cloud_tasks.domain.selection import select_instance_type
from cloud_tasks.entrypoints.cli.main import cli
from tests.compute.test_gcp import billing, gce  # noqa: F401  (fixtures)
from tests.fakes.gce import FakeBilling, FakeComputeEngine

QUICKSTART = """\
provider: gcp
gcp:
  job_id: my-processing-job
  startup_script_file: startup_script.sh
  max-instances: 5
  max-cpu: 8
  min-memory-per-cpu: 4  # GB
  max-total-price-per-hour: 1.00  # USD/hour
  instance-types: "n2-"
"""


def _json(args: list[str]) -> list[dict[str, object]]:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert isinstance(data, list)
    return data


def test_list_instance_types_offline_shows_what_run_picks(tmp_path: Path) -> None:
    Path("startup_script.sh").write_text("#!/bin/bash\necho hi\n")
    Path("myconfig.yml").write_text(QUICKSTART)
    rows = _json(
        [
            "list_instance_types",
            "--config",
            "myconfig.yml",
            "--provider",
            "memory",
            "--format",
            "json",
        ]
    )
    assert rows and all(str(r["name"]).startswith("n2-") for r in rows)
    assert all(int(r["vcpus"]) <= 8 and r["region"] == "us-central1" for r in rows)  # type: ignore[call-overload]
    assert all(r["provider"] == "gcp" for r in rows)
    slot_prices = [float(r["price_per_task_slot"]) for r in rows]  # type: ignore[arg-type]
    assert slot_prices == sorted(slot_prices)
    expected = select_instance_type(
        MemoryPricing(bundled_catalog("gcp")).offers("us-central1"),
        InstanceConstraints(instance_types=("n2-",), max_cpu=8, min_memory_per_cpu=4),
    )
    assert rows[0]["name"] == expected.name
    for key in ("memory_gib", "architecture", "zone", "price_per_hour", "spot_price_per_hour"):
        assert key in rows[0]


def test_list_instance_types_flags_limit_and_table() -> None:
    rows = _json(
        [
            "list_instance_types",
            "--provider",
            "memory",
            "--region",
            "us-west-2",
            "--architecture",
            "arm64",
            "--use-spot",
            "--min-cpu",
            "4",
            "--limit",
            "3",
            "--format",
            "json",
        ]
    )
    assert len(rows) == 3
    assert all(r["architecture"] == "arm64" and int(r["vcpus"]) >= 4 for r in rows)  # type: ignore[call-overload]
    assert all(str(r["zone"]).startswith("us-west-2") for r in rows)
    table = CliRunner().invoke(
        cli,
        [
            "list_instance_types",
            "--provider",
            "memory",
            "--region",
            "us-west-2",
            "--limit",
            "2",
            "--detail",
        ],
    )
    assert table.exit_code == 0, table.output
    assert "$/task-slot/h" in table.output and "CPU family" in table.output


def test_impossible_constraints_exit_1_with_the_reason() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cloud_tasks",
            "list_instance_types",
            "--provider",
            "memory",
            "--min-cpu",
            "100000",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "min_cpu" in result.stderr


def test_regions_images_and_instances_offline() -> None:
    regions = _json(["list_regions", "--provider", "memory", "--format", "json"])
    assert {
        "name": "us-central1",
        "zones": ["us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"],
    } in regions
    images = _json(["list_images", "--provider", "memory", "--arch", "arm64", "--format", "json"])
    assert [i["architecture"] for i in images] == ["arm64"]
    assert (
        _json(["list_running_instances", "--provider", "memory", "--all", "--format", "json"]) == []
    )
    missing = CliRunner().invoke(cli, ["list_running_instances", "--provider", "memory"])
    assert missing.exit_code != 0 and "--all" in str(missing.exception)


def test_json_from_a_real_provider_loads_back_as_a_catalog(
    gce: FakeComputeEngine,  # noqa: F811
    billing: FakeBilling,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    args = [
        "list_instance_types",
        "--provider",
        "gcp",
        "--project-id",
        "test-project",
        "--region",
        "us-central1",
        "--format",
        "json",
    ]
    rows = _json(args)
    assert {r["name"] for r in rows} == {"n2-standard-4", "c3-standard-4-lssd"}
    assert list((tmp_path / "cache" / "cloud_tasks" / "prices").glob("gcp-us-central1.json"))
    saved = tmp_path / "my-catalog.json"
    saved.write_text(json.dumps(rows))
    catalog = load_catalog(saved)
    assert [o.name for _p, o in catalog.offers] == [r["name"] for r in rows]
    # The saved snapshot drives the memory provider offline, with the same ranking.
    offline = _json(
        [
            "list_instance_types",
            "--provider",
            "memory",
            "--region",
            "us-central1",
            "--format",
            "json",
        ]
    )  # the bundled catalog: different offers
    assert offline != rows
    Path("memcfg.yml").write_text(f"provider: memory\nmemory:\n  catalog: {saved}\n")
    replay = _json(["list_instance_types", "--config", "memcfg.yml", "--format", "json"])
    assert [(r["name"], r["price_per_hour"], r["provider"]) for r in replay] == [
        (r["name"], r["price_per_hour"], "memory") for r in rows
    ]

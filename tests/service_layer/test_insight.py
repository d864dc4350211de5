"""What the manager records for the dashboard, and what the dashboard reads back.

The real pool manager on the memory provider and virtual time, with a ``PoolRecorder``: its
decisions say why the pool is not larger (cost cap, price cap, capacity, quota, remaining
work), and ``job_view`` (read-only) turns the database into the page's data.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cloud_tasks.adapters.local.taskdb import TaskDatabase
from cloud_tasks.adapters.local.taskdb_views import TaskDatabaseView, connect_read_only
from cloud_tasks.domain.constraints import InstanceConstraints
from cloud_tasks.domain.options import PoolLimits
from cloud_tasks.domain.tasks import Task
from cloud_tasks.entrypoints.dashboard import DashboardServer
from cloud_tasks.service_layer.dashboard_data import job_view
from cloud_tasks.service_layer.insight import PoolRecorder
from tests.service_layer.test_pool_memory import START, Job, make_job


def _recorded(job: Job) -> PoolRecorder:
    recorder = PoolRecorder(job.db.path, job.clock)
    job.manager.recorder = recorder
    job.manager.compute = recorder.watch(job.compute)
    job.manager.log = recorder.logged(job.log.append)
    return recorder


def _view(job: Job) -> dict[str, Any]:
    connection = TaskDatabaseView(job.db.path)
    try:
        return job_view(connection, job.clock.now())
    finally:
        connection.close()


def _reason_kinds(view: dict[str, Any]) -> set[str]:
    return {reason["kind"] for d in view["decisions"] for reason in d["reasons"]}


def test_a_finished_job_has_every_series_the_page_plots() -> None:
    job = make_job(40)
    with _recorded(job):
        outcome = job.run()
    assert outcome.status == "completed"
    view = _view(job)
    assert view["job"]["done"]
    assert view["counts"]["completed"] == 40
    assert view["completions"]["completed"][-1] == 40
    assert sum(view["durations"]["counts"]) == 40
    spend = view["spend"]["values"]
    assert spend == sorted(spend) and spend[-1] > 0
    assert abs(view["spend"]["spent_usd"] - outcome.spend_usd) < 1e-9
    assert max(max(s["values"]) for s in view["instances"]["series"]) == 4
    assert all(s["spot"] for s in view["instances"]["series"])
    assert "remaining_work" in _reason_kinds(view) or "limit" in _reason_kinds(view)
    assert any("started 4 instances" in line["message"] for line in view["log"])
    json.dumps(view, allow_nan=False)  # what the endpoint serves


def test_the_cost_cap_is_the_reason_and_the_spend_stays_under_it() -> None:
    job = make_job(2000, duration_s=600.0, limits=PoolLimits(max_instances=4, max_total_cost=0.05))
    with _recorded(job):
        outcome = job.run()
    assert outcome.status == "cost_cap"
    view = _view(job)
    assert "cost_cap" in _reason_kinds(view)
    cost_cap = next(
        r["text"] for d in view["decisions"] for r in d["reasons"] if r["kind"] == "cost_cap"
    )
    assert "max_total_cost=$0.0500" in cost_cap
    assert view["spend"]["max_total_cost_usd"] == 0.05
    assert max(view["spend"]["values"]) <= 0.05 + 1e-9
    assert not view["job"]["done"]


def test_capacity_and_quota_errors_are_reasons() -> None:
    job = make_job(16)
    best = job.manager.options[0]
    job.compute.inject_capacity_error(instance_type=f"^{best.candidate.name}$", zone=best.zone)
    with _recorded(job):
        assert job.run().status == "completed"
    view = _view(job)
    capacity = [
        r["text"] for d in view["decisions"] for r in d["reasons"] if r["kind"] == "capacity"
    ]
    assert capacity and f"{best.candidate.name} in {best.zone}" in capacity[0]

    job = make_job(16)
    job.compute.inject_capacity_error(quota=True, times=2)
    with _recorded(job):
        assert job.run().status == "completed"
    assert "quota" in _reason_kinds(_view(job))


def test_the_price_cap_is_the_reason() -> None:
    job = make_job(
        100,
        limits=PoolLimits(max_instances=50, max_total_price_per_hour=0.1),
        constraints=InstanceConstraints(
            min_cpu=2, max_cpu=2, use_spot=True, instance_types=("^m7",)
        ),
    )
    with _recorded(job):
        assert job.run().status == "completed"
    view = _view(job)
    assert "price_cap" in _reason_kinds(view)
    price = next(
        r["text"] for d in view["decisions"] for r in d["reasons"] if r["kind"] == "price_cap"
    )
    assert "max_total_price_per_hour=$0.1000/h" in price


def test_preemptions_are_marked() -> None:
    job = make_job(80, duration_s=120.0)
    preempted: list[str] = []

    def hook(elapsed: float) -> None:
        if elapsed >= 400 and not preempted:
            preempted.extend(job.compute.preempt_fraction(0.5, "job"))

    with _recorded(job):
        assert job.run(hook).status == "completed"
    marks = _view(job)["instances"]["preemptions"]
    assert sorted(m["instance_id"] for m in marks) == sorted(preempted)
    assert all(m["at"] >= START + 400 for m in marks)


def test_a_database_from_before_the_dashboard_still_opens(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with TaskDatabase(path) as db:
        db.set_meta(job_id="old", started_at=100.0, config="/home/me/secret-config.yml")
    connection = TaskDatabaseView(path)
    view = job_view(connection, 200.0)
    connection.close()
    assert view["decisions"] == [] and view["log"] == [] and view["notifications"] == []
    assert "secret-config" not in json.dumps(view)
    # The recorder only adds tables: the database still opens and keeps its rows.
    with PoolRecorder(path, make_job(1).clock):
        pass
    with TaskDatabase(path) as db:
        assert db.meta()["job_id"] == "old"


def test_readers_never_write(tmp_path: Path) -> None:
    path = tmp_path / "job.db"
    TaskDatabase(path).close()
    connection = connect_read_only(path)
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            connection.execute("DELETE FROM tasks")
    finally:
        connection.close()


def test_the_server_serves_the_page_its_assets_and_the_job(tmp_path: Path) -> None:
    job = make_job(8)
    with _recorded(job):
        job.run()
    server = DashboardServer(job.db.path, port=0)
    server.start_background()
    try:
        with urllib.request.urlopen(server.url, timeout=10) as response:
            page = response.read().decode()
            policy = response.headers["Content-Security-Policy"]
        assert "/static/dashboard.js" in page and "http" not in page.split("<body>")[1]
        assert "default-src 'none'" in policy and "connect-src 'self'" in policy
        for asset in ("static/dashboard.js", "static/dashboard.css"):
            with urllib.request.urlopen(server.url + asset, timeout=10) as response:
                assert response.status == 200
        with urllib.request.urlopen(server.url + "api/job", timeout=10) as response:
            data = json.loads(response.read())
        assert data["counts"]["completed"] == 8
        assert server.url.startswith("http://127.0.0.1:")
    finally:
        server.stop()


def test_the_server_reads_again_only_when_the_database_changed(tmp_path: Path) -> None:
    path = tmp_path / "job.db"
    with TaskDatabase(path) as db:
        db.set_meta(job_id="job", started_at=0.0)
        db.add_tasks([Task("t1"), Task("t2")], 0.0)
    now = [10.0]
    server = DashboardServer(path, port=0, clock=lambda: now[0])
    try:
        first = server.read_job()
        now[0] += 5.0
        assert server.read_job() is first  # nothing changed
        with TaskDatabase(path) as db:
            db.ingest([{"event_type": "task_completed", "task_id": "t1", "success": True}], 14.0)
        assert server.read_job()["counts"]["completed"] == 1
        # A database replaced by 'run --force' (which removes it with its -wal and -shm files)
        # is read anew.
        TaskDatabase.remove(path, "job")
        with TaskDatabase(path) as db:
            db.set_meta(job_id="other", started_at=0.0)
        now[0] += 5.0
        assert server.read_job()["job"]["job_id"] == "other"
    finally:
        server.server_close()


def test_a_cheap_refresh_reuses_the_plots_and_reads_the_counts(tmp_path: Path) -> None:
    path = tmp_path / "job.db"
    with TaskDatabase(path) as db:
        db.set_meta(job_id="job", started_at=0.0)
        db.add_tasks([Task(f"t{i}") for i in range(3)], 0.0)
        db.ingest([{"event_type": "task_completed", "task_id": "t0", "success": True}], 5.0)
    connection = TaskDatabaseView(path)
    try:
        first = job_view(connection, 10.0)
        with TaskDatabase(path) as db:
            db.ingest([{"event_type": "task_completed", "task_id": "t1", "success": True}], 11.0)
        cheap = job_view(connection, 12.0, reuse=first)
        full = job_view(connection, 12.0)
        with TaskDatabase(path) as db:
            db.ingest([{"event_type": "task_completed", "task_id": "t2", "success": True}], 13.0)
        done = job_view(connection, 14.0, reuse=cheap)
    finally:
        connection.close()
    assert cheap["counts"]["completed"] == 2 and cheap["series_at"] == 10.0
    assert cheap["completions"] == first["completions"]
    assert full["completions"]["completed"][-1] == 2 and full["series_at"] == 12.0
    # The end of the job is always drawn in full.
    assert done["job"]["done"] and done["completions"]["completed"][-1] == 3


def test_the_manager_log_masks_known_secrets(tmp_path: Path) -> None:
    from cloud_tasks import redact
    from cloud_tasks.adapters.memory.clock import VirtualClock

    redact.register_secret("insight-test-secret-9f2c")
    path = tmp_path / "job.db"
    TaskDatabase(path).close()
    with PoolRecorder(path, VirtualClock(5.0)) as recorder:
        recorder.log("could not start: key insight-test-secret-9f2c was refused")
    connection = TaskDatabaseView(path)
    try:
        (line,) = job_view(connection, 6.0)["log"]
    finally:
        connection.close()
    assert line == {"at": 5.0, "message": "could not start: key *** was refused"}

"""The dashboard in a real browser (headless Chromium): a running job and a finished one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.job import (
    PLOTS,
    browser_page,
    chromium_executable,
    dashboard_of,
    finished_job,
    read_url,
    spot_job,
    start,
    wait_for,
    write_job,
)

pytestmark = pytest.mark.slow

_EXECUTABLE = chromium_executable()
needs_chromium = pytest.mark.skipif(
    _EXECUTABLE is None, reason="no chromium executable (apt-get install -y chromium)"
)


def _count(page: Any, state: str) -> int:
    return int(page.text_content(f"#count-{state}").replace(",", ""))


def _plot_points(page: Any) -> dict[str, int]:
    return {name: int(page.get_attribute(f"#plot-{name}", "data-points") or 0) for name in PLOTS}


def _only_this_server(requested: list[str], url: str) -> None:
    origin = url.rstrip("/")
    assert requested
    assert all(address.startswith(origin + "/") for address in requested), requested


@needs_chromium
def test_a_running_jobs_page_follows_the_job(tmp_path: Path) -> None:
    assert _EXECUTABLE is not None
    # About 20 s of work: the page is loaded well before the job ends, even on a busy machine.
    write_job(tmp_path, 80)
    run = start(
        tmp_path,
        "run",
        "--config",
        "config.yml",
        "--tasks",
        "tasks.json",
        "--dashboard",
        "--dashboard-port",
        "0",
    )
    try:
        url = read_url(run.stderr)
        with browser_page(_EXECUTABLE) as (page, requested):
            page.goto(url)
            page.wait_for_selector("body[data-loaded]", timeout=30_000)
            assert page.text_content("#job-id") == "dash-job"
            first = _count(page, "completed") + _count(page, "failed")
            assert _count(page, "total") == 80
            assert first < 80
            assert page.text_content("#job-state") == "running"
            # The page refreshes itself: the counts move while the job runs.
            wait_for(
                lambda: _count(page, "completed") + _count(page, "failed") > first,
                60,
                "the page's counts change",
            )
            wait_for(
                lambda: len(page.query_selector_all("#why li .kind")) > 0,
                30,
                "a reason why the pool is not larger",
            )
            assert "max_instances=2" in (page.text_content("#why") or "")
            # The workers' keep-alives name the tasks they run.
            wait_for(
                lambda: re.search(r"t\d{3}", page.text_content("#slowest") or "") is not None,
                30,
                "a running task listed",
            )
            page.screenshot(path=str(tmp_path / "running.png"), full_page=True)
            _only_this_server(requested, url)
        out, err = run.communicate(timeout=240)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 0, out + err
    assert (tmp_path / "running.png").stat().st_size > 10_000


@needs_chromium
def test_a_finished_jobs_page_draws_every_plot(tmp_path: Path) -> None:
    assert _EXECUTABLE is not None
    db = finished_job(tmp_path, 40)
    with dashboard_of(tmp_path, str(db)) as url, browser_page(_EXECUTABLE) as (page, requested):
        page.goto(url)
        page.wait_for_selector("body[data-loaded]", timeout=30_000)
        assert page.text_content("#job-state") == "done"
        completed, failed = _count(page, "completed"), _count(page, "failed")
        assert completed + failed == 40
        assert failed > 0
        points = _plot_points(page)
        assert all(count > 0 for count in points.values()), points
        for name in PLOTS:
            assert page.query_selector(f"#plot-{name} .series, #plot-{name} .bar"), name
        # Top errors name their tasks and show the traceback's last lines.
        errors = page.text_content("#errors") or ""
        assert "ValueError: pixel value out of range" in errors
        assert "t004" in errors
        assert page.query_selector("#errors pre")
        assert "started 2 instances" in (page.text_content("#log") or "")
        page.screenshot(path=str(tmp_path / "finished.png"), full_page=True)
        _only_this_server(requested, url)
    assert (tmp_path / "finished.png").stat().st_size > 10_000


def test_the_dashboard_refuses_a_foreign_host_header(tmp_path: Path) -> None:
    import http.client

    db = finished_job(tmp_path, 4)
    with dashboard_of(tmp_path, str(db)) as url:
        host, port = url.split("//")[1].rstrip("/").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", "/api/job", headers={"Host": "evil.example:80"})
        assert connection.getresponse().status == 403
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", "/api/job")
        response = connection.getresponse()
        assert response.status == 200
        assert b'"job_id": "dash-job"' in response.read()


@needs_chromium
def test_a_spot_jobs_page_shows_spend_preemptions_and_the_cost_cap(tmp_path: Path) -> None:
    """A job of the real pool manager on the memory provider (AWS catalog, spot, virtual time):
    what an aws job's database holds, shown by the same page."""
    assert _EXECUTABLE is not None
    from cloud_tasks.entrypoints.dashboard import DashboardServer

    path, clock, preempted = spot_job()
    server = DashboardServer(path, port=0, clock=clock)
    server.start_background()
    try:
        with browser_page(_EXECUTABLE) as (page, requested):
            page.goto(server.url)
            page.wait_for_selector("body[data-loaded]", timeout=30_000)
            assert _count(page, "completed") == 80
            assert int(page.get_attribute("#plot-spend", "data-nonzero") or 0) > 0
            assert "max_total_cost $0.0500" in (page.text_content("#plot-spend") or "")
            markers = page.query_selector_all("#plot-instances .marker")
            assert len(markers) == len(preempted) == 2
            assert "spot" in (page.text_content("#plot-instances") or "")
            assert all(count > 0 for count in _plot_points(page).values())
            page.screenshot(path=str(tmp_path / "spot.png"), full_page=True)
            _only_this_server(requested, server.url)
    finally:
        server.stop()

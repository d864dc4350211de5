"""Notifications delivered to a loopback webhook and a command, at most once per job."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud_tasks.adapters.local.taskdb import TaskDatabase
from cloud_tasks.adapters.memory.clock import VirtualClock
from cloud_tasks.domain.options import Notify
from cloud_tasks.domain.taskstate import TaskCounts
from cloud_tasks.service_layer.insight import PoolRecorder
from cloud_tasks.service_layer.notify import JobNotifier
from cloud_tasks.service_layer.pool import PoolSnapshot
from tests.fakes.http import LoopbackServer


@pytest.fixture
def receiver() -> Iterator[LoopbackServer]:
    server = LoopbackServer(lambda *_request: (200, {"ok": True})).start()
    yield server
    server.stop()


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[PoolRecorder]:
    TaskDatabase(tmp_path / "job.db").close()
    with PoolRecorder(tmp_path / "job.db", VirtualClock(1000.0)) as recorder:
        yield recorder


def _snapshot(completed: int, failed: int, total: int, spend: float) -> PoolSnapshot:
    pending = total - completed - failed
    return PoolSnapshot(TaskCounts(pending, 0, completed, failed), 1, spend, 0.0)


def _bodies(server: LoopbackServer) -> list[dict[str, Any]]:
    return [body for method, path, _q, body, _h in server.requests if method == "POST"]


def test_each_notification_reaches_the_webhook_once(
    receiver: LoopbackServer, recorder: PoolRecorder
) -> None:
    notify = Notify(webhook=receiver.url + "/hook")
    with JobNotifier(notify, recorder, job_id="my-job", max_total_cost_usd=10.0) as notifier:
        notifier.update(_snapshot(20, 0, 100, 5.5))
        notifier.update(_snapshot(30, 0, 100, 6.0))
        notifier.update(_snapshot(40, 20, 100, 9.0))
        notifier.finish("completed", "done", TaskCounts(0, 0, 80, 20), 9.5)
        notifier.finish("completed", "done", TaskCounts(0, 0, 80, 20), 9.5)
    events = [body["event"] for body in _bodies(receiver)]
    assert sorted(events) == sorted(["spend_50", "spend_80", "failure_rate", "job_done"])
    for body in _bodies(receiver):
        assert "my-job" in body["text"]
    assert {path for _m, path, *_ in receiver.requests} == {"/hook"}


def test_a_resumed_job_does_not_fire_again(
    receiver: LoopbackServer, recorder: PoolRecorder, tmp_path: Path
) -> None:
    notify = Notify(webhook=receiver.url)
    with JobNotifier(notify, recorder, job_id="my-job", max_total_cost_usd=10.0) as first:
        first.update(_snapshot(10, 0, 100, 5.0))
    with (
        PoolRecorder(tmp_path / "job.db", VirtualClock(2000.0)) as reopened,
        JobNotifier(notify, reopened, job_id="my-job", max_total_cost_usd=10.0) as second,
    ):
        second.update(_snapshot(20, 0, 100, 6.0))
        second.update(_snapshot(30, 0, 100, 8.0))
    assert [body["event"] for body in _bodies(receiver)] == ["spend_50", "spend_80"]


def test_a_failing_webhook_is_logged_and_the_command_still_runs(
    recorder: PoolRecorder, tmp_path: Path
) -> None:
    failing = LoopbackServer(lambda *_request: (500, {"error": "down"})).start()
    logged: list[str] = []
    out = tmp_path / "notified.json"
    notify = Notify(webhook=failing.url, command=f"cat > {out}")
    try:
        with JobNotifier(
            notify, recorder, job_id="my-job", max_total_cost_usd=None, log=logged.append
        ) as notifier:
            notifier.finish("cost_cap", "max_total_cost reached", TaskCounts(5, 0, 5, 0), 1.0)
    finally:
        failing.stop()
    assert json.loads(out.read_text())["event"] == "job_failed"
    assert len(logged) == 1
    assert "webhook failed: the webhook answered HTTP 500" in logged[0]
    assert failing.url not in logged[0]


def test_a_hanging_webhook_never_blocks_the_caller(recorder: PoolRecorder) -> None:
    entered, release = threading.Event(), threading.Event()

    def hang(*_request: object) -> tuple[int, object]:
        entered.set()
        release.wait(30)
        return 200, {}

    server = LoopbackServer(hang).start()
    try:
        notifier = JobNotifier(
            Notify(webhook=server.url), recorder, job_id="my-job", max_total_cost_usd=None
        )
        notifier.finish("completed", "done", TaskCounts(0, 0, 1, 0), 0.0)
        # finish returned; the delivery is under way in the background, still unanswered.
        assert entered.wait(30)
        assert not release.is_set()
        release.set()
        notifier.close(timeout_s=30)
    finally:
        release.set()
        server.stop()
    assert notifier.delivered == 1
    assert recorder.fired_notifications() == {"job_done"}


def test_an_unreachable_webhook_is_logged(recorder: PoolRecorder) -> None:
    logged: list[str] = []
    notify = Notify(webhook="http://127.0.0.1:9/hook")  # the discard port: refused
    with JobNotifier(
        notify, recorder, job_id="my-job", max_total_cost_usd=None, log=logged.append
    ) as notifier:
        notifier.finish("completed", "done", TaskCounts(0, 0, 1, 0), 0.0)
    assert len(logged) == 1
    assert "unreachable" in logged[0]
    assert notifier.failed == 1


@pytest.mark.parametrize(
    ("yaml_text", "problem"),
    [
        ("notify: ftp://hooks.example/T0/SECRET", "run.notify.webhook: expected an http"),
        ("notify: [https://hooks.example/T0/SECRET]", "run.notify: expected a webhook URL"),
        ("notify: {webhok: https://hooks.example/T0/SECRET}", "run.notify.webhok: unknown key"),
        ("notify: {}", "run.notify: give a webhook URL, a command, or both"),
        ("notify: {command: 'true', failure_rate: 2}", "run.notify.failure_rate: must be"),
    ],
)
def test_a_bad_notify_setting_is_one_line_without_the_url(
    tmp_path: Path, yaml_text: str, problem: str
) -> None:
    from cloud_tasks.config import load_config
    from cloud_tasks.exceptions import ConfigError

    (tmp_path / "c.yml").write_text(f"run:\n  {yaml_text}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "c.yml")
    assert str(caught.value).startswith(problem)
    assert "SECRET" not in str(caught.value)


def test_the_webhook_is_never_in_a_notice(tmp_path: Path) -> None:
    from cloud_tasks.config import load_config

    (tmp_path / "c.yml").write_text(
        "run:\n  notify: https://hooks.example/T0/SECRET\n"
        "local:\n  notify: {webhook: 'https://hooks.example/T1/SECRET', command: 'true'}\n"
    )
    config = load_config(tmp_path / "c.yml")
    assert config.run.notify is not None and config.run.notify.command == "true"
    assert config.notices == (
        "local.notify=<a webhook and a command> overrides run.notify=<a webhook>",
    )
    assert "SECRET" not in repr(config)

"""``SpotNotices``: what a spot notice does to a serving worker, on virtual time (SPEC §10)."""

from __future__ import annotations

import asyncio

import pytest

from cloud_tasks.adapters.memory.clock import VirtualClock
from cloud_tasks.domain import events as ev
from cloud_tasks.domain.events import Event, SpotTermination
from cloud_tasks.domain.spot import SPOT_RELEASE_REASON
from cloud_tasks.entrypoints.worker.data import LiveFlags
from cloud_tasks.entrypoints.worker.spot import SpotNotices
from cloud_tasks.exceptions import ProviderError


class _Metadata:
    """Instance metadata whose notice appears at a given poll; a poll may fail instead."""

    def __init__(self, notice_at_poll: int, failing_polls: int = 0) -> None:
        self.polls = 0
        self._notice_at_poll = notice_at_poll
        self._failing_polls = failing_polls

    def instance_id(self) -> str | None:
        return "i-1"

    def termination_notice(self) -> bool:
        self.polls += 1
        if self.polls <= self._failing_polls:
            raise ProviderError("metadata service unreachable")
        return self.polls >= self._notice_at_poll


class _Worker:
    """What a notice acts on, recorded."""

    def __init__(self, clock: VirtualClock, provider: str | None = "aws") -> None:
        self.flags = LiveFlags()
        self.stopped = 0
        self.kills: list[tuple[float, str]] = []
        self.events: list[Event] = []
        self.clock = clock
        self.spot = SpotNotices(
            provider=provider,
            clock=clock,
            flags=self.flags,
            stop_taking=self._stop,
            kill_all=lambda reason: self.kills.append((clock.now(), reason)),
            running_tasks=lambda: 3,
            emit=self.events.append,
        )

    def _stop(self) -> None:
        self.stopped += 1


async def _settle(clock: VirtualClock, seconds: float, step: float = 1.0) -> None:
    """Move virtual time ``seconds`` forward in steps, each once every background task waits
    on the clock again (a metadata poll runs in a thread; allow it up to 10 s of real time)."""
    for _ in range(int(seconds / step)):
        await _quiet(clock)
        clock.advance(step)
    await _quiet(clock)


async def _quiet(clock: VirtualClock) -> None:
    for _ in range(10_000):
        before = clock.pending_sleepers
        for _ in range(5):
            await asyncio.sleep(0)
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if before == clock.pending_sleepers and clock.pending_sleepers >= len(tasks):
            return
        await asyncio.sleep(0.001)


@pytest.mark.parametrize(("provider", "deadline_s"), [("aws", 100.0), ("gcp", 20.0), (None, 20.0)])
def test_a_notice_stops_taking_tasks_and_kills_the_rest_at_the_providers_deadline(
    provider: str | None, deadline_s: float
) -> None:
    async def scenario() -> _Worker:
        worker = _Worker(VirtualClock(), provider)
        worker.spot.notice()
        worker.spot.notice()  # a second notice changes nothing
        assert worker.flags.termination_notice and worker.stopped == 1
        await _settle(worker.clock, deadline_s - 1)
        assert worker.kills == []
        await _settle(worker.clock, 2)
        await worker.spot.stop()
        return worker

    worker = asyncio.run(scenario())
    assert worker.kills == [(deadline_s, SPOT_RELEASE_REASON)]
    assert worker.events == [SpotTermination(running_tasks=3, deadline_s=deadline_s)]


def test_a_notice_from_the_metadata_uses_the_simulated_delay_and_a_failure_is_reported_once() -> (
    None
):
    async def scenario() -> tuple[_Worker, _Metadata]:
        worker = _Worker(VirtualClock())
        metadata = _Metadata(notice_at_poll=4, failing_polls=2)
        worker.spot.start(
            metadata,
            is_spot=True,
            metadata_supplied=False,
            poll_interval_s=5.0,
            simulate_after_s=None,
            simulate_delay_s=7.0,
        )
        await _settle(worker.clock, 30)
        await worker.spot.stop()
        return worker, metadata

    worker, metadata = asyncio.run(scenario())
    assert metadata.polls == 4  # the watch ends with the notice
    assert [event.event_type for event in worker.events] == [
        ev.NON_FATAL_EXCEPTION,
        ev.SPOT_TERMINATION,
    ]
    # Polls at 0, 5, 10, 15 s: the notice at 15 s, the kill 7 s later.
    assert worker.kills == [(22.0, SPOT_RELEASE_REASON)]


def test_metadata_is_not_watched_on_an_on_demand_instance() -> None:
    async def scenario() -> _Metadata:
        worker = _Worker(VirtualClock())
        metadata = _Metadata(notice_at_poll=1)
        worker.spot.start(
            metadata,
            is_spot=False,
            metadata_supplied=False,
            poll_interval_s=5.0,
            simulate_after_s=None,
            simulate_delay_s=None,
        )
        await _settle(worker.clock, 20)
        await worker.spot.stop()
        assert not worker.spot.noticed
        return metadata

    assert asyncio.run(scenario()).polls == 0


def test_a_simulated_notice_arrives_after_the_given_time() -> None:
    async def scenario() -> _Worker:
        worker = _Worker(VirtualClock(), "gcp")
        worker.spot.start(
            None,
            is_spot=True,
            metadata_supplied=False,
            poll_interval_s=5.0,
            simulate_after_s=10.0,
            simulate_delay_s=3.0,
        )
        await _settle(worker.clock, 9)
        assert not worker.spot.noticed
        await _settle(worker.clock, 10)
        await worker.spot.stop()
        return worker

    worker = asyncio.run(scenario())
    assert worker.kills == [(13.0, SPOT_RELEASE_REASON)]

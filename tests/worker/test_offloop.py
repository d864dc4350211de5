"""The worker's off-loop queue calls: the calls made in one step share one worker thread."""

from __future__ import annotations

import asyncio

from cloud_tasks.exceptions import ProviderError


def test_queue_calls_made_in_one_step_run_in_one_batch_and_failures_come_back() -> None:
    from cloud_tasks.entrypoints.worker.service import _OffLoopCalls

    ran: list[tuple[int, int]] = []

    def record(i: int) -> None:
        import threading

        ran.append((i, threading.get_ident()))
        if i == 3:
            raise ProviderError("queue unavailable")

    async def scenario() -> list[BaseException | None]:
        calls = _OffLoopCalls()
        futures = [calls.call(record, i) for i in range(6)]
        return list(await asyncio.gather(*futures))

    outcomes = asyncio.run(scenario())
    assert [i for i, _ in ran] == list(range(6))
    assert len({thread for _, thread in ran}) == 1  # one trip to a worker thread
    assert [type(o).__name__ if o else None for o in outcomes] == [
        None,
        None,
        None,
        "ProviderError",
        None,
        None,
    ]

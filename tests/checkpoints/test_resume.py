"""A task killed by a spot termination resumes from its checkpoint when delivered again."""

from __future__ import annotations

import time
from typing import Any

from cloud_tasks.testing import CloudTasksSim
from cloud_tasks.worker import WorkerData

STEPS = 40


def count_steps(task_id: str, task_data: dict[str, Any], worker_data: WorkerData) -> Any:
    """Sums 0..STEPS-1 one step at a time, saving progress after every step."""
    state = worker_data.checkpoint.load(default={"step": 0, "total": 0, "resumed_from": None})
    if state["step"] and state["resumed_from"] is None:
        state["resumed_from"] = state["step"]
    while state["step"] < STEPS:
        state["total"] += state["step"]
        state["step"] += 1
        worker_data.checkpoint.save(state)
        time.sleep(task_data["step_s"])
    return True, {"total": state["total"], "resumed_from": state["resumed_from"]}


def test_spot_terminated_task_resumes_from_its_checkpoint(cloud_tasks_sim: CloudTasksSim) -> None:
    cloud_tasks_sim.add_tasks([{"task_id": f"t{i}", "data": {"step_s": 0.05}} for i in range(2)])
    report = cloud_tasks_sim.run(
        count_steps,
        num_simultaneous_tasks=2,
        spot_termination_after=0.6,
        spot_termination_delay=0,
    )
    assert report.pending == {"t0", "t1"}
    saved = cloud_tasks_sim.checkpoints()
    assert set(saved) == {"t0", "t1"}
    assert all(0 < state["step"] < STEPS for state in saved.values())

    report = cloud_tasks_sim.run(count_steps, num_simultaneous_tasks=2)
    assert report.completed == {"t0", "t1"}
    for task_id in ("t0", "t1"):
        result = report.results[task_id]
        assert result["total"] == sum(range(STEPS))
        # The second delivery started where the first one's last save left off.
        assert result["resumed_from"] == saved[task_id]["step"]
        assert report.attempts[task_id] == 2
    # A task's checkpoint is deleted once it completes.
    assert cloud_tasks_sim.checkpoints() == {}


def test_a_task_without_a_checkpoint_starts_from_scratch(cloud_tasks_sim: CloudTasksSim) -> None:
    cloud_tasks_sim.add_tasks([{"task_id": "fresh", "data": {"step_s": 0}}])
    report = cloud_tasks_sim.run(count_steps)
    assert report.results["fresh"] == {"total": sum(range(STEPS)), "resumed_from": None}
    assert cloud_tasks_sim.checkpoints() == {}

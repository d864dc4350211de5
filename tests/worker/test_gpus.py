"""Each task slot of a GPU worker sees its own devices (CUDA_VISIBLE_DEVICES)."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from tests.worker.helpers import read_events, run_script, write_tasks

from cloud_tasks.domain.startup import WorkerSettings, worker_environment
from cloud_tasks.entrypoints.worker.gpus import slot_devices, visible_devices


def _results(path: Path) -> list[dict[str, object]]:
    return [e["result"] for e in read_events(path) if e["event_type"] == "task_completed"]


def test_each_running_slot_gets_its_own_gpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_tasks(tmp_path / "tasks.json", [{"task_id": f"t{i}", "data": {}} for i in range(8)])
    proc = run_script(
        "gpu_worker.py",
        ["--tasks", "tasks.json", "--num-simultaneous-tasks", "2", "--gpus", "4"],
        env={"RMS_CLOUD_TASKS_GPUS_PER_TASK": "2"},
    )
    assert proc.returncode == 0, proc.stderr
    results = _results(tmp_path / "events.log")
    assert len(results) == 8
    for result in results:
        assert result["env"] == ",".join(result["gpu_devices"])  # type: ignore[arg-type]
    # Two slots, two GPUs each, never the same devices at once.
    assert {tuple(r["gpu_devices"]) for r in results} == {("0", "1"), ("2", "3")}  # type: ignore[arg-type]


def test_devices_come_from_the_workers_own_visible_devices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_tasks(tmp_path / "tasks.json", [{"task_id": f"t{i}", "data": {}} for i in range(4)])
    proc = run_script(
        "gpu_worker.py",
        ["--tasks", "tasks.json", "--num-simultaneous-tasks", "2", "--gpus", "2"],
        env={"CUDA_VISIBLE_DEVICES": "5,7"},
    )
    assert proc.returncode == 0, proc.stderr
    assert {r["env"] for r in _results(tmp_path / "events.log")} == {"5", "7"}


def test_without_gpus_the_environment_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_tasks(tmp_path / "tasks.json", [{"task_id": "t0", "data": {"sleep": 0}}])
    proc = run_script("gpu_worker.py", ["--tasks", "tasks.json"])
    assert proc.returncode == 0, proc.stderr
    assert _results(tmp_path / "events.log") == [{"gpu_devices": [], "env": None}]


def test_more_gpus_than_the_vm_has_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_tasks(tmp_path / "tasks.json", [{"task_id": "t0", "data": {}}])
    proc = run_script(
        "gpu_worker.py",
        ["--tasks", "tasks.json", "--num-simultaneous-tasks", "3", "--gpus", "2"],
        env={"RMS_CLOUD_TASKS_GPUS_PER_TASK": "1"},
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0
    assert "needs 3 GPUs but --gpus is 2" in proc.stderr
    assert not (tmp_path / "events.log").exists()


@pytest.mark.parametrize(
    ("per_task", "slots", "expected"),
    [
        (1.0, 4, [("0",), ("1",), ("2",), ("3",)]),
        (2.0, 2, [("0", "1"), ("2", "3")]),
        (None, 2, [("0", "1"), ("2", "3")]),
        (0.5, 4, [("0",), ("0",), ("1",), ("1",)]),
        (None, 8, [("0",), ("0",), ("1",), ("1",), ("2",), ("2",), ("3",), ("3",)]),
    ],
)
def test_slot_devices(per_task: float | None, slots: int, expected: list[tuple[str, ...]]) -> None:
    devices = visible_devices(4, {})
    assert [slot_devices(s, devices, per_task, slots) for s in range(slots)] == expected


def test_manager_exports_gpus_only_for_gpu_instances() -> None:
    base = WorkerSettings(
        provider="aws",
        job_id="j",
        queue_name="j",
        instance_type="g4dn.12xlarge",
        num_cpus=48,
        memory_gib=192,
        num_tasks_per_instance=4,
    )
    assert "RMS_CLOUD_TASKS_GPUS" not in worker_environment(base)
    env = worker_environment(attrs.evolve(base, gpus=4, gpus_per_task=1.0))
    assert env["RMS_CLOUD_TASKS_GPUS"] == "4"
    assert env["RMS_CLOUD_TASKS_GPUS_PER_TASK"] == "1"

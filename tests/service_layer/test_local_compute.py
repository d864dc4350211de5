"""LocalCompute: instances are real process groups, visible and stoppable from another process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from cloud_tasks.adapters.local.compute import LocalCompute, LocalPricing
from cloud_tasks.domain.startup import WorkerSettings, build_startup_script, worker_environment
from cloud_tasks.ports import InstanceSpec, InstanceState


def _spec(script: str, job_id: str = "job") -> InstanceSpec:
    return InstanceSpec(
        job_id=job_id,
        instance_type="local",
        zone="local",
        image="this-machine",
        startup_script=script,
        use_spot=False,
        boot_disk_gb=10,
        price_per_hour_usd=0.0,
    )


def _wait_for(predicate, timeout_s: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def test_single_free_offer_describes_this_machine() -> None:
    (offer,) = LocalPricing().offers("anything")
    assert offer.vcpus == os.cpu_count()
    assert offer.price_per_hour_usd == 0.0
    assert offer.memory_gib > 0


def test_instance_runs_script_with_worker_environment(tmp_path: Path) -> None:
    compute = LocalCompute(tmp_path / "state", workdir=tmp_path, environment={"EXTRA_VAR": "x"})
    env = worker_environment(
        WorkerSettings("local", "job", "job", "local", 2, 4.0, num_tasks_per_instance=2)
    )
    script = build_startup_script(
        'env | grep -E "^(RMS_CLOUD_TASKS_|EXTRA_VAR)" | sort > env.txt\n'
        "python -c 'import sys; print(sys.executable)' > python.txt\nsleep 60\n",
        env,
    )
    instance = compute.create_instance(_spec(script))
    _wait_for(lambda: (tmp_path / "python.txt").exists() and (tmp_path / "python.txt").read_text())
    lines = (tmp_path / "env.txt").read_text().splitlines()
    assert "RMS_CLOUD_TASKS_NUM_TASKS_PER_INSTANCE=2" in lines
    assert f"RMS_CLOUD_TASKS_INSTANCE_ID={instance.instance_id}" in lines
    assert "EXTRA_VAR=x" in lines
    # The instance uses the manager's Python even without an activated virtualenv.
    assert Path((tmp_path / "python.txt").read_text().strip()).parent == Path(sys.executable).parent
    assert [i.state for i in compute.list_instances("job")] == [InstanceState.RUNNING]
    assert compute.list_instances("other-job") == []
    compute.terminate([instance.instance_id])
    assert compute.list_instances("job") == []


def test_another_process_lists_and_stops_the_whole_group(tmp_path: Path) -> None:
    starter = LocalCompute(tmp_path / "state", workdir=tmp_path)
    instance = starter.create_instance(_spec("sleep 300 &\necho $! > child.pid\nwait\n"))
    _wait_for(lambda: (tmp_path / "child.pid").exists() and (tmp_path / "child.pid").read_text())
    child_pid = int((tmp_path / "child.pid").read_text())
    other = LocalCompute(tmp_path / "state", workdir=tmp_path)
    (listed,) = other.list_instances(None)
    assert listed.instance_id == instance.instance_id
    assert listed.state is InstanceState.RUNNING
    other.terminate([instance.instance_id])
    _wait_for(
        lambda: (
            not psutil.pid_exists(child_pid)
            or psutil.Process(child_pid).status() == psutil.STATUS_ZOMBIE
        )
    )
    assert starter.list_instances("job") == []
    other.terminate([instance.instance_id])  # idempotent


def test_script_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    compute = LocalCompute(tmp_path / "state", workdir=tmp_path, terminate_wait_s=0.5)
    instance = compute.create_instance(
        _spec("trap '' TERM\necho up > up.txt\nwhile true; do sleep 0.1; done\n")
    )
    _wait_for(lambda: (tmp_path / "up.txt").exists())
    started = time.monotonic()
    compute.terminate([instance.instance_id])
    assert time.monotonic() - started < 10
    assert compute.list_instances("job") == []


def test_script_exit_and_kill_9_are_failures(tmp_path: Path) -> None:
    compute = LocalCompute(tmp_path / "state", workdir=tmp_path)
    broken = compute.create_instance(_spec("exit 3\n"))
    victim = compute.create_instance(_spec("sleep 300\n"))
    _wait_for(lambda: compute.exit_code(broken.instance_id) is not None)
    os.killpg(os.getpgid(_pid_of(tmp_path, victim.instance_id)), signal.SIGKILL)
    _wait_for(lambda: {i.state for i in compute.list_instances("job")} == {InstanceState.FAILED})
    assert compute.exit_code(broken.instance_id) == 3
    assert "local-instances" in compute.startup_log_hint(broken.instance_id)
    compute.terminate([broken.instance_id, victim.instance_id])
    assert compute.list_instances("job") == []


def _pid_of(tmp_path: Path, instance_id: str) -> int:
    import json

    registry = json.loads((tmp_path / "state" / "local-instances.json").read_text())
    return int(registry[instance_id]["pid"])


def test_state_survives_in_a_separate_python_process(tmp_path: Path) -> None:
    compute = LocalCompute(tmp_path / "state", workdir=tmp_path)
    compute.create_instance(_spec("sleep 300\n", job_id="other"))
    code = (
        "from cloud_tasks.adapters.local.compute import LocalCompute;"
        f"c = LocalCompute({str(tmp_path / 'state')!r});"
        "ids = [i.instance_id for i in c.list_instances('other')];"
        "c.terminate(ids); print(len(ids))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
    _wait_for(lambda: compute.list_instances("other") == [])

"""Compute and pricing for the ``local`` provider (SPEC §8): instances are local process groups.

Each "instance" runs the generated startup script with bash in a new session (its own process
group), with the ``RMS_CLOUD_TASKS_*`` environment a cloud VM gets. Instances are recorded in a
small JSON registry (guarded by a file lock) so that ``stop``, ``status`` and ``run --continue``
in another process find and stop them. The machine's cores and memory make the single instance
type, at price 0.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from cloud_tasks.domain.offers import BootDiskOption, InstanceOffer
from cloud_tasks.domain.startup import ENV_PREFIX
from cloud_tasks.exceptions import ProviderError
from cloud_tasks.ports import Image, Instance, InstanceSpec, InstanceState, Region

LOCAL_INSTANCE_TYPE = "local"
LOCAL_REGION = "local"
LOCAL_ZONE = "local"
LOCAL_IMAGE = "this-machine"
REGISTRY_NAME = "local-instances.json"
_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


def machine_architecture() -> str:
    return _ARCH.get(platform.machine().lower(), platform.machine().lower())


def local_offer() -> InstanceOffer:
    """The one instance type of the local provider: this machine, free."""
    return InstanceOffer(
        name=LOCAL_INSTANCE_TYPE,
        vcpus=os.cpu_count() or 1,
        memory_gib=round(psutil.virtual_memory().total / 2**30, 2),
        architecture=machine_architecture(),
        region=LOCAL_REGION,
        zone=LOCAL_ZONE,
        cpu_family=platform.processor() or platform.machine(),
        boot_disks=(BootDiskOption("local", 0.0),),
        price_per_hour_usd=0.0,
        spot_price_per_hour_usd=0.0,
    )


class LocalPricing:
    """The single zero-cost offer describing this machine."""

    provider = "local"

    def offers(self, region: str, *, refresh: bool = False) -> list[InstanceOffer]:
        return [local_offer()]

    def default_region(self) -> str:
        return LOCAL_REGION


def _alive(pid: int, create_time: float) -> bool:
    """True while the process that was started (not a later one reusing its pid) runs."""
    try:
        process = psutil.Process(pid)
        if abs(process.create_time() - create_time) > 1.0:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _group_alive(pgid: int) -> bool:
    """True while any process of the group is alive (zombies waiting to be reaped do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        if psutil.Process(pgid).status() != psutil.STATUS_ZOMBIE:
            return True
    except psutil.Error:
        pass
    for process in psutil.process_iter(["status"]):
        try:
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (OSError, psutil.Error):
            continue
    return False


def _private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) readable by the owner only."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file that only the owner can read (mode 0600 from the start)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(text)


class LocalCompute:
    """Instances as local process groups, recorded in ``state_dir/local-instances.json``.

    ``workdir`` is where startup scripts run (relative paths in them resolve from there).
    ``environment`` is added to every instance's environment (e.g. where the queue lives).
    ``terminate_wait_s`` is how long ``terminate`` lets a worker shut down cleanly after
    SIGTERM before the whole process group gets SIGKILL.
    """

    provider = "local"

    def __init__(
        self,
        state_dir: str | Path,
        *,
        workdir: str | Path | None = None,
        environment: Mapping[str, str] | None = None,
        terminate_wait_s: float = 10.0,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.workdir = Path(workdir).resolve() if workdir is not None else Path.cwd()
        self.environment = dict(environment or {})
        self.terminate_wait_s = terminate_wait_s
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    # -- registry -------------------------------------------------------------------------

    @property
    def registry_path(self) -> Path:
        return self.state_dir / REGISTRY_NAME

    def log_path(self, instance_id: str) -> Path:
        """Where an instance's startup script output (stdout and stderr) goes."""
        return self.state_dir / "local-instances" / f"{instance_id}.log"

    @contextlib.contextmanager
    def _registry(self) -> Iterator[dict[str, dict[str, Any]]]:
        try:
            _private_dir(self.state_dir)
            lock_path = self.state_dir / (REGISTRY_NAME + ".lock")
            with open(lock_path, "a+") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    entries: dict[str, dict[str, Any]] = {}
                    if self.registry_path.exists():
                        text = self.registry_path.read_text(encoding="utf-8")
                        entries = json.loads(text) if text.strip() else {}
                    before = json.dumps(entries, sort_keys=True)
                    yield entries
                    if json.dumps(entries, sort_keys=True) != before:
                        tmp = self.registry_path.with_suffix(".tmp")
                        _write_private(tmp, json.dumps(entries, indent=1))
                        os.replace(tmp, self.registry_path)
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
        except (OSError, ValueError) as exc:
            raise ProviderError(
                f"{self.registry_path}: cannot read or write the local instance registry: {exc}"
            ) from exc

    # -- Compute --------------------------------------------------------------------------

    def create_instances(self, spec: InstanceSpec, count: int) -> list[Instance]:
        """Local instances are process groups started one by one (each is quick)."""
        if count < 1:
            raise ValueError("count must be at least 1")
        return [self.create_instance(spec) for _ in range(count)]

    def create_instance(self, spec: InstanceSpec) -> Instance:
        instance_id = f"local-{uuid.uuid4().hex[:12]}"
        name = f"{spec.job_id}-{instance_id.removeprefix('local-')[:8]}"
        script_dir = self.state_dir / "local-instances"
        _private_dir(self.state_dir)
        _private_dir(script_dir)
        script_path = script_dir / f"{instance_id}.sh"
        # The script may hold the user's secrets: owner-only, like the queue and the database.
        _write_private(script_path, spec.startup_script)
        log_path = self.log_path(instance_id)
        os.close(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        env = dict(os.environ)
        # The instance runs in the same Python environment as the manager, as an installed
        # image would provide; a virtualenv need not be activated.
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        env.update(self.environment)
        env[ENV_PREFIX + "INSTANCE_ID"] = instance_id
        env[ENV_PREFIX + "INSTANCE_NAME"] = name
        env.setdefault(ENV_PREFIX + "PROVIDER", "local")
        try:
            with open(log_path, "ab") as log:
                process = subprocess.Popen(
                    ["bash", str(script_path)],
                    cwd=self.workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except OSError as exc:
            raise ProviderError(f"cannot start a local instance: {exc}") from exc
        create_time = psutil.Process(process.pid).create_time()
        launched_at = time.time()
        self._children[instance_id] = process
        entry = {
            "instance_id": instance_id,
            "name": name,
            "job_id": spec.job_id,
            "instance_type": spec.instance_type,
            "zone": spec.zone,
            "is_spot": spec.use_spot,
            "price_per_hour_usd": spec.price_per_hour_usd or 0.0,
            "launched_at": launched_at,
            "pid": process.pid,
            "create_time": create_time,
            "log_file": str(log_path),
            "terminated": False,
        }
        with self._registry() as entries:
            entries[instance_id] = entry
        return self._instance(entry, InstanceState.RUNNING)

    def _state(self, entry: Mapping[str, Any]) -> InstanceState:
        child = self._children.get(entry["instance_id"])
        if child is not None:
            leader_alive = child.poll() is None
        else:
            leader_alive = _alive(int(entry["pid"]), float(entry["create_time"]))
        if entry.get("terminated"):
            group = leader_alive or _group_alive(int(entry["pid"]))
            return InstanceState.STOPPING if group else InstanceState.TERMINATED
        if leader_alive:
            return InstanceState.RUNNING
        # The startup script ended on its own (or was killed): the instance has failed.
        return InstanceState.FAILED

    @staticmethod
    def _instance(entry: Mapping[str, Any], state: InstanceState) -> Instance:
        return Instance(
            instance_id=entry["instance_id"],
            name=entry["name"],
            job_id=entry["job_id"],
            instance_type=entry["instance_type"],
            zone=entry["zone"],
            state=state,
            is_spot=bool(entry["is_spot"]),
            price_per_hour_usd=float(entry["price_per_hour_usd"]),
            launched_at=float(entry["launched_at"]),
        )

    def list_instances(self, job_id: str | None) -> list[Instance]:
        """Instances not yet cleaned up by ``terminate``, oldest first."""
        with self._registry() as entries:
            listed = [
                self._instance(entry, self._state(entry))
                for entry in entries.values()
                if job_id is None or entry["job_id"] == job_id
            ]
            # Entries whose processes are all gone after a terminate are forgotten.
            for instance in listed:
                if instance.state is InstanceState.TERMINATED:
                    entries.pop(instance.instance_id, None)
        return sorted(
            (i for i in listed if i.state is not InstanceState.TERMINATED),
            key=lambda instance: instance.launched_at,
        )

    def exit_code(self, instance_id: str) -> int | None:
        """The startup script's exit status when this process started it and it ended."""
        child = self._children.get(instance_id)
        return None if child is None else child.poll()

    def terminate(self, instance_ids: Sequence[str]) -> None:
        """SIGTERM each instance's process group, then SIGKILL what is left after the wait."""
        wanted = set(instance_ids)
        with self._registry() as entries:
            targets = [entries[i] for i in wanted if i in entries]
            for entry in targets:
                entry["terminated"] = True
        for entry in targets:
            self._signal_group(int(entry["pid"]), signal.SIGTERM)
        deadline = time.monotonic() + self.terminate_wait_s
        remaining = list(targets)
        while remaining and time.monotonic() < deadline:
            remaining = [entry for entry in remaining if self._group_running(entry)]
            if remaining:
                time.sleep(0.05)
        for entry in remaining:
            self._signal_group(int(entry["pid"]), signal.SIGKILL)
        for entry in targets:
            child = self._children.pop(entry["instance_id"], None)
            if child is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=5)
        with self._registry() as entries:
            for entry in targets:
                if not self._group_running(entry):
                    entries.pop(entry["instance_id"], None)

    def _group_running(self, entry: Mapping[str, Any]) -> bool:
        child = self._children.get(entry["instance_id"])
        if child is not None:
            child.poll()
        return _group_alive(int(entry["pid"]))

    @staticmethod
    def _signal_group(pgid: int, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signum)

    def list_regions(self) -> list[Region]:
        return [Region(LOCAL_REGION, (LOCAL_ZONE,), "this machine")]

    def list_images(self, architecture: str | None = None) -> list[Image]:
        return [Image(LOCAL_IMAGE, machine_architecture(), "the software installed here")]

    def default_image(self, architecture: str) -> str:
        return LOCAL_IMAGE

    def startup_log_hint(self, instance_id: str) -> str | None:
        """Where to look when an instance's startup script misbehaves."""
        return f"the startup script output in {self.log_path(instance_id)}"


__all__ = ["LOCAL_INSTANCE_TYPE", "LocalCompute", "LocalPricing", "local_offer"]

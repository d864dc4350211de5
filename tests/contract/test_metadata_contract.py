"""The ``InstanceMetadata`` contract (ports.InstanceMetadata), run against every adapter.

ec2: ``Ec2InstanceMetadata`` on the loopback IMDSv2 fake, and on moto's server (which serves
the instance id but no spot notices); gce: ``GceInstanceMetadata`` on the loopback metadata
fake; local: ``LocalInstanceMetadata`` inside an instance ``LocalCompute`` started.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

from cloud_tasks.exceptions import ProviderError
from cloud_tasks.ports import InstanceMetadata

ADAPTERS = ["ec2", "ec2-moto", "gce", "local"]


@attrs.frozen
class MetadataKit:
    kind: str
    metadata: InstanceMetadata
    #: The id the provider gave the instance the metadata describes.
    instance_id: str
    #: Makes the provider announce that the spot VM will be reclaimed (None: it cannot).
    announce: Callable[[], None] | None
    #: The same adapter pointed at a metadata server that does not answer (None: it has none).
    unreachable: Callable[[], InstanceMetadata] | None = None
    #: The same adapter where it knows it runs on no instance (None: it cannot tell).
    off_instance: Callable[[], InstanceMetadata] | None = None


def _local_instance(state_dir: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """(the id LocalCompute gave an instance, the environment the instance runs with)."""
    from cloud_tasks.adapters.local.compute import (
        LOCAL_IMAGE,
        LOCAL_INSTANCE_TYPE,
        LOCAL_ZONE,
        LocalCompute,
    )
    from cloud_tasks.ports import InstanceSpec

    out = state_dir / "environment.json"
    script = (
        f"{sys.executable} -c 'import json, os; print(json.dumps(dict(os.environ)))' "
        f"> {out}.tmp && mv {out}.tmp {out}\nexec sleep 120\n"
    )
    compute = LocalCompute(state_dir, workdir=state_dir)
    spec = InstanceSpec("job-a", LOCAL_INSTANCE_TYPE, LOCAL_ZONE, LOCAL_IMAGE, script, False, 10)
    created = compute.create_instance(spec)
    try:
        deadline = time.monotonic() + 60
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        yield created.instance_id, json.loads(out.read_text())
    finally:
        compute.terminate([created.instance_id])


@pytest.fixture(params=ADAPTERS)
def kit(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MetadataKit]:
    kind: str = request.param
    if kind == "ec2":
        from cloud_tasks.adapters.aws.metadata import Ec2InstanceMetadata
        from tests.fakes.metadata import imds_server

        with imds_server() as (url, imds):

            def off_instance() -> InstanceMetadata:
                # The SDKs' switch for "not on EC2": no request is made.
                monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url)
                monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
                return Ec2InstanceMetadata()

            def announce() -> None:
                imds.spot_action = {"action": "terminate", "time": "2030-01-01T00:00:00Z"}

            yield MetadataKit(
                kind,
                Ec2InstanceMetadata(url),
                imds.instance_id,
                announce,
                lambda: Ec2InstanceMetadata("http://127.0.0.1:1", timeout_s=0.5),
                off_instance,
            )
    elif kind == "ec2-moto":
        from cloud_tasks.adapters.aws.metadata import Ec2InstanceMetadata

        moto: str = request.getfixturevalue("moto_server")
        yield MetadataKit(kind, Ec2InstanceMetadata(moto), "i-fake", None)
    elif kind == "gce":
        from cloud_tasks.adapters.gcp.metadata import GceInstanceMetadata
        from tests.fakes.metadata import gce_metadata_server

        with gce_metadata_server() as (host, gce):

            def preempt() -> None:
                gce.preempted = True

            yield MetadataKit(
                kind,
                GceInstanceMetadata(host),
                gce.instance_id,
                preempt,
                lambda: GceInstanceMetadata("127.0.0.1:1", timeout_s=0.5),
            )
    else:
        from cloud_tasks.adapters.local.metadata import LocalInstanceMetadata

        for instance_id, environment in _local_instance(tmp_path / "state"):
            yield MetadataKit(
                kind,
                LocalInstanceMetadata(environment),
                instance_id,
                None,
                off_instance=lambda: LocalInstanceMetadata({}),
            )


def test_instance_id_is_the_id_the_provider_gave_the_instance(kit: MetadataKit) -> None:
    assert kit.metadata.instance_id() == kit.instance_id
    assert kit.metadata.instance_id() == kit.instance_id


def test_no_notice_until_the_provider_announces_one_then_it_stays(kit: MetadataKit) -> None:
    if kit.kind == "ec2-moto":
        pytest.skip("moto serves no spot/instance-action (the loopback IMDS fake does)")
    assert kit.metadata.termination_notice() is False
    assert kit.metadata.termination_notice() is False
    if kit.announce is None:
        return  # this provider never reclaims the instance
    kit.announce()
    assert kit.metadata.termination_notice() is True
    assert kit.metadata.termination_notice() is True
    assert kit.metadata.instance_id() == kit.instance_id


def test_a_metadata_server_that_does_not_answer_is_a_provider_error(kit: MetadataKit) -> None:
    if kit.unreachable is None:
        reason = {"local": "local has no metadata server", "ec2-moto": "the ec2 kit covers it"}
        pytest.skip(reason[kit.kind])
    metadata = kit.unreachable()
    with pytest.raises(ProviderError) as caught:
        metadata.termination_notice()
    assert "\n" not in str(caught.value)
    with pytest.raises(ProviderError):
        metadata.instance_id()


def test_off_an_instance_there_is_no_id_and_no_notice(kit: MetadataKit) -> None:
    if kit.off_instance is None:
        pytest.skip(f"{kit.kind}: the adapter cannot tell it runs on no instance")
    metadata = kit.off_instance()
    assert metadata.instance_id() is None
    assert metadata.termination_notice() is False

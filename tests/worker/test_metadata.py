"""The EC2 and Compute Engine metadata adapters against loopback fakes of the servers."""

from __future__ import annotations

import pytest
from tests.fakes.metadata import gce_metadata_server, imds_server

from cloud_tasks.adapters.aws.metadata import Ec2InstanceMetadata
from cloud_tasks.adapters.gcp.metadata import GceInstanceMetadata
from cloud_tasks.exceptions import ProviderError


def test_ec2_imdsv2_notice_and_instance_id(monkeypatch: pytest.MonkeyPatch) -> None:
    with imds_server() as (url, state):
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url)
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "false")
        metadata = Ec2InstanceMetadata()
        assert metadata.instance_id() == state.instance_id
        assert metadata.termination_notice() is False
        state.spot_action = {"action": "terminate", "time": "2030-01-01T00:00:00Z"}
        assert metadata.termination_notice() is True
        assert state.tokens_issued == 1  # the session token is reused
        assert state.rejected_without_token == 0


def test_ec2_metadata_disabled_makes_no_request(monkeypatch: pytest.MonkeyPatch) -> None:
    with imds_server() as (url, state):
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url)
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        metadata = Ec2InstanceMetadata()
        assert metadata.instance_id() is None
        assert metadata.termination_notice() is False
        assert state.tokens_issued == 0


def test_ec2_unreachable_endpoint_is_a_provider_error() -> None:
    metadata = Ec2InstanceMetadata("http://127.0.0.1:1", timeout_s=0.5)
    with pytest.raises(ProviderError, match="EC2 metadata"):
        metadata.termination_notice()


def test_gce_preempted_and_instance_id(monkeypatch: pytest.MonkeyPatch) -> None:
    with gce_metadata_server() as (host, state):
        monkeypatch.setenv("GCE_METADATA_HOST", host)
        metadata = GceInstanceMetadata()
        assert metadata.instance_id() == state.instance_id
        assert metadata.termination_notice() is False
        state.preempted = True
        assert metadata.termination_notice() is True
        assert state.rejected_without_flavor == 0


def test_gce_unreachable_host_is_a_provider_error() -> None:
    # tests/conftest.py points GCE_METADATA_HOST at a closed loopback port
    with pytest.raises(ProviderError, match="GCE metadata"):
        GceInstanceMetadata(timeout_s=0.5).termination_notice()

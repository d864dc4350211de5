"""Environments for subprocesses and tests that must see no cloud account, or no cloud SDK.

"No credentials" is real here: the AWS key variables are gone, the AWS shared files are empty,
there are no Application Default Credentials (an empty gcloud configuration directory), and the
metadata services are disabled or on a closed loopback port, so nothing can reach a network.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

NO_SDK_DIR = Path(__file__).resolve().parent / "no_sdk"
CLOUD_SDK_MODULES = ("google", "grpc", "boto3", "botocore")

_ACCOUNT_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "GCLOUD_PROJECT",
    "CLOUDSDK_CORE_PROJECT",
    "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE",
    "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDBILLING",
)


def _no_account_settings(directory: Path) -> dict[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    empty = directory / "empty-aws-file"
    empty.write_text("")
    gcloud = directory / "empty-gcloud-config"
    gcloud.mkdir(exist_ok=True)
    return {
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_CONFIG_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        "CLOUDSDK_CONFIG": str(gcloud),
        "GCE_METADATA_HOST": "127.0.0.1:1",
        "GCE_METADATA_IP": "127.0.0.1:1",
        "NO_GCE_CHECK": "true",
    }


def no_account_env(directory: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) as seen on a machine with no AWS or GCP account."""
    env = {k: v for k, v in (os.environ if base is None else base).items()}
    for name in _ACCOUNT_VARIABLES:
        env.pop(name, None)
    env.update(_no_account_settings(directory))
    return env


def without_account(monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    """The same, for this process (CliRunner tests)."""
    for name in _ACCOUNT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in _no_account_settings(directory).items():
        monkeypatch.setenv(name, value)


def without_modules(
    env: Mapping[str, str], modules: Iterable[str] = CLOUD_SDK_MODULES
) -> dict[str, str]:
    """``env`` for a Python subprocess in which ``modules`` are not installed."""
    out = dict(env)
    path = out.get("PYTHONPATH", "")
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(NO_SDK_DIR), path) if p)
    out["CLOUD_TASKS_TEST_ABSENT_MODULES"] = ",".join(modules)
    return out

"""``AwsPreflight``: what ``cloud_tasks check`` asks AWS before a job creates anything.

Credentials with STS ``GetCallerIdentity``; permissions with ``DryRun`` requests, which AWS
answers ``DryRunOperation`` when the caller may make the call and ``UnauthorizedOperation`` when
it may not (the ``RunInstances`` dry run carries the image, type and instance profile, so it
also covers ``iam:PassRole``); the image with ``DescribeImages``; vCPU limits with Service
Quotas; the instance profile with IAM ``GetInstanceProfile``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from cloud_tasks.adapters.aws.translate import CREDENTIALS_HINT, rejected_setting
from cloud_tasks.domain.text import collapse_whitespace
from cloud_tasks.ports import CheckResult, PreflightRequest

#: Service Quotas codes of the vCPU limits for the standard families (A, C, D, H, I, M, R, T,
#: Z), which is every family Cloud Tasks offers by default.
ON_DEMAND_VCPU_QUOTA = "L-1216C47A"
SPOT_VCPU_QUOTA = "L-34B43A08"
_STANDARD_FAMILIES = frozenset("acdhimrtz")
_DENIED = frozenset({"UnauthorizedOperation", "AccessDenied", "AccessDeniedException"})
_CREDENTIALS = frozenset(
    {"AuthFailure", "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken"}
)
#: A made-up instance id for dry runs of calls that need one: permission is checked first.
_NO_INSTANCE = "i-00000000000000000"

#: The IAM actions a job needs, as ``check`` verifies them (docs/providers.md lists them).
EC2_ACTIONS = (
    "ec2:RunInstances",
    "ec2:CreateTags",
    "ec2:DescribeInstances",
    "ec2:TerminateInstances",
)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _message(exc: ClientError) -> str:
    return collapse_whitespace(str(exc.response.get("Error", {}).get("Message", "")))


class AwsPreflight:
    """The ``Preflight`` port on AWS.

    Args:
        client: returns a boto3 client for a service name (``ec2``, ``sts``,
            ``service-quotas``, ``iam``) in the job's region.
    """

    def __init__(self, client: Callable[[str], Any]) -> None:
        self._client = client

    def checks(self, request: PreflightRequest) -> list[CheckResult]:
        credentials = self._credentials()
        if credentials.status == "fail":
            return [credentials]
        return [
            credentials,
            *self._permissions(request),
            self._image(request),
            self._quota(request),
            self._worker_credentials(request),
        ]

    def _credentials(self) -> CheckResult:
        name = "credentials"
        try:
            identity = self._client("sts").get_caller_identity()
        except NoCredentialsError:
            return CheckResult(name, "fail", "no AWS credentials found", CREDENTIALS_HINT)
        except ClientError as exc:
            if _code(exc) in _CREDENTIALS | _DENIED:
                return CheckResult(
                    name, "fail", f"AWS rejected them ({_code(exc)})", CREDENTIALS_HINT
                )
            return CheckResult(name, "warn", f"could not verify ({_code(exc)}: {_message(exc)})")
        except BotoCoreError as exc:
            return CheckResult(name, "warn", collapse_whitespace(f"could not verify ({exc})"))
        return CheckResult(name, "ok", f"account {identity.get('Account', '?')}")

    def _dry_run(self, action: str, call: Callable[[], Any]) -> CheckResult:
        name = f"permission {action}"
        try:
            call()
        except ClientError as exc:
            code = _code(exc)
            if code == "DryRunOperation":
                return CheckResult(name, "ok", "granted")
            if code in _DENIED:
                return CheckResult(
                    name,
                    "fail",
                    "denied",
                    f"grant {action} to the identity running cloud_tasks (docs/providers.md)",
                )
            rejected = rejected_setting(code, _message(exc))
            if rejected is not None:
                # The dry run got past the permission check to a bad argument, which the
                # image and worker-credential checks report.
                return CheckResult(name, "ok", "granted")
            return CheckResult(name, "warn", f"could not verify ({code}: {_message(exc)})")
        except BotoCoreError as exc:
            return CheckResult(name, "warn", collapse_whitespace(f"could not verify ({exc})"))
        return CheckResult(name, "warn", "could not verify (the dry run was not refused)")

    def _permissions(self, request: PreflightRequest) -> list[CheckResult]:
        ec2 = self._client("ec2")
        run: dict[str, Any] = {
            "DryRun": True,
            "ImageId": request.image,
            "InstanceType": request.instance_type,
            "MinCount": 1,
            "MaxCount": 1,
        }
        if request.zone:
            run["Placement"] = {"AvailabilityZone": request.zone}
        if request.service_account:
            run["IamInstanceProfile"] = {"Name": request.service_account}
        tags = [{"Key": "rms-cloud-tasks-managed", "Value": "true"}]
        return [
            self._dry_run("ec2:RunInstances", lambda: ec2.run_instances(**run)),
            self._dry_run(
                "ec2:CreateTags",
                lambda: ec2.create_tags(DryRun=True, Resources=[_NO_INSTANCE], Tags=tags),
            ),
            self._dry_run(
                "ec2:DescribeInstances", lambda: ec2.describe_instances(DryRun=True, MaxResults=5)
            ),
            self._dry_run(
                "ec2:TerminateInstances",
                lambda: ec2.terminate_instances(DryRun=True, InstanceIds=[_NO_INSTANCE]),
            ),
        ]

    def _image(self, request: PreflightRequest) -> CheckResult:
        name = "image"
        fix = "set 'image' to an AMI of this region ('cloud_tasks list_images')"
        try:
            images = self._client("ec2").describe_images(ImageIds=[request.image]).get("Images")
        except ClientError as exc:
            if _code(exc).startswith("InvalidAMIID"):
                return CheckResult(
                    name, "fail", f"{request.image} does not exist in {request.region}", fix
                )
            return CheckResult(name, "warn", f"could not verify ({_code(exc)}: {_message(exc)})")
        except BotoCoreError as exc:
            return CheckResult(name, "warn", collapse_whitespace(f"could not verify ({exc})"))
        if not images:
            return CheckResult(
                name, "fail", f"{request.image} does not exist in {request.region}", fix
            )
        architecture = str(images[0].get("Architecture", ""))
        if architecture and architecture != request.architecture:
            return CheckResult(
                name,
                "fail",
                f"{request.image} is {architecture}; {request.instance_type} is "
                f"{request.architecture}",
                f"use an {request.architecture} image, or set architecture: {architecture}",
            )
        return CheckResult(name, "ok", f"{request.image} ({architecture or 'architecture?'})")

    def _quota(self, request: PreflightRequest) -> CheckResult:
        market = "spot" if request.use_spot else "on-demand"
        name = f"{market} vCPU quota"
        if request.instance_type[:1] not in _STANDARD_FAMILIES:
            return CheckResult(
                name, "warn", f"not checked for the {request.instance_type.split('.')[0]} family"
            )
        code = SPOT_VCPU_QUOTA if request.use_spot else ON_DEMAND_VCPU_QUOTA
        try:
            quota = self._client("service-quotas").get_service_quota(
                ServiceCode="ec2", QuotaCode=code
            )
            limit = float(quota["Quota"]["Value"])
        except ClientError as exc:
            return CheckResult(name, "warn", f"could not verify ({_code(exc)}: {_message(exc)})")
        except (BotoCoreError, KeyError, TypeError, ValueError) as exc:
            return CheckResult(name, "warn", collapse_whitespace(f"could not verify ({exc})"))
        return quota_result(
            name,
            limit,
            request,
            f"request more in the Service Quotas console (ec2 {code}) or lower max_instances",
        )

    def _worker_credentials(self, request: PreflightRequest) -> CheckResult:
        name = "worker credentials"
        if not request.service_account:
            return CheckResult(
                name,
                "warn",
                "no instance profile: the startup script must give the worker AWS credentials",
                "set service_account to an IAM instance profile that may use SQS",
            )
        try:
            self._client("iam").get_instance_profile(InstanceProfileName=request.service_account)
        except ClientError as exc:
            if _code(exc) == "NoSuchEntity":
                return CheckResult(
                    name,
                    "fail",
                    f"no instance profile named {request.service_account!r}",
                    "set service_account to an existing IAM instance profile",
                )
            return CheckResult(name, "warn", f"could not verify ({_code(exc)}: {_message(exc)})")
        except BotoCoreError as exc:
            return CheckResult(name, "warn", collapse_whitespace(f"could not verify ({exc})"))
        return CheckResult(name, "ok", f"instance profile {request.service_account}")


def quota_result(name: str, limit: float, request: PreflightRequest, fix: str) -> CheckResult:
    """A vCPU limit against the planned pool: fail when one instance does not fit, warn when
    the whole pool does not."""
    one = request.vcpus_per_instance
    planned = one * request.instances
    if limit < one:
        return CheckResult(
            name,
            "fail",
            f"limit {limit:g} vCPUs; one {request.instance_type} needs {one}",
            fix,
        )
    if limit < planned:
        return CheckResult(
            name,
            "warn",
            f"limit {limit:g} vCPUs; the planned pool needs {planned}: it will stop at "
            f"{int(limit // one)} instances",
            fix,
        )
    return CheckResult(name, "ok", f"limit {limit:g} vCPUs, the pool needs {planned}")


__all__ = ["EC2_ACTIONS", "AwsPreflight", "quota_result"]

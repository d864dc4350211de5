"""``Ec2Compute``: launch, list and terminate a job's EC2 instances, scoped by tags."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from cloud_tasks.adapters.aws.clientconfig import final_capacity_errors
from cloud_tasks.adapters.aws.errors import aws_errors
from cloud_tasks.adapters.aws.translate import (
    JOB_TAG,
    MANAGED_TAG,
    PRICE_TAG,
    instance_from_ec2,
)
from cloud_tasks.adapters.names import checked_job_id
from cloud_tasks.exceptions import ConfigError, ProviderError, RejectedError
from cloud_tasks.ports import Image, Instance, InstanceSpec, Region

#: Canonical's account, publisher of the official Ubuntu AMIs.
CANONICAL_OWNER = "099720109477"
UBUNTU_NAME = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{arch}-server-*"
_AMI_ARCH = {"x86_64": "amd64", "arm64": "arm64"}
#: EC2 rejects user data above 16 KB (before base64 encoding).
MAX_USER_DATA_BYTES = 16 * 1024
_LIVE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]


class Ec2Compute:
    """The ``Compute`` port on EC2 in one region.

    Args:
        ec2: an EC2 client for ``region``.
        region: the region instances are launched in.
        ec2_for_region: returns a client for another region (``list_regions`` uses it to
            list every region's zones); ``None`` lists zones of ``region`` only.
        image_owner: the account whose Ubuntu images are the default (Canonical).
        security_group_ids, subnet_id: passed to ``run_instances`` when given.
    """

    provider = "aws"

    def __init__(
        self,
        ec2: Any,
        *,
        region: str,
        ec2_for_region: Callable[[str], Any] | None = None,
        image_owner: str = CANONICAL_OWNER,
        security_group_ids: Sequence[str] = (),
        subnet_id: str | None = None,
    ) -> None:
        self._ec2 = ec2
        self.region = region
        self._ec2_for_region = ec2_for_region
        self._image_owner = image_owner
        self._security_group_ids = list(security_group_ids)
        self._subnet_id = subnet_id
        self._root_devices: dict[str, str] = {}

    def create_instance(self, spec: InstanceSpec) -> Instance:
        return self.create_instances(spec, 1)[0]

    def create_instances(self, spec: InstanceSpec, count: int) -> list[Instance]:
        """One ``RunInstances`` call for all ``count`` instances (``MinCount = MaxCount``): EC2
        starts them all or fails with ``InsufficientInstanceCapacity``, and the pool manager
        moves the batch to the next zone or type (a capacity error is not retried:
        ``clientconfig.final_capacity_errors``). A client token makes botocore's retries of
        the call idempotent (a retried call never starts a second batch)."""
        if count < 1:
            raise ValueError("count must be at least 1")
        user_data = spec.startup_script.encode("utf-8")
        if len(user_data) > MAX_USER_DATA_BYTES:
            raise ConfigError(
                f"startup script is {len(user_data)} bytes; AWS allows {MAX_USER_DATA_BYTES} "
                "bytes of user data; move the bulk into a file the script downloads"
            )
        name = f"{spec.job_id}-{secrets.token_hex(3)}"
        tags = [
            {"Key": "Name", "Value": name},
            {"Key": JOB_TAG, "Value": spec.job_id},
            {"Key": MANAGED_TAG, "Value": "true"},
        ]
        if spec.price_per_hour_usd is not None:
            tags.append({"Key": PRICE_TAG, "Value": f"{spec.price_per_hour_usd:.6f}"})
        ebs: dict[str, Any] = {"VolumeSize": spec.boot_disk_gb, "DeleteOnTermination": True}
        if spec.boot_disk_type:
            ebs["VolumeType"] = spec.boot_disk_type
        request: dict[str, Any] = {
            "ImageId": spec.image,
            "InstanceType": spec.instance_type,
            "MinCount": count,
            "MaxCount": count,
            "ClientToken": secrets.token_hex(16),
            "UserData": spec.startup_script,
            "Placement": {"AvailabilityZone": spec.zone},
            "BlockDeviceMappings": [{"DeviceName": self._root_device(spec.image), "Ebs": ebs}],
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tags},
                {"ResourceType": "volume", "Tags": tags[1:]},
            ],
            "InstanceInitiatedShutdownBehavior": "terminate",
            # IMDSv2 only: the worker polls the spot notice with a session token.
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
        }
        if spec.use_spot:
            request["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {
                    "SpotInstanceType": "one-time",
                    "InstanceInterruptionBehavior": "terminate",
                },
            }
        if spec.service_account:
            request["IamInstanceProfile"] = {"Name": spec.service_account}
        if self._security_group_ids:
            request["SecurityGroupIds"] = self._security_group_ids
        if self._subnet_id:
            request["SubnetId"] = self._subnet_id
        with aws_errors("run_instances", instance_type=spec.instance_type, zone=spec.zone):
            # Registered once per client (by its unique id), on the first launch.
            response = final_capacity_errors(self._ec2).run_instances(**request)
        return [instance_from_ec2(item) for item in response["Instances"]]

    def _root_device(self, image: str) -> str:
        if image not in self._root_devices:
            with aws_errors("describe_images"):
                images = self._ec2.describe_images(ImageIds=[image]).get("Images", [])
            if not images:
                raise RejectedError(
                    f"image {image!r} does not exist in {self.region}; set 'image' to an AMI "
                    "id of this region ('cloud_tasks list_images')",
                    setting="image",
                )
            self._root_devices[image] = str(images[0].get("RootDeviceName") or "/dev/sda1")
        return self._root_devices[image]

    def image_identity(self, image: str) -> tuple[str, str]:
        """(name, owner) of an AMI of this region: what finds its copy in another region."""
        with aws_errors("describe_images"):
            images = self._ec2.describe_images(ImageIds=[image]).get("Images", [])
        if not images:
            raise RejectedError(f"image {image!r} does not exist in {self.region}", setting="image")
        return str(images[0].get("Name", "")), str(images[0].get("OwnerId", ""))

    def find_image(self, name: str, owner: str) -> str | None:
        """The AMI of this region with ``name`` published by ``owner``, if there is one."""
        with aws_errors("describe_images"):
            images = self._ec2.describe_images(
                Owners=[owner], Filters=[{"Name": "name", "Values": [name]}]
            ).get("Images", [])
        return str(images[0]["ImageId"]) if images else None

    def list_instances(self, job_id: str | None) -> list[Instance]:
        filters = [
            {"Name": f"tag:{MANAGED_TAG}", "Values": ["true"]},
            {"Name": "instance-state-name", "Values": _LIVE_STATES},
        ]
        if job_id is not None:
            # A filter value is a wildcard pattern: 'a*' would match every job.
            filters.append({"Name": f"tag:{JOB_TAG}", "Values": [checked_job_id(job_id)]})
        instances: list[Instance] = []
        with aws_errors("describe_instances"):
            for page in self._ec2.get_paginator("describe_instances").paginate(Filters=filters):
                for reservation in page.get("Reservations", []):
                    instances.extend(instance_from_ec2(i) for i in reservation["Instances"])
        return instances

    def terminate(self, instance_ids: Sequence[str]) -> None:
        ids = list(instance_ids)
        # terminate_instances takes up to 1000 ids per call.
        for start in range(0, len(ids), 1000):
            batch = ids[start : start + 1000]
            with aws_errors("terminate_instances"):
                try:
                    self._ec2.terminate_instances(InstanceIds=batch)
                except ClientError as exc:
                    if _error_code(exc) != "InvalidInstanceID.NotFound":
                        raise
                    # Some are gone already: terminate the rest one by one (idempotent).
                    for instance_id in batch:
                        self._terminate_one(instance_id)

    def _terminate_one(self, instance_id: str) -> None:
        try:
            self._ec2.terminate_instances(InstanceIds=[instance_id])
        except ClientError as exc:
            if _error_code(exc) != "InvalidInstanceID.NotFound":
                raise

    def list_regions(self) -> list[Region]:
        with aws_errors("describe_regions"):
            names = sorted(r["RegionName"] for r in self._ec2.describe_regions()["Regions"])

        def zones(name: str) -> tuple[str, ...]:
            if name != self.region and self._ec2_for_region is None:
                return ()
            client = self._ec2 if name == self.region else self._ec2_for_region(name)  # type: ignore[misc]
            with aws_errors("describe_availability_zones"):
                found = client.describe_availability_zones()["AvailabilityZones"]
            return tuple(sorted(z["ZoneName"] for z in found if z.get("ZoneType") != "local-zone"))

        with ThreadPoolExecutor(max_workers=8) as pool:
            all_zones = list(pool.map(zones, names))
        return [Region(name=n, zones=z) for n, z in zip(names, all_zones, strict=True)]

    def list_images(self, architecture: str | None = None) -> list[Image]:
        arches = [architecture] if architecture else list(_AMI_ARCH)
        images: list[Image] = []
        for arch in arches:
            if arch not in _AMI_ARCH:
                raise ConfigError(f"architecture {arch!r} is not one of x86_64, arm64")
            with aws_errors("describe_images"):
                found = self._ec2.describe_images(
                    Owners=[self._image_owner],
                    Filters=[
                        {"Name": "name", "Values": [UBUNTU_NAME.format(arch=_AMI_ARCH[arch])]},
                        {"Name": "state", "Values": ["available"]},
                    ],
                )["Images"]
            for item in found:
                images.append(
                    Image(
                        name=str(item["ImageId"]),
                        architecture=arch,
                        description=str(item.get("Name", "")),
                        created=str(item.get("CreationDate", "")),
                    )
                )
        # Image names end in the build date, so they break ties in creation time.
        images.sort(key=lambda i: (i.created, i.description), reverse=True)
        return images

    def default_image(self, architecture: str) -> str:
        images = self.list_images(architecture)
        if not images:
            raise ProviderError(
                f"no Ubuntu 24.04 LTS image for {architecture} in {self.region}; "
                "set 'image' in the config to an AMI id"
            )
        return images[0].name

    def startup_log_hint(self, instance_id: str) -> str | None:
        return f"'aws ec2 get-console-output --instance-id {instance_id}'"


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))

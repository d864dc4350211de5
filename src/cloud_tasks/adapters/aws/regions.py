"""``MultiRegionEc2Compute``: the ``Compute`` port over the job's region and the other allowed
``regions`` (an EC2 client is bound to one region; AMIs are regional)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from cloud_tasks.adapters.aws.ec2 import Ec2Compute
from cloud_tasks.exceptions import RejectedError
from cloud_tasks.ports import Image, Instance, InstanceSpec, Region


class MultiRegionEc2Compute:
    """Launches in the region of the spec's zone; lists and terminates in every region.

    An instance in another region boots the AMI with the same name and owner as the job's
    image there (Canonical publishes each Ubuntu build in every region under one name).
    """

    provider = "aws"

    def __init__(
        self, home: Ec2Compute, other: Callable[[str], Ec2Compute], regions: Sequence[str]
    ) -> None:
        self.home = home
        self.region = home.region
        self._computes = {home.region: home}
        for region in regions:
            if region not in self._computes:
                self._computes[region] = other(region)
        self._images: dict[tuple[str, str], str] = {}

    def _for_zone(self, zone: str) -> Ec2Compute:
        # An AWS zone is its region plus a letter (us-west-2b).
        return self._computes.get(zone[:-1], self.home)

    def _spec_for(self, compute: Ec2Compute, spec: InstanceSpec) -> InstanceSpec:
        if compute is self.home:
            return spec
        key = (compute.region, spec.image)
        if key not in self._images:
            name, owner = self.home.image_identity(spec.image)
            found = compute.find_image(name, owner) if name and owner else None
            if found is None:
                raise RejectedError(
                    f"image {spec.image!r} ({name or 'no name'}) has no copy in "
                    f"{compute.region}; copy it there or leave {compute.region} out of regions",
                    setting="image",
                )
            self._images[key] = found
        return attrs.evolve(spec, image=self._images[key])

    def create_instance(self, spec: InstanceSpec) -> Instance:
        return self.create_instances(spec, 1)[0]

    def create_instances(self, spec: InstanceSpec, count: int) -> list[Instance]:
        compute = self._for_zone(spec.zone)
        return compute.create_instances(self._spec_for(compute, spec), count)

    def list_instances(self, job_id: str | None) -> list[Instance]:
        return [i for c in self._computes.values() for i in c.list_instances(job_id)]

    def terminate(self, instance_ids: Sequence[str]) -> None:
        wanted = set(instance_ids)
        if not wanted:
            return
        placed: dict[str, list[str]] = {}
        for region, compute in self._computes.items():
            for instance in compute.list_instances(None):
                if instance.instance_id in wanted:
                    placed.setdefault(region, []).append(instance.instance_id)
        for region, ids in placed.items():
            self._computes[region].terminate(ids)

    def list_regions(self) -> list[Region]:
        return self.home.list_regions()

    def list_images(self, architecture: str | None = None) -> list[Image]:
        return self.home.list_images(architecture)

    def default_image(self, architecture: str) -> str:
        return self.home.default_image(architecture)

    def startup_log_hint(self, instance_id: str) -> str | None:
        return self.home.startup_log_hint(instance_id)


__all__ = ["MultiRegionEc2Compute"]

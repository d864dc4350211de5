"""``GceCompute``: launch, list and delete a job's Compute Engine VMs, scoped by labels."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

from cloud_tasks.adapters.gcp.compute_clients import as_dict
from cloud_tasks.adapters.gcp.errors import gcp_errors, is_not_found
from cloud_tasks.adapters.gcp.translate import (
    JOB_LABEL,
    MANAGED_LABEL,
    PRICE_METADATA,
    UBUNTU_FAMILIES,
    UBUNTU_PROJECT,
    instance_from_gce,
    operation_error_text,
    translate_error,
)
from cloud_tasks.adapters.names import checked_job_id
from cloud_tasks.exceptions import CapacityError, ConfigError, ProviderError
from cloud_tasks.ports import Image, Instance, InstanceSpec, Region

#: The access scope of the instances' service account: every API, limited by the account's
#: IAM roles (Google's recommendation; it covers Pub/Sub and Cloud Logging).
_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
#: The API's name for the project's default compute service account.
DEFAULT_SERVICE_ACCOUNT = "default"


class GceCompute:
    """The ``Compute`` port on Compute Engine in one project.

    Args:
        instances, zone_operations, regions, images: ``compute_v1`` clients (REST transport).
            Operations are awaited with ``zone_operations.wait``, never by polling a public
            endpoint.
        project: the project VMs are created in.
        network: the VPC network of the VMs.
        operation_timeout_s: how long to wait for an insert or delete to finish.
        monotonic: the time source for that timeout.
    """

    provider = "gcp"

    def __init__(
        self,
        *,
        instances: Any,
        zone_operations: Any,
        regions: Any,
        images: Any,
        project: str,
        network: str = "global/networks/default",
        operation_timeout_s: float = 600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._instances = instances
        self._operations = zone_operations
        self._regions = regions
        self._images = images
        self.project = project
        self._network = network
        self._timeout_s = operation_timeout_s
        self._monotonic = monotonic

    def create_instance(self, spec: InstanceSpec) -> Instance:
        from google.cloud import compute_v1

        name = f"{spec.job_id}-{secrets.token_hex(3)}"
        disk_type = spec.boot_disk_type or "pd-balanced"
        parts = self._parts(
            spec,
            f"zones/{spec.zone}/diskTypes/{disk_type}",
            f"zones/{spec.zone}/acceleratorTypes/{spec.gpu_type}",
        )
        resource = compute_v1.Instance(
            name=name, machine_type=f"zones/{spec.zone}/machineTypes/{spec.instance_type}", **parts
        )
        with gcp_errors("creating an instance", instance_type=spec.instance_type, zone=spec.zone):
            operation = self._instances.insert_unary(
                project=self.project, zone=spec.zone, instance_resource=resource
            )
        self._wait(operation, spec.zone, "creating an instance", spec.instance_type)
        with gcp_errors("reading the new instance"):
            created = self._instances.get(project=self.project, zone=spec.zone, instance=name)
        return instance_from_gce(as_dict(created))

    def create_instances(self, spec: InstanceSpec, count: int) -> list[Instance]:
        """One ``bulkInsert`` with ``minCount=1``: Compute Engine creates as many of ``count``
        as it can (none when it cannot create one), in one operation."""
        if count < 1:
            raise ValueError("count must be at least 1")
        if count == 1:
            return [self.create_instance(spec)]
        from google.cloud import compute_v1

        stem = f"{spec.job_id}-{secrets.token_hex(2)}"
        names = [f"{stem}-{index:04d}" for index in range(count)]
        # Instance properties take bare machine and disk type names, not zonal URLs.
        properties = compute_v1.InstanceProperties(
            machine_type=spec.instance_type,
            **self._parts(spec, spec.boot_disk_type or "pd-balanced", spec.gpu_type or ""),
        )
        request = compute_v1.BulkInsertInstanceResource(
            count=count,
            min_count=1,
            instance_properties=properties,
            per_instance_properties={
                name: compute_v1.BulkInsertInstanceResourcePerInstanceProperties(name=name)
                for name in names
            },
        )
        what = "creating instances"
        with gcp_errors(what, instance_type=spec.instance_type, zone=spec.zone):
            operation = self._instances.bulk_insert_unary(
                project=self.project,
                zone=spec.zone,
                bulk_insert_instance_resource_resource=request,
            )
        self._wait(operation, spec.zone, what, spec.instance_type)
        wanted = set(names)
        created = [i for i in self.list_instances(spec.job_id) if i.name in wanted]
        if not created:
            raise CapacityError(
                f"GCP created none of {count} {spec.instance_type} instances in {spec.zone}",
                instance_type=spec.instance_type,
                zone=spec.zone,
            )
        return created

    def _parts(self, spec: InstanceSpec, disk_type: str, accelerator_type: str) -> dict[str, Any]:
        """What an instance and bulk instance properties share: labels, metadata, disk,
        network, scheduling, GPUs and the service account. ``disk_type`` and
        ``accelerator_type`` are zonal paths for an instance, bare names for bulk properties."""
        from google.cloud import compute_v1

        metadata = [compute_v1.Items(key="startup-script", value=spec.startup_script)]
        if spec.price_per_hour_usd is not None:
            metadata.append(
                compute_v1.Items(key=PRICE_METADATA, value=f"{spec.price_per_hour_usd:.6f}")
            )
        parts: dict[str, Any] = {
            "labels": {JOB_LABEL: spec.job_id, MANAGED_LABEL: "true"},
            "metadata": compute_v1.Metadata(items=metadata),
            "disks": [
                compute_v1.AttachedDisk(
                    boot=True,
                    auto_delete=True,
                    initialize_params=compute_v1.AttachedDiskInitializeParams(
                        source_image=spec.image,
                        disk_size_gb=spec.boot_disk_gb,
                        disk_type=disk_type,
                    ),
                )
            ],
            "network_interfaces": [
                compute_v1.NetworkInterface(
                    network=self._network,
                    access_configs=[
                        compute_v1.AccessConfig(name="External NAT", type_="ONE_TO_ONE_NAT")
                    ],
                )
            ],
            # The worker reads Pub/Sub and writes logs as this account: the configured one,
            # else the project's default compute service account (gcloud's default too).
            "service_accounts": [
                compute_v1.ServiceAccount(
                    email=spec.service_account or DEFAULT_SERVICE_ACCOUNT, scopes=_SCOPES
                )
            ],
        }
        if spec.use_spot:
            parts["scheduling"] = compute_v1.Scheduling(
                provisioning_model="SPOT",
                instance_termination_action="DELETE",
                automatic_restart=False,
                on_host_maintenance="TERMINATE",
            )
        elif spec.gpus:
            # GPU VMs cannot live-migrate: GCP requires them to stop for host maintenance.
            parts["scheduling"] = compute_v1.Scheduling(
                on_host_maintenance="TERMINATE", automatic_restart=True
            )
        if spec.gpus and spec.attach_gpus and spec.gpu_type:
            parts["guest_accelerators"] = [
                compute_v1.AcceleratorConfig(
                    accelerator_type=accelerator_type, accelerator_count=spec.gpus
                )
            ]
        return parts

    def _wait(self, operation: Any, zone: str, what: str, instance_type: str = "") -> None:
        deadline = self._monotonic() + self._timeout_s
        current = as_dict(operation)
        while current.get("status") != "DONE":
            if self._monotonic() > deadline:
                raise ProviderError(
                    f"GCP {what} in {zone} did not finish within {self._timeout_s:.0f} s "
                    f"(operation {current.get('name')})"
                )
            with gcp_errors(what, instance_type=instance_type, zone=zone):
                current = as_dict(
                    self._operations.wait(
                        project=self.project, zone=zone, operation=current["name"]
                    )
                )
        text = operation_error_text(current)
        if text is not None:
            raise translate_error(text, what, instance_type=instance_type, zone=zone)

    def list_instances(self, job_id: str | None) -> list[Instance]:
        expression = f'(labels.{MANAGED_LABEL} = "true")'
        if job_id is not None:
            # Checked: a quote in the job id would change the filter expression.
            expression += f' AND (labels.{JOB_LABEL} = "{checked_job_id(job_id)}")'
        found = []
        with gcp_errors("listing instances"):
            for _scope, scoped in self._instances.aggregated_list(
                request={"project": self.project, "filter": expression}
            ):
                for item in scoped.instances:
                    instance = instance_from_gce(as_dict(item))
                    labels = dict(item.labels)
                    # The filter is applied by the server; check again so a server that
                    # ignores it can never make us touch another job's VMs.
                    if labels.get(MANAGED_LABEL) != "true":
                        continue
                    if job_id is not None and instance.job_id != job_id:
                        continue
                    found.append(instance)
        return found

    def terminate(self, instance_ids: Sequence[str]) -> None:
        wanted = set(instance_ids)
        if not wanted:
            return
        zones = {i.name: i.zone for i in self.list_instances(None) if i.name in wanted}
        pending = []
        for name, zone in zones.items():
            with gcp_errors("deleting an instance", zone=zone):
                try:
                    operation = self._instances.delete_unary(
                        project=self.project, zone=zone, instance=name
                    )
                except Exception as exc:
                    if is_not_found(exc):
                        continue  # already gone: deleting is idempotent
                    raise
            pending.append((operation, zone))
        for operation, zone in pending:
            self._wait(operation, zone, "deleting an instance")

    def list_regions(self) -> list[Region]:
        with gcp_errors("listing regions"):
            regions = [as_dict(r) for r in self._regions.list(project=self.project)]
        return sorted(
            (
                Region(
                    name=str(r["name"]),
                    zones=tuple(
                        sorted(z.rstrip("/").rsplit("/", 1)[-1] for z in r.get("zones", []))
                    ),
                    description=str(r.get("description", "")),
                )
                for r in regions
            ),
            key=lambda r: r.name,
        )

    def list_images(self, architecture: str | None = None) -> list[Image]:
        families = {
            family: arch for arch, family in UBUNTU_FAMILIES.items() if architecture in (None, arch)
        }
        if architecture is not None and not families:
            raise ConfigError(f"architecture {architecture!r} is not one of x86_64, arm64")
        images = []
        with gcp_errors("listing images"):
            for item in self._images.list(project=UBUNTU_PROJECT):
                data = as_dict(item)
                family = data.get("family")
                deprecated = (data.get("deprecated") or {}).get("state")
                if family in families and not deprecated:
                    images.append(
                        Image(
                            name=f"projects/{UBUNTU_PROJECT}/global/images/{data['name']}",
                            architecture=families[family],
                            description=str(data.get("description", "")),
                            created=str(data.get("creationTimestamp", "")),
                        )
                    )
        images.sort(key=lambda i: i.created, reverse=True)
        return images

    def default_image(self, architecture: str) -> str:
        family = UBUNTU_FAMILIES.get(architecture)
        if family is None:
            raise ConfigError(f"architecture {architecture!r} is not one of x86_64, arm64")
        with gcp_errors("finding the default image"):
            image = self._images.get_from_family(project=UBUNTU_PROJECT, family=family)
        return f"projects/{UBUNTU_PROJECT}/global/images/{image.name}"

    def startup_log_hint(self, instance_id: str) -> str | None:
        return f"'gcloud compute instances get-serial-port-output {instance_id}'"

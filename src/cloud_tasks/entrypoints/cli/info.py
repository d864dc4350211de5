"""Information commands: list_instance_types, list_images, list_regions,
list_running_instances."""

from __future__ import annotations

import click

from cloud_tasks.entrypoints.cli._stub import not_built

COMMANDS: list[click.Command] = [
    not_built(
        "list_instance_types", "List instance types meeting the constraints, cheapest first."
    ),
    not_built("list_images", "List the images the provider offers."),
    not_built("list_regions", "List regions and their zones."),
    not_built("list_running_instances", "List this job's (or all managed) instances."),
]

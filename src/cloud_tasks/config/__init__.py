"""Configuration (SPEC §4): the loader, the option schema and the strict converter.

``load_config`` is the one entry point; ``RUN_OPTIONS``/``PROVIDER_OPTIONS`` describe every
option (used by the CLI flags and the documentation).
"""

from __future__ import annotations

from cloud_tasks.config.convert import converter
from cloud_tasks.config.loader import CATALOG_NAMES, DEFAULT_PROVIDER, load_config
from cloud_tasks.config.schema import (
    PROVIDER_OPTIONS,
    RUN_OPTIONS,
    SECTIONS,
    OptionSpec,
    render_option_table,
)
from cloud_tasks.config.yamlfile import MAX_CONFIG_BYTES

__all__ = [
    "CATALOG_NAMES",
    "DEFAULT_PROVIDER",
    "MAX_CONFIG_BYTES",
    "PROVIDER_OPTIONS",
    "RUN_OPTIONS",
    "SECTIONS",
    "OptionSpec",
    "converter",
    "load_config",
    "render_option_table",
]

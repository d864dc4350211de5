"""The composition root: builds concrete adapters from a resolved configuration.

SDK-backed adapters are imported here lazily, only for the provider in use.
"""

from __future__ import annotations

"""In-process adapters for every port, and the bundled offline catalog (SPEC §9)."""

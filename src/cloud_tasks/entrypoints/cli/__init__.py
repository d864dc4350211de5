"""The ``cloud_tasks`` command line (SPEC §11)."""

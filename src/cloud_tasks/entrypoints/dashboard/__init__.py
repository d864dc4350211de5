"""The dashboard web server (``cloud_tasks dashboard``, ``run --dashboard``)."""

from cloud_tasks.entrypoints.dashboard.server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    REFRESH_S,
    DashboardServer,
)

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "REFRESH_S", "DashboardServer"]

"""Cloud Tasks: run many independent tasks on cloud VMs or on one machine."""

from cloud_tasks.exceptions import (
    CapacityError,
    CloudTasksError,
    ConfigError,
    CredentialsError,
    MissingLibraryError,
    ProviderError,
    QueueNotFoundError,
    QuotaError,
    RejectedError,
    SelectionError,
    TaskFileError,
)

__version__ = "0.1.0"

__all__ = [
    "CapacityError",
    "CloudTasksError",
    "ConfigError",
    "CredentialsError",
    "MissingLibraryError",
    "ProviderError",
    "QueueNotFoundError",
    "QuotaError",
    "RejectedError",
    "SelectionError",
    "TaskFileError",
    "__version__",
]

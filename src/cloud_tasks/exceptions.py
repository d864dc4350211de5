"""The one exception hierarchy of Cloud Tasks.

Adapters translate SDK exceptions into these at the boundary; no boto3 or google exception
escapes ``cloud_tasks.adapters``. The CLI turns any ``CloudTasksError`` into one line on stderr
and exit status 1.
"""

from __future__ import annotations


class CloudTasksError(Exception):
    """Base of every error Cloud Tasks raises on purpose.

    The message is one line a user can act on: what failed, where, and what to do.
    """


class ConfigError(CloudTasksError):
    """A configuration file, flag or environment variable is invalid."""


class TaskFileError(CloudTasksError):
    """A task file is missing, unreadable or malformed."""


class ProviderError(CloudTasksError):
    """A cloud or local provider call failed."""


class CredentialsError(ProviderError):
    """Credentials are missing or rejected."""


class CapacityError(ProviderError):
    """The provider has no capacity for this instance type in this zone; try another."""

    def __init__(self, message: str, *, instance_type: str = "", zone: str = "") -> None:
        super().__init__(message)
        self.instance_type = instance_type
        self.zone = zone


class QuotaError(CapacityError):
    """A quota (vCPUs, instances, IPs) forbids more instances in this region."""


class RejectedError(ProviderError):
    """The provider refused a request for a reason another try cannot fix (an unknown image or
    instance type, an invalid network, a limit too small for one instance). The message names
    the setting to change; the pool manager stops what it started and ends the run."""

    def __init__(self, message: str, *, setting: str = "") -> None:
        super().__init__(message)
        self.setting = setting


class QueueNotFoundError(ProviderError):
    """The named queue does not exist."""


class NotSupportedError(ProviderError):
    """This adapter cannot do what its port offers only to some providers (the port names the
    capability to check first, e.g. ``TaskQueue.remembers_loads``)."""


class MissingLibraryError(CloudTasksError):
    """A provider's client libraries are not installed; the message names the pip extra."""

    def __init__(self, message: str, *, provider: str = "") -> None:
        super().__init__(message)
        self.provider = provider


class TaskStoreBusyError(CloudTasksError):
    """The task database is locked by another program; waiting may be enough."""


class QueueBusyError(CloudTasksError):
    """A call through a queue's ``without_waiting`` view would have had to wait (another
    process holds the queue's lock, or nothing can be received yet); it did nothing. Make the
    same call on the queue itself, where waiting is fine."""


class SelectionError(CloudTasksError):
    """No instance type meets the constraints; the message names the eliminating constraint."""


class EventError(CloudTasksError):
    """A worker event is malformed or forged (SPEC §10); the message says why in a few words."""

"""Task and event queues on Google Cloud Pub/Sub (SPEC §2).

A queue is a topic plus one pull subscription, both named after the queue. The task queue's
subscription has a dead-letter policy (topic ``<queue>-dead``, 100 delivery attempts, Pub/Sub's
maximum): Pub/Sub fills ``delivery_attempt`` only on subscriptions with such a policy, and it
is what the worker reads as the delivery count. Application failures travel in the message
body (``Envelope.failures``), so the worker dead-letters long before Pub/Sub would.

The google libraries are imported only when a client is built; ``PUBSUB_EMULATOR_HOST`` is
honoured by them. Every google error is translated into ``cloud_tasks.exceptions`` here, and
transient ones are retried with capped exponential backoff and jitter (``api_core`` Retry).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import attrs

from cloud_tasks.adapters._bodies import encode_events
from cloud_tasks.domain.tasks import PUBSUB_MAX_MESSAGE_BYTES, Envelope
from cloud_tasks.exceptions import (
    CredentialsError,
    NotSupportedError,
    ProviderError,
    QueueNotFoundError,
)
from cloud_tasks.ports import Lease, ReceivedEvent, ReceivedTask

if TYPE_CHECKING:
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

log = logging.getLogger(__name__)

# We set return_immediately only when the caller asked not to wait (see _pull).
warnings.filterwarnings("ignore", message=r".*return_immediately.*", category=DeprecationWarning)

MIN_ACK_DEADLINE_S = 10  # for a subscription's default; modify_ack_deadline accepts 0..600
MAX_ACK_DEADLINE_S = 600
MAX_DELIVERY_ATTEMPTS = 100
MAX_PULL = 1000
MAX_PUBLISH_MESSAGES = 1000
MAX_PUBLISH_BYTES = 9 * 1000 * 1000  # under the 10 MB request limit
PUBLISH_CONCURRENCY = 4
RETENTION_S = 7 * 24 * 3600  # the maximum
PEEK_LIMIT = 10_000
MONITORING_ENDPOINT = "https://monitoring.googleapis.com"
_ACK_CHUNK = 500
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$")
_LABELS = {"managed-by": "cloud_tasks"}


def _google_credentials(credentials_file: str | None) -> Any:
    if credentials_file is None:
        return None
    try:
        from google.oauth2 import service_account

        return service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
            credentials_file, scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
    except (OSError, ValueError) as exc:
        raise CredentialsError(
            f"cannot read the GCP credentials file {credentials_file}: {exc}"
        ) from exc


def build_pubsub_clients(
    credentials_file: str | None = None,
) -> tuple[PublisherClient, SubscriberClient]:
    """A publisher and a subscriber; both honour PUBSUB_EMULATOR_HOST
    and use Application Default Credentials unless a service-account file is given."""
    try:
        from google.cloud import pubsub_v1
    except ImportError as exc:
        raise ProviderError(
            "the gcp provider needs google-cloud-pubsub: pip install 'rms-cloud-tasks[gcp]'"
        ) from exc
    credentials = _google_credentials(credentials_file)
    kwargs: dict[str, Any] = {} if credentials is None else {"credentials": credentials}
    with _translated("connecting to Pub/Sub", None):
        publisher = pubsub_v1.PublisherClient(**kwargs)
        subscriber = pubsub_v1.SubscriberClient(**kwargs)
    return publisher, subscriber


def resolve_project_id(project_id: str | None, credentials_file: str | None = None) -> str:
    """The explicit project, else GOOGLE_CLOUD_PROJECT, else the credentials' project."""
    if project_id:
        return project_id
    for variable in ("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT"):
        if os.environ.get(variable):
            return os.environ[variable]
    if credentials_file:
        with contextlib.suppress(OSError, ValueError):
            with open(credentials_file, encoding="utf-8") as handle:
                found = json.load(handle).get("project_id")
            if found:
                return str(found)
    try:
        import google.auth

        _, found = google.auth.default()
    except Exception as exc:
        raise CredentialsError(
            "no GCP project id: set project_id in the config (or --project-id), or "
            f"GOOGLE_CLOUD_PROJECT ({exc})"
        ) from exc
    if not found:
        raise CredentialsError(
            "no GCP project id: set project_id in the config (or --project-id), or "
            "GOOGLE_CLOUD_PROJECT"
        )
    return str(found)


def _retry() -> Any:
    """Capped exponential backoff with jitter for transient errors, 60 s in total."""
    from google.api_core import exceptions as gexc
    from google.api_core import retry as gretry

    return gretry.Retry(
        initial=0.1,
        maximum=10.0,
        multiplier=2.0,
        timeout=60.0,
        predicate=gretry.if_exception_type(
            gexc.ServiceUnavailable,
            gexc.InternalServerError,
            gexc.TooManyRequests,
            gexc.ResourceExhausted,
            gexc.Aborted,
            gexc.Unknown,
        ),
    )


def translate_google_error(exc: Exception, what: str) -> Exception:
    """Our exception for a google.api_core / google.auth error raised while doing ``what``."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as aexc

    if isinstance(exc, aexc.DefaultCredentialsError):
        return CredentialsError(
            f"{what}: no Google credentials found; run 'gcloud auth application-default "
            "login' or set credentials_file"
        )
    if isinstance(exc, aexc.GoogleAuthError):
        return CredentialsError(f"{what}: Google rejected the credentials: {exc}")
    if isinstance(exc, gexc.Unauthenticated):
        return CredentialsError(f"{what}: Google rejected the credentials ({exc.message})")
    if isinstance(exc, gexc.PermissionDenied | gexc.Forbidden):
        return CredentialsError(
            f"{what}: permission denied ({exc.message}); the account needs the Pub/Sub "
            "roles listed in docs/queues.md"
        )
    if isinstance(exc, gexc.TooManyRequests | gexc.ResourceExhausted):
        return ProviderError(f"{what}: Pub/Sub is throttling requests; try again later")
    if isinstance(exc, gexc.ServiceUnavailable | gexc.DeadlineExceeded):
        return ProviderError(f"{what}: cannot reach Pub/Sub ({exc.message}); check the network")
    if isinstance(exc, gexc.RetryError):
        return ProviderError(f"{what}: Pub/Sub kept failing; try again later ({exc.message})")
    if isinstance(exc, gexc.GoogleAPICallError):
        return ProviderError(f"{what}: {exc.message or exc}")
    if isinstance(exc, gexc.GoogleAPIError):
        return ProviderError(f"{what}: {exc}")
    return exc


@contextlib.contextmanager
def _translated(what: str, missing: QueueNotFoundError | None) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if not type(exc).__module__.startswith(("google.", "grpc")):
            raise
        from google.api_core import exceptions as gexc

        if missing is not None and isinstance(exc, gexc.NotFound):
            raise missing from exc
        raise translate_google_error(exc, what) from exc


def _is_stale_ack(exc: BaseException) -> bool:
    """An exactly-once subscription rejects ack ids whose lease ended or were acked."""
    from google.api_core import exceptions as gexc

    return isinstance(exc, gexc.InvalidArgument) and "EXACTLY_ONCE_ACKID_FAILURE" in str(exc)


@attrs.frozen
class _Raw:
    data: bytes
    ack_id: str
    delivery_attempt: int


class _PubSubQueueBase:
    """Names, clients, errors, publishing and synchronous pull shared by both queues."""

    def __init__(
        self,
        name: str,
        *,
        project_id: str | None,
        publisher: PublisherClient | None,
        subscriber: SubscriberClient | None,
        credentials_file: str | None,
        ack_deadline_s: float,
        exactly_once: bool,
    ) -> None:
        if not name or not _NAME.match(name) or name.lower().startswith("goog"):
            raise ProviderError(
                f"{name!r} is not a valid Pub/Sub queue name: 3 to 255 letters, digits or "
                "-_.~+%, starting with a letter and not with 'goog'"
            )
        self.name = name
        self._project_id = project_id
        self._publisher = publisher
        self._subscriber = subscriber
        self._credentials_file = credentials_file
        self.ack_deadline_s = max(MIN_ACK_DEADLINE_S, min(MAX_ACK_DEADLINE_S, int(ack_deadline_s)))
        self.exactly_once = exactly_once

    # -- names and clients ---------------------------------------------------------------------

    @property
    def project_id(self) -> str:
        if self._project_id is None:
            self._project_id = resolve_project_id(None, self._credentials_file)
        return self._project_id

    @property
    def topic_path(self) -> str:
        return f"projects/{self.project_id}/topics/{self.name}"

    @property
    def subscription_path(self) -> str:
        return f"projects/{self.project_id}/subscriptions/{self.name}"

    def _clients(self) -> tuple[PublisherClient, SubscriberClient]:
        if self._publisher is None or self._subscriber is None:
            publisher, subscriber = build_pubsub_clients(self._credentials_file)
            self._publisher = self._publisher or publisher
            self._subscriber = self._subscriber or subscriber
        return self._publisher, self._subscriber

    @property
    def publisher(self) -> PublisherClient:
        return self._clients()[0]

    @property
    def subscriber(self) -> SubscriberClient:
        return self._clients()[1]

    def _missing(self) -> QueueNotFoundError:
        return QueueNotFoundError(
            f"Pub/Sub queue {self.name!r} (topic and subscription) does not exist in project "
            f"{self.project_id}; create it with 'cloud_tasks load_queue' (or check "
            "--queue-name/--job-id and --project-id)"
        )

    def _errors(self, action: str) -> contextlib.AbstractContextManager[None]:
        return _translated(f"Pub/Sub queue {self.name!r}: {action}", self._missing())

    # -- lifecycle -----------------------------------------------------------------------------

    def _create_topic(self, path: str) -> None:
        from google.api_core import exceptions as gexc

        with self._errors("creating its topic"), contextlib.suppress(gexc.AlreadyExists):
            self.publisher.create_topic(request={"name": path, "labels": _LABELS}, retry=_retry())

    def _create_subscription(self, path: str, topic: str, extra: Mapping[str, Any]) -> None:
        from google.api_core import exceptions as gexc

        request: dict[str, Any] = {
            "name": path,
            "topic": topic,
            "ack_deadline_seconds": self.ack_deadline_s,
            "message_retention_duration": {"seconds": RETENTION_S},
            "expiration_policy": {},  # never expires while idle
            "labels": _LABELS,
            **extra,
        }
        with self._errors("creating its subscription"), contextlib.suppress(gexc.AlreadyExists):
            self.subscriber.create_subscription(request=request, retry=_retry())

    def _subscription_extra(self) -> dict[str, Any]:
        return {}

    def _before_create(self) -> None:
        """Resources the subscription refers to (the dead-letter topic of task queues)."""

    def without_waiting(self) -> None:
        """None: every call is a request over the network, which may wait."""
        return None

    def create(self) -> None:
        """Create the topic and subscription if missing (idempotent)."""
        self._create_topic(self.topic_path)
        self._before_create()
        self._create_subscription(
            self.subscription_path, self.topic_path, self._subscription_extra()
        )

    def exists(self) -> bool:
        try:
            with self._errors("looking up its subscription"):
                self.subscriber.get_subscription(
                    request={"subscription": self.subscription_path}, retry=_retry()
                )
        except QueueNotFoundError:
            return False
        return True

    def _delete_pair(self, subscription: str, topic: str) -> None:
        with contextlib.suppress(QueueNotFoundError), self._errors("deleting its subscription"):
            self.subscriber.delete_subscription(
                request={"subscription": subscription}, retry=_retry()
            )
        with contextlib.suppress(QueueNotFoundError), self._errors("deleting its topic"):
            self.publisher.delete_topic(request={"topic": topic}, retry=_retry())

    def delete(self) -> None:
        """Delete the subscription and topic (idempotent)."""
        self._delete_pair(self.subscription_path, self.topic_path)

    # -- messages ------------------------------------------------------------------------------

    def _publish(self, payloads: Sequence[bytes]) -> None:
        """Publish in requests of up to 1000 messages / 9 MB, several requests at once.

        Direct ``Publish`` calls carry far less per-message overhead than the client's
        future-per-message batching (about ten times the throughput on the emulator).
        """
        if not payloads:
            return
        requests: list[list[bytes]] = []
        current: list[bytes] = []
        current_bytes = 0
        for data in payloads:
            if current and (
                len(current) == MAX_PUBLISH_MESSAGES
                or current_bytes + len(data) > MAX_PUBLISH_BYTES
            ):
                requests.append(current)
                current, current_bytes = [], 0
            current.append(data)
            current_bytes += len(data) + 64  # per-message framing
        requests.append(current)
        if len(requests) == 1:
            self._publish_request(requests[0])
            return
        with ThreadPoolExecutor(max_workers=min(PUBLISH_CONCURRENCY, len(requests))) as pool:
            for future in [pool.submit(self._publish_request, r) for r in requests]:
                future.result()

    def _publish_request(self, payloads: list[bytes]) -> None:
        from google.pubsub_v1 import types as gtypes
        from google.pubsub_v1.services.publisher import client as gapic

        messages = [gtypes.PubsubMessage(data=data) for data in payloads]
        with self._errors("publishing messages"):
            # The batching client subclasses the generated one and overrides ``publish`` with
            # a future per message; call the generated RPC method for a whole batch at once.
            gapic.PublisherClient.publish(
                self.publisher,
                request={"topic": self.topic_path, "messages": messages},
                retry=_retry(),
                timeout=120.0,
            )

    def _pull(self, max_messages: int, wait_s: float) -> list[_Raw]:
        """Synchronous pull of up to ``max_messages``, waiting up to ``wait_s`` for the first."""
        from google.api_core import exceptions as gexc

        out: list[_Raw] = []
        deadline = time.monotonic() + max(0.0, wait_s)
        while len(out) < max_messages:
            remaining = deadline - time.monotonic()
            immediate = bool(out) or remaining <= 0
            request = {
                "subscription": self.subscription_path,
                "max_messages": min(MAX_PULL, max_messages - len(out)),
                # return_immediately is deprecated for good reason on the service (it may
                # return nothing while messages exist) but is the only way to not wait.
                "return_immediately": immediate,
            }
            try:
                with self._errors("receiving messages"):
                    if immediate:
                        response = self.subscriber.pull(request=request, retry=_retry())
                    else:
                        response = self.subscriber.pull(
                            request=request, timeout=max(1.0, remaining), retry=None
                        )
            except ProviderError as exc:
                if isinstance(exc.__cause__, gexc.DeadlineExceeded):
                    response = None
                else:
                    raise
            messages = list(response.received_messages) if response is not None else []
            out.extend(
                _Raw(m.message.data, m.ack_id, max(1, int(m.delivery_attempt))) for m in messages
            )
            if not messages and (out or time.monotonic() >= deadline):
                break
        return out

    def _modify(self, ack_ids: Sequence[str], seconds: float) -> list[str]:
        """Set the lease of ``ack_ids`` to ``seconds`` from now; returns the ids still leased."""
        deadline = max(0, min(MAX_ACK_DEADLINE_S, math.ceil(seconds)))
        kept: list[str] = []
        for start in range(0, len(ack_ids), _ACK_CHUNK):
            chunk = list(ack_ids[start : start + _ACK_CHUNK])
            try:
                with self._errors("changing ack deadlines"):
                    self.subscriber.modify_ack_deadline(
                        request={
                            "subscription": self.subscription_path,
                            "ack_ids": chunk,
                            "ack_deadline_seconds": deadline,
                        },
                        retry=_retry(),
                    )
                kept.extend(chunk)
            except ProviderError as exc:
                if exc.__cause__ is None or not _is_stale_ack(exc.__cause__):
                    raise
                kept.extend(self._modify_each(chunk, deadline))
        return kept

    def _modify_each(self, ack_ids: Sequence[str], deadline: int) -> list[str]:
        kept: list[str] = []
        for ack_id in ack_ids:
            try:
                with self._errors("changing an ack deadline"):
                    self.subscriber.modify_ack_deadline(
                        request={
                            "subscription": self.subscription_path,
                            "ack_ids": [ack_id],
                            "ack_deadline_seconds": deadline,
                        },
                        retry=_retry(),
                    )
                kept.append(ack_id)
            except ProviderError as exc:
                if exc.__cause__ is None or not _is_stale_ack(exc.__cause__):
                    raise
        return kept

    def _acknowledge(self, ack_ids: Sequence[str]) -> None:
        for start in range(0, len(ack_ids), _ACK_CHUNK):
            chunk = list(ack_ids[start : start + _ACK_CHUNK])
            try:
                with self._errors("acknowledging messages"):
                    self.subscriber.acknowledge(
                        request={"subscription": self.subscription_path, "ack_ids": chunk},
                        retry=_retry(),
                    )
            except ProviderError as exc:
                # Exactly-once subscriptions reject acks of already-acked or expired ids;
                # acking is idempotent here.
                if exc.__cause__ is None or not _is_stale_ack(exc.__cause__):
                    raise

    def _seek_to_now(self) -> None:
        """Mark every message published until now as acknowledged."""
        from google.protobuf import timestamp_pb2

        stamp = timestamp_pb2.Timestamp()
        stamp.FromNanoseconds(time.time_ns())
        with self._errors("purging"):
            self.subscriber.seek(
                request={"subscription": self.subscription_path, "time": stamp}, retry=_retry()
            )

    def _peek_count(self, limit: int = PEEK_LIMIT) -> int:
        """Count visible messages by leasing them briefly and releasing them at once.

        Pub/Sub has no backlog API outside Cloud Monitoring. Leased messages are not seen,
        and each message seen is redelivered with ``delivery_attempt`` one higher.
        """
        seen: list[str] = []
        while len(seen) < limit:
            batch = self._pull(min(MAX_PULL, limit - len(seen)), 0.0)
            if not batch:
                break
            seen.extend(raw.ack_id for raw in batch)
        self._modify(seen, 0)
        return len(seen)

    def _monitoring_count(self) -> int | None:
        """``num_undelivered_messages`` from Cloud Monitoring (lags by a few minutes), or None
        when there is no recent data point (a new subscription) or no Monitoring (emulator).

        ``CLOUDSDK_API_ENDPOINT_OVERRIDES_MONITORING`` points the call elsewhere (scheme, host
        and port count); an ``http://`` endpoint is called without credentials.
        """
        override = os.environ.get("CLOUDSDK_API_ENDPOINT_OVERRIDES_MONITORING")
        if os.environ.get("PUBSUB_EMULATOR_HOST") and not override:
            return None
        try:
            import requests
        except ImportError:
            return None
        base = re.sub(r"^(https?://[^/]+).*$", r"\1", override or MONITORING_ENDPOINT)
        now = time.time()
        params = {
            "filter": (
                'metric.type = "pubsub.googleapis.com/subscription/num_undelivered_messages" '
                'AND resource.type = "pubsub_subscription" '
                f'AND resource.labels.subscription_id = "{self.name}"'
            ),
            "interval.endTime": _rfc3339(now),
            "interval.startTime": _rfc3339(now - 600),
        }
        what = f"Pub/Sub queue {self.name!r}: reading its backlog from Cloud Monitoring"
        with _translated(what, None):
            session = self._monitoring_session(anonymous=base.startswith("http://"))
            try:
                response = session.get(
                    f"{base}/v3/projects/{self.project_id}/timeSeries", params=params, timeout=30
                )
                payload = response.json() if response.status_code == 200 else {}
            except (requests.RequestException, ValueError) as exc:
                raise ProviderError(f"{what}: {exc}") from exc
        if response.status_code in (401, 403):
            raise CredentialsError(f"{what}: permission denied (needs roles/monitoring.viewer)")
        if response.status_code != 200:
            raise ProviderError(f"{what}: the service answered HTTP {response.status_code}")
        series = payload.get("timeSeries", []) if isinstance(payload, dict) else []
        if not series or not series[0].get("points"):
            return None
        # Points come newest first.
        value = series[0]["points"][0].get("value", {})
        return int(value.get("int64Value", value.get("doubleValue", 0)))

    def _monitoring_session(self, *, anonymous: bool) -> Any:
        import requests

        if anonymous:
            return requests.Session()
        import google.auth
        from google.auth.transport.requests import AuthorizedSession

        credentials = _google_credentials(self._credentials_file)
        if credentials is None:
            credentials, _ = google.auth.default(
                scopes=["https://www.googleapis.com/auth/monitoring.read"]
            )
        return AuthorizedSession(credentials)  # type: ignore[no-untyped-call]

    def _depth(self) -> int:
        # Raise QueueNotFoundError for a missing queue before asking anything else.
        if not self.exists():
            raise self._missing()
        counted = self._monitoring_count()
        return counted if counted is not None else self._peek_count()


def _rfc3339(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


class PubSubTaskQueue(_PubSubQueueBase):
    """A ``TaskQueue`` on Pub/Sub: topic and subscription ``<name>``, dead letters ``<name>-dead``.

    ``ack_deadline_s`` is the subscription's default lease (10..600 s); ``receive`` sets each
    lease to its own ``visibility_timeout_s`` (0..600 s) with ``modify_ack_deadline``.
    ``exactly_once`` creates the subscription with exactly-once delivery.
    """

    def __init__(
        self,
        name: str,
        *,
        project_id: str | None = None,
        publisher: PublisherClient | None = None,
        subscriber: SubscriberClient | None = None,
        credentials_file: str | None = None,
        ack_deadline_s: float = 120.0,
        exactly_once: bool = False,
    ) -> None:
        super().__init__(
            name,
            project_id=project_id,
            publisher=publisher,
            subscriber=subscriber,
            credentials_file=credentials_file,
            ack_deadline_s=ack_deadline_s,
            exactly_once=exactly_once,
        )
        self.max_message_bytes = PUBSUB_MAX_MESSAGE_BYTES

    #: Pub/Sub keeps no record of loaded task ids; ``load_queue`` keeps one on this machine.
    remembers_loads = False

    def send_once(self, envelopes: Sequence[Envelope]) -> int:
        """Not available (``remembers_loads`` is false)."""
        raise NotSupportedError(
            f"Pub/Sub queue {self.name!r} keeps no record of loaded tasks; use send"
        )

    def address(self) -> str:
        """``gcp|<emulator>|<project>|<name>``; the emulator is set only when one is used."""
        emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
        return f"gcp|{emulator or ''}|{self.project_id}|{self.name}"

    @property
    def dead_letter_topic_path(self) -> str:
        return f"projects/{self.project_id}/topics/{self.name}-dead"

    @property
    def dead_letter_subscription_path(self) -> str:
        return f"projects/{self.project_id}/subscriptions/{self.name}-dead"

    def _before_create(self) -> None:
        # Without a subscription, messages forwarded to the dead-letter topic would be lost.
        self._create_topic(self.dead_letter_topic_path)
        self._create_subscription(
            self.dead_letter_subscription_path, self.dead_letter_topic_path, {}
        )

    def _subscription_extra(self) -> dict[str, Any]:
        return {
            "dead_letter_policy": {
                "dead_letter_topic": self.dead_letter_topic_path,
                "max_delivery_attempts": MAX_DELIVERY_ATTEMPTS,
            },
            "enable_exactly_once_delivery": self.exactly_once,
        }

    def delete(self) -> None:
        """Delete the subscription, topic and dead-letter topic (idempotent)."""
        super().delete()
        self._delete_pair(self.dead_letter_subscription_path, self.dead_letter_topic_path)

    def send(self, envelopes: Sequence[Envelope]) -> None:
        """Publish every envelope; an oversized task is reported before anything is sent."""
        payloads = [envelope.encode().encode("utf-8") for envelope in envelopes]
        for envelope, data in zip(envelopes, payloads, strict=True):
            if len(data) > self.max_message_bytes:
                raise ProviderError(
                    f"Pub/Sub queue {self.name!r}: task {envelope.task.task_id!r} is "
                    f"{len(data)} bytes, over Pub/Sub's {self.max_message_bytes}-byte limit"
                )
        self._publish(payloads)

    def receive(
        self, max_messages: int, visibility_timeout_s: float, wait_s: float = 0.0
    ) -> list[ReceivedTask]:
        """Lease up to ``max_messages``; each lease is capped at Pub/Sub's 600 s."""
        raws = self._pull(max_messages, wait_s)
        if not raws:
            return []
        # The subscription's default deadline applied at pull; set the one asked for.
        leased = set(self._modify([raw.ack_id for raw in raws], visibility_timeout_s))
        received: list[ReceivedTask] = []
        for raw in raws:
            if raw.ack_id not in leased:
                continue
            try:
                envelope = Envelope.decode(raw.data)
            except (ValueError, KeyError, TypeError):
                log.warning("Pub/Sub queue %s: skipping a message that is not a task", self.name)
                continue
            received.append(ReceivedTask(envelope, raw.ack_id, raw.delivery_attempt))
        return received

    def extend(self, receipt: str, visibility_timeout_s: float) -> Lease:
        """Never ``GONE``: Pub/Sub accepts a new deadline for an acked message without an
        error, and exactly-once subscriptions refuse an acked and a lapsed ack id alike."""
        kept = self._modify([receipt], visibility_timeout_s)
        return Lease.HELD if kept else Lease.LOST

    def ack(self, receipt: str) -> None:
        self._acknowledge([receipt])

    def release(self, receipt: str) -> None:
        self._modify([receipt], 0)

    def requeue(self, message: ReceivedTask) -> None:
        """Publish the task again with one more failure, then ack this delivery."""
        self.send([attrs.evolve(message.envelope, failures=message.envelope.failures + 1)])
        self.ack(message.receipt)

    def depth(self) -> int:
        """Undelivered messages per Cloud Monitoring; without data (a new subscription, the
        emulator) the visible messages counted by leasing and releasing them (up to 10,000)."""
        return self._depth()

    def purge(self) -> None:
        """Acknowledge every message published so far (a seek to now)."""
        self._seek_to_now()


class PubSubEventQueue(_PubSubQueueBase):
    """The ``<queue>-events`` topic and subscription."""

    def __init__(
        self,
        name: str,
        *,
        project_id: str | None = None,
        publisher: PublisherClient | None = None,
        subscriber: SubscriberClient | None = None,
        credentials_file: str | None = None,
        visibility_timeout_s: float = 60.0,
    ) -> None:
        super().__init__(
            name,
            project_id=project_id,
            publisher=publisher,
            subscriber=subscriber,
            credentials_file=credentials_file,
            ack_deadline_s=visibility_timeout_s,
            exactly_once=False,
        )
        self.visibility_timeout_s = visibility_timeout_s

    def send(self, events: Sequence[Mapping[str, Any]]) -> None:
        self._publish([body.encode("utf-8") for body in encode_events(self.name, events)])

    def receive(self, max_messages: int, wait_s: float = 0.0) -> list[ReceivedEvent]:
        raws = self._pull(max_messages, wait_s)
        if raws and self.visibility_timeout_s < MIN_ACK_DEADLINE_S:
            # Shorter than a subscription's minimum deadline: set it per message.
            self._modify([raw.ack_id for raw in raws], self.visibility_timeout_s)
        received: list[ReceivedEvent] = []
        for raw in raws:
            try:
                event = json.loads(raw.data)
            except ValueError:
                log.warning("Pub/Sub queue %s: skipping a message that is not JSON", self.name)
                continue
            if isinstance(event, dict):
                received.append(ReceivedEvent(event, raw.ack_id))
        return received

    def ack(self, receipts: Iterable[str]) -> None:
        self._acknowledge(list(receipts))

    def depth(self) -> int:
        return self._depth()

    def purge(self) -> None:
        self._seek_to_now()


__all__ = [
    "PubSubEventQueue",
    "PubSubTaskQueue",
    "build_pubsub_clients",
    "resolve_project_id",
    "translate_google_error",
]

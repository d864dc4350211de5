"""Task and event queues on Amazon SQS (SPEC §2).

boto3 is imported only when a client is built. Every botocore error is translated into
``cloud_tasks.exceptions`` here. Transient errors (throttling, 5xx, dropped connections) are
retried by botocore's ``standard`` retry mode: capped exponential backoff with jitter.

Delivery counts come from SQS's ``ApproximateReceiveCount``; application failures travel in the
message body (``Envelope.failures``). With ``fifo=True`` the queue is ``<name>.fifo`` with one
message group per task (no head-of-line blocking) and a deterministic deduplication id per
(task, failures), so sending the same task twice within SQS's 5-minute window stores it once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import attrs

from cloud_tasks.adapters._bodies import encode_events
from cloud_tasks.adapters.retrying import Backoff, call_with_retries
from cloud_tasks.domain.tasks import SQS_MAX_MESSAGE_BYTES, Envelope
from cloud_tasks.exceptions import (
    CredentialsError,
    NotSupportedError,
    ProviderError,
    QueueNotFoundError,
)
from cloud_tasks.ports import Lease, ReceivedEvent, ReceivedTask

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

log = logging.getLogger(__name__)

SQS_MAX_BATCH = 10
SQS_MAX_BATCH_BYTES = 256 * 1024
SQS_MAX_WAIT_S = 20
SQS_MAX_VISIBILITY_S = 43_200  # 12 hours
SQS_RETENTION_S = 1_209_600  # 14 days, the maximum
#: Retries of batch entries SQS failed on its side (botocore retries whole failed calls).
_SEND_BACKOFF = Backoff(initial_s=0.1, maximum_s=10.0, max_attempts=6)
_MANAGED_TAG = {"managed-by": "cloud_tasks"}

_MISSING_CODES = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"}
)
_CREDENTIAL_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "AuthFailure",
        "MissingAuthenticationToken",
        "InvalidSecurity",
    }
)
_PERMISSION_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "KMS.AccessDeniedException", "UnauthorizedOperation"}
)
_THROTTLE_CODES = frozenset(
    {"RequestThrottled", "ThrottlingException", "Throttling", "OverLimit", "RequestLimitExceeded"}
)
# A receipt whose lease ended or whose message is gone: extend/release/ack become no-ops.
_STALE_RECEIPT_CODES = frozenset(
    {
        "ReceiptHandleIsInvalid",
        "AWS.SimpleQueueService.ReceiptHandleIsInvalid",
        "MessageNotInflight",
        "AWS.SimpleQueueService.MessageNotInflight",
        "InvalidParameterValue",
    }
)


def build_sqs_client(
    region: str | None = None,
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
    max_pool_connections: int = 32,
) -> SQSClient:
    """A boto3 SQS client: default credential chain unless keys are given; honours
    ``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_SQS``; standard retries with backoff and jitter."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise ProviderError(
            "the aws provider needs boto3: pip install 'rms-cloud-tasks[aws]'"
        ) from exc
    session = boto3.session.Session(
        aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
    )
    config = Config(
        retries={"mode": "standard", "max_attempts": 8},
        max_pool_connections=max_pool_connections,
        connect_timeout=10,
        read_timeout=SQS_MAX_WAIT_S + 20,  # longer than a long poll
    )
    return session.client("sqs", region_name=session.region_name or "us-east-1", config=config)


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def translate_aws_error(exc: Exception, what: str) -> Exception:
    """Our exception for a botocore/boto3 error raised while doing ``what``."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return CredentialsError(
            f"{what}: no AWS credentials found; configure the default chain "
            "(aws configure, AWS_PROFILE, an instance role) or set access_key/secret_key"
        )
    if isinstance(exc, NoRegionError):
        return ProviderError(f"{what}: no AWS region; set region in the config or AWS_REGION")
    if isinstance(exc, ConnectionError):
        return ProviderError(f"{what}: cannot reach SQS ({exc}); check the network and region")
    if isinstance(exc, ClientError):
        code = _error_code(exc)
        message = str(exc.response.get("Error", {}).get("Message", "")) or code
        if code in _CREDENTIAL_CODES:
            return CredentialsError(f"{what}: AWS rejected the credentials ({code}: {message})")
        if code in _PERMISSION_CODES:
            return CredentialsError(
                f"{what}: permission denied ({message}); the credentials need the SQS "
                "permissions listed in docs/queues.md"
            )
        if code in _THROTTLE_CODES:
            return ProviderError(f"{what}: SQS is throttling requests ({code}); try again later")
        return ProviderError(f"{what}: {code}: {message}")
    if isinstance(exc, BotoCoreError):
        return ProviderError(f"{what}: {exc}")
    return exc


@attrs.frozen
class _Raw:
    """One received SQS message."""

    body: str
    receipt: str
    receive_count: int


class _SqsQueueBase:
    """Naming, queue URL, errors, batched sends and long-poll receives shared by both queues."""

    def __init__(
        self,
        name: str,
        *,
        client: SQSClient | None,
        region: str | None,
        fifo: bool,
        visibility_timeout_s: float,
        max_workers: int,
        access_key: str | None,
        secret_key: str | None,
    ) -> None:
        if not name:
            raise ProviderError("a queue name is required (set job_id or queue_name)")
        self.name = name
        self.fifo = fifo
        self.sqs_name = f"{name}.fifo" if fifo else name
        self.region = region
        self.visibility_timeout_s = visibility_timeout_s
        self.max_workers = max(1, max_workers)
        self._client_or_none = client
        self._credentials = (access_key, secret_key)
        self._url: str | None = None

    @property
    def client(self) -> SQSClient:
        if self._client_or_none is None:
            with self._errors("connecting to SQS"):
                self._client_or_none = build_sqs_client(
                    self.region,
                    access_key=self._credentials[0],
                    secret_key=self._credentials[1],
                    max_pool_connections=max(10, 2 * self.max_workers),
                )
        return self._client_or_none

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            module = type(exc).__module__
            if not module.startswith(("botocore", "boto3")):
                raise
            if _error_code(exc) in _MISSING_CODES:
                self._url = None
                raise self._missing() from exc
            raise translate_aws_error(exc, f"SQS queue {self.sqs_name!r}: {action}") from exc

    def _missing(self) -> QueueNotFoundError:
        where = f" in region {self.region}" if self.region else ""
        return QueueNotFoundError(
            f"SQS queue {self.sqs_name!r} does not exist{where}; create it with "
            "'cloud_tasks load_queue' (or check --queue-name/--job-id and --region)"
        )

    @property
    def url(self) -> str:
        if self._url is None:
            with self._errors("looking up the queue"):
                self._url = self.client.get_queue_url(QueueName=self.sqs_name)["QueueUrl"]
        return self._url

    def without_waiting(self) -> None:
        """None: every call is a request over the network, which may wait."""
        return None

    def create(self) -> None:
        """Create the queue if missing (idempotent)."""
        attributes: dict[Any, str] = {
            "VisibilityTimeout": str(_clamp_visibility(self.visibility_timeout_s)),
            "MessageRetentionPeriod": str(SQS_RETENTION_S),
            "MaximumMessageSize": str(SQS_MAX_MESSAGE_BYTES),
        }
        if self.fifo:
            attributes.update(
                FifoQueue="true",
                ContentBasedDeduplication="false",
                # High-throughput FIFO: limits apply per message group (one group per task).
                DeduplicationScope="messageGroup",
                FifoThroughputLimit="perMessageGroupId",
            )
        try:
            with self._errors("creating the queue"):
                self._url = self.client.create_queue(
                    QueueName=self.sqs_name, Attributes=attributes, tags=_MANAGED_TAG
                )["QueueUrl"]
        except ProviderError as exc:
            if "QueueAlreadyExists" in str(exc) or "QueueNameExists" in str(exc):
                # It exists with other attributes (made by an older configuration): use it.
                log.warning("SQS queue %s exists with different attributes; using it", self.name)
                return
            if "QueueDeletedRecently" in str(exc):
                raise ProviderError(
                    f"SQS queue {self.sqs_name!r} was deleted less than 60 s ago and SQS "
                    "refuses to recreate it until then; wait a minute and try again"
                ) from exc
            raise

    def exists(self) -> bool:
        try:
            _ = self.url
        except QueueNotFoundError:
            return False
        return True

    def delete(self) -> None:
        """Delete the queue and everything in it (idempotent)."""
        try:
            url = self.url
        except QueueNotFoundError:
            return
        with contextlib.suppress(QueueNotFoundError), self._errors("deleting the queue"):
            self.client.delete_queue(QueueUrl=url)
        self._url = None

    def _attributes(self, names: Sequence[str]) -> dict[str, str]:
        with self._errors("reading queue attributes"):
            response = self.client.get_queue_attributes(
                QueueUrl=self.url,
                AttributeNames=list(names),  # type: ignore[arg-type]
            )
        return {str(key): value for key, value in response.get("Attributes", {}).items()}

    def _approximate_count(self) -> int:
        attributes = self._attributes(
            [
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ]
        )
        return sum(int(value) for value in attributes.values())

    def _purge(self) -> None:
        try:
            with self._errors("purging"):
                self.client.purge_queue(QueueUrl=self.url)
        except ProviderError as exc:
            if "PurgeQueueInProgress" in str(exc):
                raise ProviderError(
                    f"SQS queue {self.sqs_name!r}: a purge is already in progress (SQS allows "
                    "one purge per 60 s); wait a minute and try again"
                ) from exc
            raise

    # -- sending -------------------------------------------------------------------------------

    def _entry(self, index: int, body: str, key: str | None) -> SendMessageBatchRequestEntryTypeDef:
        entry: SendMessageBatchRequestEntryTypeDef = {"Id": str(index), "MessageBody": body}
        if self.fifo:
            group = key if key is not None else hashlib.sha256(body.encode()).hexdigest()
            entry["MessageGroupId"] = _fifo_id(group)
            entry["MessageDeduplicationId"] = hashlib.sha256(body.encode()).hexdigest()
        return entry

    def _send_bodies(self, bodies: Sequence[str], keys: Sequence[str | None]) -> None:
        """Send in batches of ten (and 256 KiB), several batches at once."""
        batches: list[list[SendMessageBatchRequestEntryTypeDef]] = []
        current: list[SendMessageBatchRequestEntryTypeDef] = []
        current_bytes = 0
        for body, key in zip(bodies, keys, strict=True):
            size = len(body.encode("utf-8"))
            if current and (
                len(current) == SQS_MAX_BATCH or current_bytes + size > SQS_MAX_BATCH_BYTES
            ):
                batches.append(current)
                current, current_bytes = [], 0
            current.append(self._entry(len(current), body, key))
            current_bytes += size
        if current:
            batches.append(current)
        if not batches:
            return
        url = self.url
        if len(batches) == 1:
            self._send_batch(url, batches[0])
            return
        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(batches))) as pool:
            for future in [pool.submit(self._send_batch, url, batch) for batch in batches]:
                future.result()

    def _send_batch(self, url: str, entries: list[SendMessageBatchRequestEntryTypeDef]) -> None:
        """Send one batch; entries SQS failed on its side are sent again with backoff."""
        pending = entries

        def attempt() -> None:
            nonlocal pending
            with self._errors("sending messages"):
                response = self.client.send_message_batch(QueueUrl=url, Entries=pending)
            failed = response.get("Failed", [])
            if not failed:
                return
            fatal = [f for f in failed if f.get("SenderFault")]
            if fatal:
                first = fatal[0]
                raise ProviderError(
                    f"SQS queue {self.sqs_name!r}: message rejected "
                    f"({first.get('Code')}: {first.get('Message', '')})"
                )
            failed_ids = {f["Id"] for f in failed}
            pending = [entry for entry in pending if entry["Id"] in failed_ids]
            raise _SendIncomplete

        try:
            call_with_retries(
                attempt,
                retryable=lambda exc: isinstance(exc, _SendIncomplete),
                backoff=_SEND_BACKOFF,
            )
        except _SendIncomplete:
            raise ProviderError(
                f"SQS queue {self.sqs_name!r}: {len(pending)} messages still failing after "
                f"{_SEND_BACKOFF.max_attempts} attempts; try again later"
            ) from None

    # -- receiving -----------------------------------------------------------------------------

    def _receive_raw(
        self, max_messages: int, visibility_timeout_s: float, wait_s: float
    ) -> list[_Raw]:
        """Up to ``max_messages``; long-polls (20 s at a time) for the first one."""
        out: list[_Raw] = []
        if max_messages <= 0:
            return out
        deadline = time.monotonic() + max(0.0, wait_s)
        visibility = _clamp_visibility(visibility_timeout_s)
        while len(out) < max_messages:
            remaining = deadline - time.monotonic()
            wait = 0 if out or remaining <= 0 else min(SQS_MAX_WAIT_S, math.ceil(remaining))
            with self._errors("receiving messages"):
                response = self.client.receive_message(
                    QueueUrl=self.url,
                    MaxNumberOfMessages=min(SQS_MAX_BATCH, max_messages - len(out)),
                    VisibilityTimeout=visibility,
                    WaitTimeSeconds=wait,
                    MessageSystemAttributeNames=["ApproximateReceiveCount"],
                )
            messages = response.get("Messages", [])
            for message in messages:
                count = message.get("Attributes", {}).get("ApproximateReceiveCount", "1")
                out.append(_Raw(message["Body"], message["ReceiptHandle"], int(count)))
            if not messages and (out or time.monotonic() >= deadline):
                break
        return out

    def _change_visibility(self, receipt: str, visibility_timeout_s: float) -> Lease:
        try:
            with self._errors("changing a message's visibility"):
                self.client.change_message_visibility(
                    QueueUrl=self.url,
                    ReceiptHandle=receipt,
                    VisibilityTimeout=_clamp_visibility(visibility_timeout_s),
                )
        except QueueNotFoundError:
            raise
        except ProviderError as exc:
            if not _is_stale(exc):
                raise
            # The lease already ended (or the message is gone): nothing left to change.
            log.debug("SQS queue %s: stale receipt: %s", self.name, exc)
            return Lease.GONE if _is_gone(exc) else Lease.LOST
        return Lease.HELD

    def _delete(self, receipts: Sequence[str]) -> None:
        url = self.url
        for start in range(0, len(receipts), SQS_MAX_BATCH):
            chunk = receipts[start : start + SQS_MAX_BATCH]
            with self._errors("deleting messages"):
                response = self.client.delete_message_batch(
                    QueueUrl=url,
                    Entries=[{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(chunk)],
                )
            for failure in response.get("Failed", []):
                # Deleting an already-deleted message is fine; anything else is not.
                if failure.get("Code") not in _STALE_RECEIPT_CODES:
                    raise ProviderError(
                        f"SQS queue {self.sqs_name!r}: cannot delete a message "
                        f"({failure.get('Code')}: {failure.get('Message', '')})"
                    )


def _is_stale(exc: ProviderError) -> bool:
    cause = exc.__cause__
    return cause is not None and _error_code(cause) in _STALE_RECEIPT_CODES


def _is_gone(exc: ProviderError) -> bool:
    """Whether a visibility change failed because the receipt's message is no longer there.

    SQS answers ``InvalidParameterValue`` "Message does not exist or is not available for
    visibility timeout change" for a deleted message (and for a receipt another delivery
    replaced); moto answers ``ReceiptHandleIsInvalid``. ``MessageNotInflight`` (a lapsed
    lease, the message visible) and a visibility over the limit are not "gone".
    """
    cause = exc.__cause__
    if cause is None:
        return False
    code = _error_code(cause)
    if code in ("ReceiptHandleIsInvalid", "AWS.SimpleQueueService.ReceiptHandleIsInvalid"):
        return True
    response = getattr(cause, "response", None)
    message = str(response.get("Error", {}).get("Message", "")) if response else ""
    return code == "InvalidParameterValue" and "does not exist" in message


def _clamp_visibility(seconds: float) -> int:
    return max(0, min(SQS_MAX_VISIBILITY_S, math.ceil(seconds)))


def _fifo_id(key: str) -> str:
    """A valid FIFO group id (≤ 128 chars of a restricted set) for any task id."""
    if len(key) <= 128 and all(
        c.isalnum() or c in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" for c in key
    ):
        return key
    return hashlib.sha256(key.encode()).hexdigest()


class _SendIncomplete(Exception):
    """SQS failed some entries of a batch on its side (``SenderFault`` false): send those again."""


class SqsTaskQueue(_SqsQueueBase):
    """A ``TaskQueue`` on SQS (standard, or FIFO with ``fifo=True``).

    ``visibility_timeout_s`` is the queue's default lease, used by consumers that do not pass
    one; ``receive`` always passes its own. ``max_workers`` batches are sent at once.
    """

    def __init__(
        self,
        name: str,
        *,
        client: SQSClient | None = None,
        region: str | None = None,
        fifo: bool = False,
        visibility_timeout_s: float = 120.0,
        max_workers: int = 16,
        access_key: str | None = None,
        secret_key: str | None = None,
    ) -> None:
        super().__init__(
            name,
            client=client,
            region=region,
            fifo=fifo,
            visibility_timeout_s=visibility_timeout_s,
            max_workers=max_workers,
            access_key=access_key,
            secret_key=secret_key,
        )
        self.max_message_bytes = SQS_MAX_MESSAGE_BYTES

    #: SQS keeps no record of loaded task ids; ``load_queue`` keeps one on this machine.
    remembers_loads = False

    def send_once(self, envelopes: Sequence[Envelope]) -> int:
        """Not available (``remembers_loads`` is false)."""
        raise NotSupportedError(
            f"SQS queue {self.sqs_name!r} keeps no record of loaded tasks; use send"
        )

    def address(self) -> str:
        """``aws|<endpoint>|<region>|<name>``; the endpoint is set only for an emulator."""
        endpoint = os.environ.get("AWS_ENDPOINT_URL_SQS") or os.environ.get("AWS_ENDPOINT_URL")
        region = self.region or str(self.client.meta.region_name or "")
        return f"aws|{endpoint or ''}|{region}|{self.name}"

    def send(self, envelopes: Sequence[Envelope]) -> None:
        """Store every envelope; an oversized task is reported before anything is sent."""
        bodies = [envelope.encode() for envelope in envelopes]
        for envelope, body in zip(envelopes, bodies, strict=True):
            size = len(body.encode("utf-8"))
            if size > self.max_message_bytes:
                raise ProviderError(
                    f"SQS queue {self.sqs_name!r}: task {envelope.task.task_id!r} is {size} "
                    f"bytes, over SQS's {self.max_message_bytes}-byte message limit"
                )
        self._send_bodies(bodies, [envelope.task.task_id for envelope in envelopes])

    def receive(
        self, max_messages: int, visibility_timeout_s: float, wait_s: float = 0.0
    ) -> list[ReceivedTask]:
        """Lease up to ``max_messages``; the lease is capped at SQS's 12 hours."""
        received: list[ReceivedTask] = []
        for raw in self._receive_raw(max_messages, visibility_timeout_s, wait_s):
            try:
                envelope = Envelope.decode(raw.body)
            except (ValueError, KeyError, TypeError):
                # Not one of ours; leave it alone rather than crash every worker on it.
                log.warning("SQS queue %s: skipping a message that is not a task", self.name)
                continue
            received.append(ReceivedTask(envelope, raw.receipt, raw.receive_count))
        return received

    def extend(self, receipt: str, visibility_timeout_s: float) -> Lease:
        return self._change_visibility(receipt, visibility_timeout_s)

    def ack(self, receipt: str) -> None:
        self._delete([receipt])

    def release(self, receipt: str) -> None:
        self._change_visibility(receipt, 0)

    def requeue(self, message: ReceivedTask) -> None:
        """Send the task again with one more failure, then ack this delivery."""
        self.send([attrs.evolve(message.envelope, failures=message.envelope.failures + 1)])
        self.ack(message.receipt)

    def depth(self) -> int:
        """Visible, leased and delayed messages (SQS's approximate counts)."""
        return self._approximate_count()

    def purge(self) -> None:
        """Delete every message (SQS may take up to 60 s to finish)."""
        self._purge()


class SqsEventQueue(_SqsQueueBase):
    """The ``<queue>-events`` queue on SQS (always a standard queue)."""

    def __init__(
        self,
        name: str,
        *,
        client: SQSClient | None = None,
        region: str | None = None,
        visibility_timeout_s: float = 60.0,
        max_workers: int = 8,
        access_key: str | None = None,
        secret_key: str | None = None,
    ) -> None:
        super().__init__(
            name,
            client=client,
            region=region,
            fifo=False,
            visibility_timeout_s=visibility_timeout_s,
            max_workers=max_workers,
            access_key=access_key,
            secret_key=secret_key,
        )

    def send(self, events: Sequence[Mapping[str, Any]]) -> None:
        bodies = encode_events(self.name, events)
        self._send_bodies(bodies, [None] * len(bodies))

    def receive(self, max_messages: int, wait_s: float = 0.0) -> list[ReceivedEvent]:
        received: list[ReceivedEvent] = []
        for raw in self._receive_raw(max_messages, self.visibility_timeout_s, wait_s):
            try:
                event = json.loads(raw.body)
            except ValueError:
                log.warning("SQS queue %s: skipping a message that is not JSON", self.name)
                continue
            if isinstance(event, dict):
                received.append(ReceivedEvent(event, raw.receipt))
        return received

    def ack(self, receipts: Iterable[str]) -> None:
        self._delete(list(receipts))

    def depth(self) -> int:
        return self._approximate_count()

    def purge(self) -> None:
        self._purge()


__all__ = ["SqsEventQueue", "SqsTaskQueue", "build_sqs_client", "translate_aws_error"]

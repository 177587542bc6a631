"""What the AWS destinations share: the client and error mapping (their settings and
credentials models live in `certforge.common.destinations.aws`).

`AwsDestination` is the base of `aws_acm.AwsAcm` and `aws_secrets.AwsSecretsManager`. It owns
one boto3 client per sync, created lazily, and runs every call off the event loop.

Credentials: an access key pair (with an optional session token) or nothing at all. Nothing
means boto3's default credential chain *of the syncer process*: environment, shared config,
IRSA / ECS task role, EC2 instance profile. That is what an operator running the syncer on EKS
or EC2 wants, but it also means every application admin who can create a sync acts with the
syncer's IAM identity: scope that role to the resources syncs may touch; the api allows empty
credentials only where the operator enabled it.

Timeouts: `timeout_seconds` bounds the TCP connect and every socket read of one attempt;
botocore makes at most 2 attempts (standard retry mode, jittered backoff below 1 s), so an
unreachable or silent endpoint fails within about 2 x (connect + read) timeouts + 1 s, and a
hard deadline a little above that bounds even a server that trickles bytes forever.

Threads: boto3 blocks, so calls run in one bounded thread pool shared by the AWS destinations
(not the loop's default executor): a hanging AWS endpoint then cannot starve other plugins or
the syncer's own `asyncio.to_thread` users of threads.

Errors: `to_sync_error` is the one place botocore failures become Transient/Permanent errors.
Their messages are shown to users: PEM blocks and credential values are removed from them.
"""

from __future__ import annotations

import asyncio
import functools
import re
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

from certforge.common.destinations.aws import AwsCredentials, AwsSettings
from certforge.syncer.plugins.base import (
    Destination,
    PermanentSyncError,
    SyncError,
    TransientSyncError,
    peer_message,
)

__all__ = [
    "AwsDestination",
    "client_error_code",
    "make_client",
    "to_sync_error",
    "translate_errors",
]

MAX_ATTEMPTS = 2
"""botocore attempts per call, the first try included (one quick retry, jittered backoff below
1 s); the syncer retries further with its own backoff."""

_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="certforge-aws")


_SESSION: Any = None
_SESSION_LOCK = threading.Lock()


def make_client(service: str, settings: AwsSettings, credentials: AwsCredentials) -> Any:
    """A boto3 client for `service` (blocking: run it off the loop).

    All clients come from one process-wide boto3 `Session` holding no credentials of its own:
    it caches the service models (a client then costs ~10 ms instead of ~150 ms) and resolves
    the default credential chain once. Sessions are not thread-safe, so clients are made under
    a lock; the clients themselves are thread-safe.
    """
    global _SESSION
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=settings.timeout_seconds,
        read_timeout=settings.timeout_seconds,
        # `total_max_attempts` counts the first try; botocore's `max_attempts` would not.
        retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        user_agent_extra="certforge-syncer",
    )
    secret = credentials.secret_access_key
    token = credentials.session_token
    with _SESSION_LOCK:
        if _SESSION is None:
            _SESSION = boto3.session.Session()
        return _SESSION.client(
            service,
            region_name=settings.region,
            endpoint_url=str(settings.endpoint_url) if settings.endpoint_url else None,
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            aws_session_token=token.get_secret_value() if token else None,
            config=config,
        )


# --- errors -------------------------------------------------------------------------------

_TRANSIENT_CODES = frozenset(
    {
        # throttling
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "SlowDown",
        "PriorRequestNotComplete",
        # the service's own trouble
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServiceError",
        "InternalServiceErrorException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        # a concurrent change of the same resource (ACM tags, a secret being rotated)
        "ConflictException",
        "ConcurrentModificationException",
        "TransactionInProgressException",
        # the syncer's clock is off: fixed on the host, then a retry works
        "RequestTimeTooSkewed",
        "RequestExpired",
    }
)

_CREDENTIAL_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "ExpiredToken",
        "ExpiredTokenException",
        "AuthFailure",
        "UnauthorizedOperation",
        "NotAuthorized",
        "OptInRequired",
        "KMSAccessDeniedException",
    }
)
"""Refused credentials or permissions: permanent, and said so."""

_HINTS = {
    "LimitExceededException": "an AWS quota is reached; raise it or delete unused objects",
    "ResourceInUseException": "the object is in use by another AWS resource; detach it first",
    "TooManyTagsException": "too many tags on the object",
}

_PEM = re.compile(r"-----BEGIN [^-]{1,64}-----[\s\S]*?(?:-----END [^-]{1,64}-----|$)")
_XML_CODE = re.compile(r"<Code>([^<]{1,128})</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]{0,1000})</Message>")


def _clean(text: str, secrets: Iterable[str]) -> str:
    text = _PEM.sub("[PEM redacted]", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return peer_message(text)


def client_error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore `ClientError` (None for anything else)."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return None
    code, _, _ = _client_error_parts(exc)
    return code


def _client_error_parts(exc: Any) -> tuple[str, str, int]:
    error = exc.response.get("Error", {}) or {}
    code = str(error.get("Code") or "")
    message = str(error.get("Message") or "")
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if message.lstrip().startswith("<"):
        # An XML error body where JSON was expected (moto's auth errors, proxies): dig it out.
        xml_code, xml_message = _XML_CODE.search(message), _XML_MESSAGE.search(message)
        if xml_code:
            code = xml_code.group(1)
        message = xml_message.group(1) if xml_message else "unparseable error body"
    if not code and status:
        code = str(status)
    return code, message, status


def to_sync_error(
    exc: BaseException, service: str, secrets: Iterable[str] = ()
) -> SyncError | None:
    """Classify a botocore failure; None if `exc` is not one (let it propagate as a bug).

    Transient (retried by the syncer): throttling, HTTP 408/429/5xx, the service's internal
    errors, concurrent modification, connect/read timeouts, unreachable endpoints, dropped
    connections, unparseable responses, failures to fetch credentials from IMDS/IRSA.
    Permanent: refused credentials or permissions, validation errors (`ValidationException`,
    `InvalidParameter*`, `InvalidRequestException`, client-side parameter validation), quotas
    (`LimitExceededException`: a quota stays reached until a human acts), an object in use,
    no credentials found, an untrusted TLS certificate of the endpoint, and any other 4xx.
    """
    from botocore import exceptions as bex
    from botocore.parsers import ResponseParserError

    secrets = list(secrets)
    if isinstance(exc, bex.ClientError):
        code, message, status = _client_error_parts(exc)
        operation = getattr(exc, "operation_name", "") or "call"
        detail = _clean(f"{code}: {message}" if message else code, secrets)
        if code in _TRANSIENT_CODES or status in (408, 429) or status >= 500:
            return TransientSyncError(f"{service} {operation} failed ({detail}); will retry")
        if code in _CREDENTIAL_CODES or status in (401, 403):
            return PermanentSyncError(
                f"{service} {operation}: credentials or permissions refused ({detail})"
            )
        hint = _HINTS.get(code)
        return PermanentSyncError(
            f"{service} {operation} refused ({detail})" + (f": {hint}" if hint else "")
        )
    if isinstance(exc, bex.SSLError):
        if "CERTIFICATE_VERIFY_FAILED" in str(exc).upper().replace(" ", "_"):
            return PermanentSyncError(
                f"{service}: the endpoint's TLS certificate is not trusted by the syncer"
            )
        return TransientSyncError(f"{service}: TLS failure ({_clean(str(exc), secrets)})")
    if isinstance(exc, bex.ConnectTimeoutError | bex.ReadTimeoutError):
        return TransientSyncError(f"{service}: timed out ({_clean(str(exc), secrets)})")
    if isinstance(exc, bex.EndpointConnectionError | bex.ProxyConnectionError):
        return TransientSyncError(f"{service}: unreachable ({_clean(str(exc), secrets)})")
    if isinstance(
        exc,
        bex.HTTPClientError  # connection closed or reset, streaming errors
        | bex.ConnectionError
        | bex.IncompleteReadError
        | ResponseParserError  # garbage where an AWS answer was expected
        | bex.CredentialRetrievalError  # IMDS / IRSA / container role not answering
        | bex.TokenRetrievalError,
    ):
        return TransientSyncError(f"{service}: {_clean(str(exc), secrets)}; will retry")
    if isinstance(exc, bex.NoCredentialsError):
        return PermanentSyncError(
            f"{service}: no credentials in the sync and none in the syncer's default AWS "
            "credential chain"
        )
    if isinstance(exc, bex.ParamValidationError):
        # Its report quotes offending values: keep only the parameter names.
        names = sorted(set(re.findall(r"parameter ([\w.\[\]]+)", str(exc))))
        return PermanentSyncError(
            f"{service}: invalid request parameters ({', '.join(names) or 'see the settings'})"
        )
    if isinstance(exc, bex.BotoCoreError):
        # Configuration: partial credentials, unknown region or endpoint, bad proxy settings…
        return PermanentSyncError(f"{service}: {_clean(str(exc), secrets)}")
    if isinstance(exc, OSError):
        return TransientSyncError(f"{service}: {_clean(str(exc), secrets)}; will retry")
    return None


@contextmanager
def translate_errors(service: str, secrets: Iterable[str] = ()) -> Iterator[None]:
    """Turn escaping botocore failures into `SyncError`s (others pass through untouched)."""
    try:
        yield
    except SyncError:
        raise
    except Exception as exc:
        error = to_sync_error(exc, service, secrets)
        if error is None:
            raise
        raise error from exc


# --- the base destination ------------------------------------------------------------------

AwsSettingsT = TypeVar("AwsSettingsT", bound=AwsSettings)


class AwsDestination(Destination[AwsSettingsT, AwsCredentials]):
    """A lazily created boto3 client for `service`, and `_call` to use it off the loop."""

    service: ClassVar[str]
    """boto3 service name (`acm`, `secretsmanager`)."""
    label: ClassVar[str]
    """How messages name the service (`AWS ACM`)."""
    executor = _POOL

    def __init__(
        self, settings: AwsSettingsT, credentials: AwsCredentials, *, development: bool
    ) -> None:
        super().__init__(settings, credentials, development=development)
        self._client: Any = None
        self._client_lock = asyncio.Lock()

    def call_deadline(self) -> float:
        """2 attempts of connect + read, botocore's backoff between them, slack."""
        return MAX_ATTEMPTS * 2 * self.settings.timeout_seconds + 5

    async def _get_client(self) -> Any:
        if self._client is None:
            async with self._client_lock:
                if self._client is None:
                    with self._errors():
                        self._client = await self.run_blocking(
                            functools.partial(
                                make_client, self.service, self.settings, self.credentials
                            ),
                            action="create the client",
                        )
        return self._client

    async def _call(self, operation: str, /, **params: Any) -> dict[str, Any]:
        """Run `client.<operation>(**params)` off the loop; botocore errors propagate raw so
        callers can handle specific codes; wrap callers in `self._errors()`."""
        client = await self._get_client()
        result: dict[str, Any] = await self.run_blocking(
            functools.partial(getattr(client, operation), **params), action=operation
        )
        return result

    @contextmanager
    def _errors(self) -> Iterator[None]:
        with translate_errors(self.label, self.credentials.secret_values()):
            yield

    def _unexpected(self, operation: str) -> TransientSyncError:
        return TransientSyncError(f"{self.label} {operation}: unexpected response; will retry")

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await self.run_blocking(client.close, action="close the client")

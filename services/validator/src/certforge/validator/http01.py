"""http-01 (RFC 8555 §8.3): GET `http://<identifier>/.well-known/acme-challenge/<token>`.

Each hop resolves its host through the validator's resolver, checks every address, and
connects to a checked address itself (the URL carries the address, the Host header and TLS
server name carry the name), so a second lookup cannot swap in an address that was never
checked (DNS rebinding). Redirects are followed by hand for the same reason, at most
`MAX_REDIRECTS`, each to http on the http-01 port or https on the https port only. Certificates
of an https redirect target are not verified: http-01 proves control of the HTTP answer, and
the site may well be moving to the very certificate being ordered (Let's Encrypt does the same).

The body is read up to `BODY_LIMIT` bytes: a key authorization is under 200, and a requester's
server may answer anything.
"""

from __future__ import annotations

import ssl

import httpx

from certforge.common.acme import HTTP01_PATH, ErrorType
from certforge.validator.context import Challenge, Network
from certforge.validator.failures import ValidationFailure, quoted
from certforge.validator.targets import (
    MAX_REDIRECTS,
    IPAddress,
    RedirectRefused,
    Target,
    host_header,
    redirect_target,
    url_host,
)

BODY_LIMIT = 8192
REDIRECTS = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "certforge-validator (ACME http-01; RFC 8555)"


async def check(challenge: Challenge, network: Network) -> None:
    """Pass, or raise `ValidationFailure` saying what was fetched and what came back."""
    settings = network.settings
    target = Target(
        "http", challenge.identifier, settings.http01_port, HTTP01_PATH + challenge.token
    )
    timeout = httpx.Timeout(settings.read_timeout_seconds, connect=settings.connect_timeout_seconds)
    async with httpx.AsyncClient(
        timeout=timeout, verify=_unverified(), trust_env=False, follow_redirects=False
    ) as client:
        for hop in range(MAX_REDIRECTS + 1):
            response, body = await _fetch(client, network, target, first=hop == 0)
            if response.status_code in REDIRECTS:
                location = response.headers.get("location")
                if not location:
                    raise ValidationFailure(
                        ErrorType.CONNECTION,
                        f"{target.shown} answered {response.status_code} without a Location",
                    )
                if hop == MAX_REDIRECTS:
                    raise ValidationFailure(
                        ErrorType.CONNECTION,
                        f"Too many redirects: more than {MAX_REDIRECTS}, the last from "
                        f"{target.shown} to {quoted(location)}",
                    )
                try:
                    target = redirect_target(
                        target,
                        location,
                        http_port=settings.http01_port,
                        https_port=settings.https_port,
                    )
                except RedirectRefused as exc:
                    raise ValidationFailure(
                        ErrorType.CONNECTION, f"{target.shown}: {exc}"
                    ) from None
                continue
            if response.status_code != 200:
                raise ValidationFailure(
                    ErrorType.UNAUTHORIZED,
                    f"Invalid response from {target.shown}: {response.status_code}, body "
                    f"{quoted(body)}",
                )
            _compare(target, body, challenge.key_authorization)
            return


def _compare(target: Target, body: bytes, expected: str) -> None:
    if len(body) > BODY_LIMIT:
        raise ValidationFailure(
            ErrorType.INCORRECT_RESPONSE,
            f"The key authorization file at {target.shown} is larger than {BODY_LIMIT} bytes",
        )
    # RFC 8555 §8.3: the server verifies the body after stripping trailing whitespace.
    received = body.decode("utf-8", errors="replace").rstrip()
    if received != expected:
        raise ValidationFailure(
            ErrorType.INCORRECT_RESPONSE,
            f"The key authorization file at {target.shown} does not match this challenge: "
            f"expected {quoted(expected)}, got {quoted(received)}",
        )


async def _fetch(
    client: httpx.AsyncClient, network: Network, target: Target, *, first: bool
) -> tuple[httpx.Response, bytes]:
    """GET `target` at each of its checked addresses until one connects; the response and
    up to `BODY_LIMIT` + 1 bytes of its body."""
    what = "the identifier" if first else "the redirect target"
    addresses = await network.addresses(target.host, what=what)
    last: ValidationFailure | None = None
    for address in addresses:
        try:
            return await _get(client, target, address, first=first)
        except ValidationFailure as exc:
            if not exc.transient:
                raise
            last = exc  # this address does not answer: the next one might
    assert last is not None
    raise last


async def _get(
    client: httpx.AsyncClient, target: Target, address: IPAddress, *, first: bool
) -> tuple[httpx.Response, bytes]:
    # The first request's Host is the identifier alone, as on port 80, whatever port a test
    # or a development setup configured; a redirect's is its URL's authority.
    default = target.port if first else 80 if target.scheme == "http" else 443
    url = f"{target.scheme}://{url_host(address)}:{target.port}{target.path}"
    headers = {
        "Host": host_header(target.host, target.port, default),
        "User-Agent": USER_AGENT,
        "Accept": "*/*",
        "Accept-Encoding": "identity",
    }
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    where = f"{target.shown} ({url_host(address)}:{target.port})"
    try:
        async with client.stream("GET", url, headers=headers, extensions=extensions) as response:
            body = b""
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > BODY_LIMIT:
                    break
            return response, body
    except httpx.ConnectTimeout:
        raise ValidationFailure(
            ErrorType.CONNECTION, f"Timeout connecting to {where}", transient=True
        ) from None
    except httpx.ConnectError as exc:
        if _is_tls(exc):
            raise ValidationFailure(
                ErrorType.TLS, f"TLS handshake with {where} failed: {_reason(exc)}"
            ) from None
        raise ValidationFailure(
            ErrorType.CONNECTION, f"Connecting to {where} failed: {_reason(exc)}", transient=True
        ) from None
    except httpx.TimeoutException:
        raise ValidationFailure(
            ErrorType.CONNECTION, f"Timeout waiting for {where} to answer", transient=True
        ) from None
    except (httpx.ReadError, httpx.WriteError) as exc:
        raise ValidationFailure(
            ErrorType.CONNECTION,
            f"The connection to {where} broke: {_reason(exc)}",
            transient=True,
        ) from None
    except httpx.HTTPError as exc:  # a malformed HTTP answer and the like: final
        raise ValidationFailure(
            ErrorType.CONNECTION, f"Fetching {where} failed: {_reason(exc)}"
        ) from None


def _unverified() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _is_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]

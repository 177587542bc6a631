"""tls-alpn-01 (RFC 8737): a TLS handshake with the identifier on the tls-alpn-01 port,
offering only ALPN `acme-tls/1`, whose self-signed certificate proves the key authorization.

The certificate is not verified against any CA (RFC 8737 §3: it is self-signed by design);
what counts is `acme_certificate_problem`: exactly one subjectAltName, equal to the identifier,
and the critical acmeIdentifier extension carrying the SHA-256 of the key authorization.
Connection and handshake are separate steps so that a refused connection (retried) and a TLS
failure (final) get their own error type.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl

from cryptography import x509

from certforge.common.acme import ACME_IDENTIFIER_OID, ALPN_PROTOCOL, ErrorType, tls_alpn01_digest
from certforge.validator.context import Challenge, Network
from certforge.validator.failures import ValidationFailure
from certforge.validator.targets import IPAddress, sni_name, url_host


def acme_certificate_problem(
    der: bytes, identifier_type: str, identifier: str, key_authorization: str
) -> str | None:
    """What is wrong with a tls-alpn-01 certificate (DER), or None when it proves
    `key_authorization` for the identifier."""
    try:
        certificate = x509.load_der_x509_certificate(der)
        extensions = certificate.extensions
    except ValueError as exc:  # malformed, or an extension twice (DuplicateExtension)
        return f"the certificate could not be read: {str(exc)[:120]}"
    try:
        names = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "the certificate has no subjectAltName extension"
    listed = [_shown(name) for name in names]
    if len(listed) != 1 or not _matches(next(iter(names)), identifier_type, identifier):
        return (
            f"the certificate's subjectAltName must be exactly {identifier}; "
            f"it lists {', '.join(listed) or 'nothing'}"
        )
    try:
        extension = extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    except x509.ExtensionNotFound:
        return "the certificate has no acmeIdentifier extension (1.3.6.1.5.5.7.1.31)"
    if not extension.critical:
        return "the certificate's acmeIdentifier extension is not marked critical"
    raw = extension.value.value if isinstance(extension.value, x509.UnrecognizedExtension) else b""
    digest = tls_alpn01_digest(key_authorization)
    if raw != b"\x04\x20" + digest:
        return (
            "the certificate's acmeIdentifier extension does not carry the SHA-256 digest of "
            "this challenge's key authorization"
        )
    return None


def _matches(name: x509.GeneralName, identifier_type: str, identifier: str) -> bool:
    if identifier_type == "ip":
        return isinstance(name, x509.IPAddress) and name.value == ipaddress.ip_address(identifier)
    return isinstance(name, x509.DNSName) and name.value.lower() == identifier.lower()


def _shown(name: x509.GeneralName) -> str:
    kind = type(name).__name__
    return f"{kind}:{str(name.value)[:80]}"


async def check(challenge: Challenge, network: Network) -> None:
    settings = network.settings
    addresses = await network.addresses(challenge.identifier, what="the identifier")
    last: ValidationFailure | None = None
    for address in addresses:
        try:
            der = await _handshake(challenge, network, address)
        except ValidationFailure as exc:
            if not exc.transient:
                raise
            last = exc
            continue
        where = f"{url_host(address)}:{settings.tls_alpn01_port}"
        problem = acme_certificate_problem(
            der, challenge.identifier_type, challenge.identifier, challenge.key_authorization
        )
        if problem is not None:
            raise ValidationFailure(
                ErrorType.INCORRECT_RESPONSE,
                f"Incorrect validation certificate for tls-alpn-01 from {where}: {problem}",
            )
        return
    assert last is not None
    raise last


async def _handshake(challenge: Challenge, network: Network, address: IPAddress) -> bytes:
    """The peer's certificate (DER) after a handshake that negotiated acme-tls/1."""
    settings = network.settings
    port = settings.tls_alpn01_port
    where = f"{url_host(address)}:{port}"
    server_name = sni_name(challenge.identifier_type, challenge.identifier)
    try:
        async with asyncio.timeout(settings.connect_timeout_seconds):
            _, writer = await asyncio.open_connection(str(address), port)
    except TimeoutError:
        raise ValidationFailure(
            ErrorType.CONNECTION, f"Timeout connecting to {where}", transient=True
        ) from None
    except OSError as exc:
        raise ValidationFailure(
            ErrorType.CONNECTION,
            f"Connecting to {where} failed: {exc.strerror or type(exc).__name__}",
            transient=True,
        ) from None
    try:
        try:
            async with asyncio.timeout(settings.read_timeout_seconds):
                await writer.start_tls(_client_context(), server_hostname=server_name)
        except TimeoutError:
            raise ValidationFailure(
                ErrorType.CONNECTION,
                f"Timeout during the TLS handshake with {where}",
                transient=True,
            ) from None
        except ssl.SSLError as exc:
            raise ValidationFailure(
                ErrorType.TLS,
                f"TLS handshake with {where} (server name {server_name}) failed: "
                f"{exc.reason or exc.strerror or type(exc).__name__}",
            ) from None
        except OSError as exc:
            raise ValidationFailure(
                ErrorType.CONNECTION,
                f"The connection to {where} broke during the TLS handshake: "
                f"{exc.strerror or type(exc).__name__}",
                transient=True,
            ) from None
        tls = writer.get_extra_info("ssl_object")
        protocol = tls.selected_alpn_protocol() if tls is not None else None
        if protocol != ALPN_PROTOCOL:
            raise ValidationFailure(
                ErrorType.TLS,
                f"{where} (server name {server_name}) did not negotiate ALPN "
                f"{ALPN_PROTOCOL} (it chose {protocol or 'none'})",
            )
        der = tls.getpeercert(binary_form=True)
        if not der:
            raise ValidationFailure(ErrorType.TLS, f"{where} presented no certificate")
        return bytes(der)
    finally:
        writer.close()
        try:
            async with asyncio.timeout(1):
                await writer.wait_closed()
        except (OSError, TimeoutError, ssl.SSLError):
            pass


def _client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # self-signed by design: its content is checked
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8737 §4
    context.set_alpn_protocols([ALPN_PROTOCOL])
    return context

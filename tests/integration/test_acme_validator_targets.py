"""Where the validator refuses to connect, checked against the real responders: with
`allow_private_targets` off, the session's loopback responders are exactly the kind of target
an attacker would aim a validator at. Each check runs in-process (`checks.validate`) with its
own settings; nothing here needs the database.
"""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from typing import Any

import pytest

from acme_responders import DnsServer, Http01Responder, HttpsResponder, TlsAlpnResponder
from certforge.common.acme import ErrorType, b64url, key_authorization
from certforge.validator.checks import validate
from certforge.validator.context import Challenge, Network
from certforge.validator.settings import ValidationSettings

pytestmark = pytest.mark.asyncio(loop_scope="session")


def name(prefix: str = "host") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}.test"


def challenge(kind: str, identifier: str, identifier_type: str = "dns") -> Challenge:
    token = b64url(secrets.token_bytes(32))
    return Challenge(
        type=kind,
        token=token,
        identifier_type=identifier_type,
        identifier=identifier,
        key_authorization=key_authorization(token, b64url(secrets.token_bytes(32))),
    )


@pytest.fixture
def network(
    acme_dns: DnsServer, http01_responder: Http01Responder, tls_alpn_responder: TlsAlpnResponder
) -> Any:
    """`network(**settings)`: the validator's view of the session responders, private targets
    refused unless the settings say otherwise."""

    def make(**overrides: Any) -> Network:
        settings: dict[str, Any] = {
            "http01_port": http01_responder.port,
            "tls_alpn01_port": tls_alpn_responder.port,
            "resolver": acme_dns.nameserver,
            "connect_timeout_seconds": 2,
            "read_timeout_seconds": 3,
            "retries": 0,
            **overrides,
        }
        return Network.of(ValidationSettings(**settings))

    return make


@pytest.mark.parametrize(
    ("kind", "identifier_type", "identifier", "records", "seen"),
    [
        ("http-01", "dns", "NAME", {}, "resolves to 127.0.0.1, which is loopback"),
        ("http-01", "ip", "127.0.0.1", {}, "127.0.0.1 is loopback"),
        ("tls-alpn-01", "ip", "::1", {}, "::1 is loopback"),
        ("http-01", "dns", "NAME", {"A": ["10.1.2.3"]}, "10.1.2.3, which is private"),
        ("http-01", "dns", "NAME", {"A": ["169.254.169.254"]}, "link-local"),
        ("tls-alpn-01", "dns", "NAME", {"AAAA": ["fe80::1"]}, "fe80::1, which is link-local"),
        ("http-01", "dns", "NAME", {"AAAA": ["::ffff:10.0.0.1"]}, "private (embedded in"),
        (
            "http-01",
            "dns",
            "NAME",
            {"A": ["93.184.216.34", "192.168.1.1"]},
            "192.168.1.1, which is private",
        ),
        ("http-01", "dns", "NAME", {"A": ["0.0.0.0"]}, "unspecified"),
        ("http-01", "dns", "NAME", {"A": ["100.64.0.1"]}, "not globally routable"),
    ],
    ids=[
        "fail/name-to-loopback",
        "fail/ipv4-loopback",
        "fail/ipv6-loopback-tls",
        "fail/private",
        "fail/metadata-service",
        "fail/ipv6-link-local",
        "fail/ipv4-mapped-private",
        "fail/one-public-one-private",
        "fail/unspecified",
        "fail/shared-address-space",
    ],
)
async def test_private_targets_are_refused_when_not_allowed(
    network: Any,
    acme_dns: DnsServer,
    http01_responder: Http01Responder,
    tls_alpn_responder: TlsAlpnResponder,
    kind: str,
    identifier_type: str,
    identifier: str,
    records: dict[str, list[str]],
    seen: str,
) -> None:
    value = name() if identifier == "NAME" else identifier
    if records:
        acme_dns.set_a(value, records.get("A", []))
        acme_dns.set_aaaa(value, records.get("AAAA", []))
    checked = challenge(kind, value, identifier_type)
    http01_responder.serve(checked.token, checked.key_authorization)
    tls_alpn_responder.serve(value, checked.key_authorization)
    asked_before = len(tls_alpn_responder.server_names)

    failure = await validate(checked, network())

    assert failure is not None
    assert failure.error is ErrorType.REJECTED_IDENTIFIER, failure.detail
    assert seen in failure.detail, failure.detail
    assert "the identifier" in failure.detail
    # refused before any connection
    assert http01_responder.hosts_asked_for(checked.token) == []
    assert len(tls_alpn_responder.server_names) == asked_before


async def test_allowed_networks_let_a_private_pki_validate_its_own_hosts(
    network: Any, http01_responder: Http01Responder
) -> None:
    checked = challenge("http-01", name())
    http01_responder.serve(checked.token, checked.key_authorization)
    allowed = [ipaddress.ip_network("127.0.0.0/8")]
    assert await validate(checked, network(allowed_networks=allowed)) is None


@pytest.mark.parametrize(
    ("target", "records", "seen"),
    [
        ("http://[::1]:{port}/x", {}, "the redirect target ::1 is loopback"),
        ("http://{other}:{port}/x", {"A": ["10.9.8.7"]}, "10.9.8.7, which is private"),
    ],
    ids=["fail/redirect-to-address", "fail/redirect-to-name"],
)
async def test_redirects_to_refused_addresses_are_not_followed(
    network: Any,
    acme_dns: DnsServer,
    http01_responder: Http01Responder,
    target: str,
    records: dict[str, list[str]],
    seen: str,
) -> None:
    other = name("inside")
    if records:
        acme_dns.set_a(other, records["A"])
    checked = challenge("http-01", name())
    http01_responder.redirect(checked.token, target.format(port=http01_responder.port, other=other))
    allowed = [ipaddress.ip_network("127.0.0.0/8")]  # the identifier itself may be checked

    failure = await validate(checked, network(allowed_networks=allowed))

    assert failure is not None
    assert failure.error is ErrorType.REJECTED_IDENTIFIER, failure.detail
    assert seen in failure.detail, failure.detail
    assert http01_responder.hosts_asked_for("/x") == []


async def test_an_unreachable_ipv6_address_falls_back_to_ipv4(
    network: Any, acme_dns: DnsServer, http01_responder: Http01Responder
) -> None:
    host = name("dual")
    acme_dns.set_aaaa(host, ["::ffff:127.0.0.2"])  # tried first; nothing listens there
    acme_dns.set_a(host, ["127.0.0.1"])
    checked = challenge("http-01", host)
    http01_responder.serve(checked.token, checked.key_authorization)
    assert await validate(checked, network(allow_private_targets=True)) is None
    assert http01_responder.hosts_asked_for(checked.token) == [host]


async def test_a_name_without_addresses_is_a_dns_problem(network: Any, acme_dns: DnsServer) -> None:
    host = name("empty")
    acme_dns.set_a(host, [])
    failure = await validate(challenge("http-01", host), network(allow_private_targets=True))
    assert failure is not None
    assert failure.error is ErrorType.DNS
    assert f"no A or AAAA record found for {host}" in failure.detail


async def test_a_name_that_does_not_exist_is_a_dns_problem(network: Any) -> None:
    host = f"nowhere-{uuid.uuid4().hex[:8]}.invalid"
    failure = await validate(challenge("tls-alpn-01", host), network(allow_private_targets=True))
    assert failure is not None
    assert failure.error is ErrorType.DNS
    assert f"NXDOMAIN looking up A and AAAA for {host}" in failure.detail


async def test_a_dns_server_that_does_not_answer_is_retried_then_a_dns_problem(
    network: Any,
) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # receives queries, never answers
        port = silent.getsockname()[1]
        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)

        failure = await validate(
            challenge("dns-01", name()),
            network(resolver=f"127.0.0.1:{port}", connect_timeout_seconds=0.3, retries=2),
            sleep=sleep,
        )
    assert failure is not None
    assert failure.error is ErrorType.DNS
    assert "timed out" in failure.detail
    assert f"127.0.0.1:{port}" in failure.detail
    assert len(slept) == 2  # two retries, then the verdict
    assert slept[1] >= slept[0] / 2


async def test_a_redirect_to_https_is_followed_with_the_name_as_server_name(
    network: Any, http01_responder: Http01Responder
) -> None:
    """The https port is where a redirect may go; the certificate there is not verified (it is
    self-signed here), the name travels as SNI and Host while the connection goes to the
    checked address."""
    https = HttpsResponder().start()
    try:
        host, secure = name("plain"), name("secure")
        checked = challenge("http-01", host)
        http01_responder.redirect(checked.token, f"https://{secure}:{https.port}/s/{checked.token}")
        https.respond(f"/s/{checked.token}", 200, checked.key_authorization.encode())
        settings = {"allow_private_targets": True, "https_port": https.port}
        assert await validate(checked, network(**settings)) is None
        assert https.server_names == [secure]
        assert https.hosts_asked_for(f"/s/{checked.token}") == [f"{secure}:{https.port}"]
    finally:
        https.stop()

"""The validator's pure rules: which addresses it refuses, the names it sends, the redirects it
follows, the resolver setting, and what a tls-alpn-01 certificate must carry."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from pydantic import ValidationError

from acme_responders import acme_tls_certificate
from certforge.common.acme import ErrorType
from certforge.validator.checks import CHECKS, validate
from certforge.validator.context import Challenge, Network
from certforge.validator.dns01 import record_name
from certforge.validator.failures import ValidationFailure, quoted
from certforge.validator.resolver import parse_nameserver
from certforge.validator.settings import ValidationSettings
from certforge.validator.targets import (
    RedirectRefused,
    Target,
    address_class,
    host_header,
    redirect_target,
    refusal,
    sni_name,
)
from certforge.validator.tls_alpn01 import acme_certificate_problem

KEY_AUTHZ = "token.thumbprint"


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("93.184.216.34", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.0.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "private"),  # reserved, which Python also counts as private
        ("100.64.0.1", "not globally routable"),
        ("192.0.2.1", "private"),  # TEST-NET-1 (documentation)
        ("::ffff:127.0.0.1", "loopback (embedded in ::ffff:7f00:1)"),
        ("::ffff:93.184.216.34", None),
        ("2002:a00:1::", "private (embedded in 2002:a00:1::)"),  # 6to4 of 10.0.0.1
    ],
)
def test_address_class(address: str, kind: str | None) -> None:
    assert address_class(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    ("address", "allow_private", "networks", "refused"),
    [
        ("93.184.216.34", False, [], None),
        ("10.0.0.1", False, [], "private"),
        ("10.0.0.1", True, [], None),
        ("10.20.3.4", False, ["10.20.0.0/16"], None),
        ("10.21.3.4", False, ["10.20.0.0/16"], "private"),
        ("169.254.169.254", False, ["10.20.0.0/16"], "link-local"),
        ("127.0.0.1", True, [], None),
        ("0.0.0.0", True, [], "unspecified"),
        ("224.0.0.1", True, ["224.0.0.0/4"], "multicast"),
    ],
    ids=[
        "ok/public",
        "fail/private",
        "ok/private-allowed",
        "ok/allowed-network",
        "fail/outside-allowed-network",
        "fail/link-local-not-in-allowed-network",
        "ok/loopback-allowed",
        "fail/unspecified-always",
        "fail/multicast-always",
    ],
)
def test_refusal(
    address: str, allow_private: bool, networks: list[str], refused: str | None
) -> None:
    got = refusal(
        ipaddress.ip_address(address),
        allow_private=allow_private,
        allowed_networks=[ipaddress.ip_network(n) for n in networks],
    )
    assert got == refused


@pytest.mark.parametrize(
    ("identifier_type", "value", "expected"),
    [
        ("dns", "www.example.com", "www.example.com"),
        ("ip", "192.0.2.5", "5.2.0.192.in-addr.arpa"),
        (
            "ip",
            "2001:db8::1",
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
        ),
    ],
)
def test_sni_name_is_the_reverse_name_for_an_ip(
    identifier_type: str, value: str, expected: str
) -> None:
    assert sni_name(identifier_type, value) == expected


@pytest.mark.parametrize(
    ("host", "port", "default", "expected"),
    [
        ("example.com", 80, 80, "example.com"),
        ("example.com", 8080, 80, "example.com:8080"),
        ("192.0.2.1", 80, 80, "192.0.2.1"),
        ("2001:db8::1", 80, 80, "[2001:db8::1]"),
        ("2001:db8::1", 8443, 443, "[2001:db8::1]:8443"),
    ],
)
def test_host_header(host: str, port: int, default: int, expected: str) -> None:
    assert host_header(host, port, default) == expected


HERE = Target("http", "example.com", 80, "/.well-known/acme-challenge/t")


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/other", Target("http", "example.com", 80, "/other")),
        (
            "next?x=1#frag",
            Target("http", "example.com", 80, "/.well-known/acme-challenge/next?x=1"),
        ),
        ("http://Other.Example.:80/p", Target("http", "other.example", 80, "/p")),
        ("https://secure.example/p", Target("https", "secure.example", 443, "/p")),
        ("https://[2001:db8::1]/p", Target("https", "2001:db8::1", 443, "/p")),
        ("//cdn.example", Target("http", "cdn.example", 80, "/")),
        ("http://bücher.example/", Target("http", "xn--bcher-kva.example", 80, "/")),
    ],
    ids=[
        "ok/absolute-path",
        "ok/relative",
        "ok/other-host",
        "ok/https",
        "ok/ipv6",
        "ok/scheme-relative",
        "ok/idn",
    ],
)
def test_redirect_target_follows(location: str, expected: Target) -> None:
    assert redirect_target(HERE, location, http_port=80, https_port=443) == expected


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://example.com:8080/", "targets port 8080"),
        ("https://example.com:80/", "targets port 80"),
        ("ftp://example.com/", "not to http or https"),
        ("file:///etc/passwd", "not to http or https"),
        ("https:///nohost", "names no host"),
        ("http://example.com:99999/", "not a valid URL"),
        ("http://a..b/", "no valid host"),
    ],
    ids=[
        "fail/http-port",
        "fail/https-port",
        "fail/ftp",
        "fail/file",
        "fail/no-host",
        "fail/bad-port",
        "fail/bad-name",
    ],
)
def test_redirect_target_refuses(location: str, reason: str) -> None:
    with pytest.raises(RedirectRefused, match=reason):
        redirect_target(HERE, location, http_port=80, https_port=443)


def test_target_url_shows_brackets_and_non_default_ports() -> None:
    assert Target("http", "2001:db8::1", 8080, "/x").url == "http://[2001:db8::1]:8080/x"
    assert Target("https", "example.com", 443, "/x").url == "https://example.com/x"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("[2001:db8::53]", ("2001:db8::53", 53)),
    ],
)
def test_parse_nameserver(value: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(value) == expected


@pytest.mark.parametrize(
    "value", ["dns.example:53", "127.0.0.1:0", "127.0.0.1:x", "[::1]5353", "[::1]:70000"]
)
def test_parse_nameserver_refuses(value: str) -> None:
    with pytest.raises(ValueError, match="resolver"):
        parse_nameserver(value)


def test_the_resolver_setting_is_checked_at_start_up() -> None:
    with pytest.raises(ValidationError, match="must be an IP address"):
        ValidationSettings(resolver="dns.example")


def test_the_ack_wait_outlasts_the_slowest_validation() -> None:
    settings = ValidationSettings(attempt_timeout_seconds=10, retries=2, retry_base_seconds=1)
    assert settings.worst_case_seconds == 3 * 10 + 1 + 2


@pytest.mark.parametrize(
    ("identifier", "name"),
    [
        ("example.com", "_acme-challenge.example.com"),
        ("*.example.com", "_acme-challenge.example.com"),
    ],
)
def test_dns01_record_name(identifier: str, name: str) -> None:
    assert record_name(identifier) == name


def test_quoted_escapes_and_truncates() -> None:
    assert quoted('a"b\n') == '"a\\"b\\n"'
    assert quoted("x" * 200, 10) == '"xxxxxxxxxx"… (200 characters)'
    assert quoted(b"\xff") == '"\\ufffd"'


def test_unauthorized_problems_are_403_and_name_the_identifier() -> None:
    identifier = {"type": "dns", "value": "example.com"}
    problem = ValidationFailure(ErrorType.UNAUTHORIZED, "no").problem(identifier)
    assert problem == {
        "type": "urn:ietf:params:acme:error:unauthorized",
        "detail": "no",
        "status": 403,
        "identifier": identifier,
    }
    assert ValidationFailure(ErrorType.DNS, "x").problem(identifier)["status"] == 400
    assert ValidationFailure(ErrorType.SERVER_INTERNAL, "x").problem(identifier)["status"] == 500


# --- the tls-alpn-01 certificate --------------------------------------------------------------


def der(identifier: str, **options: Any) -> bytes:
    pem, _ = acme_tls_certificate(identifier, KEY_AUTHZ, **options)
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(
    ("identifier_type", "identifier", "certificate", "problem"),
    [
        ("dns", "example.com", {}, None),
        ("dns", "Example.COM", {}, None),
        ("ip", "192.0.2.7", {}, None),
        ("ip", "2001:db8::7", {}, None),
        ("dns", "example.com", {"with_extension": False}, "no acmeIdentifier extension"),
        ("dns", "example.com", {"critical": False}, "not marked critical"),
        ("dns", "example.com", {"digest": b"\x01" * 32}, "SHA-256 digest"),
        ("dns", "example.com", {"digest": b"\x01" * 20}, "SHA-256 digest"),
        (
            "dns",
            "example.com",
            {"extra_sans": ("www.example.com",)},
            "it lists DNSName:example.com, DNSName:www.example.com",
        ),
        (
            "dns",
            "other.example",
            {"identifier": "example.com"},
            "must be exactly other.example",
        ),
        ("ip", "192.0.2.8", {"identifier": "192.0.2.7"}, "IPAddress:192.0.2.7"),
        (
            "ip",
            "192.0.2.7",
            {"identifier": "7.2.0.192.in-addr.arpa"},
            "DNSName:7.2.0.192.in-addr.arpa",
        ),
    ],
    ids=[
        "ok/dns",
        "ok/dns-case",
        "ok/ipv4",
        "ok/ipv6",
        "fail/no-extension",
        "fail/not-critical",
        "fail/wrong-digest",
        "fail/short-digest",
        "fail/two-sans",
        "fail/other-name",
        "fail/other-address",
        "fail/reverse-name-as-dns-san",
    ],
)
def test_acme_certificate_problem(
    identifier_type: str, identifier: str, certificate: dict[str, Any], problem: str | None
) -> None:
    options = dict(certificate)
    subject = options.pop("identifier", identifier.lower())
    found = acme_certificate_problem(
        der(subject, **options), identifier_type, identifier, KEY_AUTHZ
    )
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_a_certificate_for_another_key_authorization_is_refused() -> None:
    found = acme_certificate_problem(der("example.com"), "dns", "example.com", KEY_AUTHZ + "x")
    assert found is not None
    assert "SHA-256 digest" in found


def test_a_certificate_without_san_or_unreadable_is_refused() -> None:
    from datetime import UTC, datetime, timedelta

    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.com")])
    bare = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime.now(UTC))
        .not_valid_after(datetime.now(UTC) + timedelta(days=1))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    assert acme_certificate_problem(bare, "dns", "example.com", KEY_AUTHZ) == (
        "the certificate has no subjectAltName extension"
    )
    unreadable = acme_certificate_problem(b"\x30\x03\x02\x01\x01", "dns", "example.com", KEY_AUTHZ)
    assert unreadable is not None
    assert unreadable.startswith("the certificate could not be read")


# --- the verdict of one validation --------------------------------------------------------------


def _challenge(kind: str) -> Challenge:
    return Challenge(kind, "token", "dns", "example.com", KEY_AUTHZ)


def _network() -> Network:
    return Network.of(ValidationSettings(resolver="127.0.0.1:1", retries=3))


async def test_a_bug_in_a_check_is_a_verdict_not_an_endless_redelivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []

    async def broken(challenge: Challenge, network: Network) -> None:
        calls.append(challenge)
        raise KeyError("internal detail")

    monkeypatch.setitem(CHECKS, "http-01", broken)
    failure = await validate(_challenge("http-01"), _network())
    assert failure is not None
    assert failure.error is ErrorType.SERVER_INTERNAL
    assert "internal detail" not in failure.detail
    assert len(calls) == 1  # not retried: only connection-level failures are


async def test_only_transient_failures_are_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes = [
        ValidationFailure(ErrorType.CONNECTION, "refused", transient=True),
        ValidationFailure(ErrorType.CONNECTION, "refused", transient=True),
        None,
    ]

    async def flaky(challenge: Challenge, network: Network) -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setitem(CHECKS, "http-01", flaky)
    assert await validate(_challenge("http-01"), _network(), sleep=sleep) is None
    assert len(slept) == 2

    async def wrong(challenge: Challenge, network: Network) -> None:
        raise ValidationFailure(ErrorType.INCORRECT_RESPONSE, "wrong")

    slept.clear()
    monkeypatch.setitem(CHECKS, "http-01", wrong)
    failure = await validate(_challenge("http-01"), _network(), sleep=sleep)
    assert failure is not None
    assert failure.error is ErrorType.INCORRECT_RESPONSE
    assert slept == []


async def test_an_unknown_challenge_type_is_malformed() -> None:
    failure = await validate(_challenge("http-02"), _network())
    assert failure is not None
    assert failure.error is ErrorType.MALFORMED


def test_a_refused_redirect_quotes_a_long_location_briefly() -> None:
    with pytest.raises(RedirectRefused) as refused:
        redirect_target(HERE, "ftp://example.com/" + "x" * 5000, http_port=80, https_port=443)
    assert len(str(refused.value)) < 200

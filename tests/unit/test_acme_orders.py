"""Pure pieces of ACME orders: identifiers, the order plan, the derived status, chains,
contacts, revocation reasons and ARI's early-renewal rule."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from certforge.api.acme import accounts, ari, certificates, identifiers, orders, revocation
from certforge.api.acme.errors import AcmeProblem
from certforge.common.acme import ChallengeType, IdentifierType
from certforge.common.issuance import ProfileDefaults
from certforge.common.policy import PolicyDocument

NOW = datetime(2026, 12, 1, tzinfo=UTC)
ALL = ["http-01", "dns-01", "tls-alpn-01"]


def ident(kind: str, value: str) -> dict[str, str]:
    return {"type": kind, "value": value}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([ident("dns", "www.example.com")], ["www.example.com"]),
        ([ident("dns", "WWW.Example.com.")], ["www.example.com"]),
        ([ident("dns", "*.example.com")], ["*.example.com"]),
        ([ident("dns", "xn--bcher-kva.example")], ["xn--bcher-kva.example"]),
        ([ident("ip", "2001:db8:0::1")], ["2001:db8::1"]),
        ([ident("dns", "a.example.com"), ident("dns", "a.example.com")], ["a.example.com"]),
    ],
    ids=["ok/dns", "ok/case-and-dot", "ok/wildcard", "ok/a-label", "ok/ipv6", "ok/dedupe"],
)
def test_identifiers_are_normalised(raw: list[Any], expected: list[str]) -> None:
    assert [i.value for i in identifiers.parse(raw)] == expected


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ([ident("email", "a@example.com")], "unsupportedIdentifier"),
        ([ident("dns", "bücher.example")], "rejectedIdentifier"),
        ([ident("dns", "a..example")], "rejectedIdentifier"),
        ([ident("dns", "*.*.example.com")], "rejectedIdentifier"),
        ([ident("ip", "1.2.3")], "rejectedIdentifier"),
        ([ident("email", "a@b.c"), ident("dns", "-bad-.example")], "rejectedIdentifier"),
        ([ident("dns", f"h{i}.example.com") for i in range(101)], "rejectedIdentifier"),
        ([], "malformed"),
        ([{"type": "dns"}], "malformed"),
    ],
    ids=[
        "fail/type",
        "fail/u-label",
        "fail/empty-label",
        "fail/double-wildcard",
        "fail/ip",
        "fail/mixed",
        "fail/too-many",
        "fail/empty",
        "fail/shape",
    ],
)
def test_bad_identifiers(raw: list[Any], error: str) -> None:
    with pytest.raises(AcmeProblem) as exc:
        identifiers.parse(raw)
    assert exc.value.error.value == error


def test_policy_refusals_are_per_identifier() -> None:
    policy = PolicyDocument.model_validate(
        {"sans": {"dns": {"allowed": ["*.example.com"]}, "ip": {"allowed": ["10.0.0.0/8"]}}}
    )
    found = identifiers.parse(
        [ident("dns", "a.example.com"), ident("dns", "a.example.org"), ident("ip", "192.0.2.1")]
    )
    refused = identifiers.rejected(found, policy, "web", (), ProfileDefaults(), NOW)
    assert [s["identifier"]["value"] for s in refused] == ["a.example.org", "192.0.2.1"]
    assert all(s["type"].endswith(":rejectedIdentifier") for s in refused)


def test_plan_order_offers_what_each_identifier_can_use() -> None:
    counter = itertools.count()
    found = identifiers.parse(
        [ident("dns", "a.example.com"), ident("dns", "*.example.com"), ident("ip", "10.0.0.1")]
    )
    plan = orders.plan_order(
        found,
        ALL,
        NOW,
        timedelta(days=7),
        new_id=lambda: UUID(int=next(counter)),
        token=lambda: "tok",
    )
    assert plan.expires_at == NOW + timedelta(days=7)
    offered = {a.identifier.value: [c.type for c in a.challenges] for a in plan.authorizations}
    assert offered == {
        "a.example.com": [ChallengeType.HTTP_01, ChallengeType.DNS_01, ChallengeType.TLS_ALPN_01],
        "*.example.com": [ChallengeType.DNS_01],
        "10.0.0.1": [ChallengeType.HTTP_01, ChallengeType.TLS_ALPN_01],
    }
    wildcard = plan.authorizations[1].identifier
    assert wildcard.wildcard
    assert wildcard.base == "example.com"
    ids = [a.id for a in plan.authorizations] + [plan.id]
    assert len(set(ids)) == len(ids)


def test_plan_order_refuses_what_no_allowed_challenge_proves() -> None:
    found = identifiers.parse([ident("dns", "*.example.com"), ident("ip", "10.0.0.1")])
    with pytest.raises(AcmeProblem) as exc:
        orders.plan_order(found, ["dns-01"], NOW, timedelta(days=1))
    assert exc.value.error.value == "rejectedIdentifier"
    assert [s["identifier"]["value"] for s in exc.value.subproblems] == ["10.0.0.1"]


def test_tokens_are_long_and_unique() -> None:
    tokens = {orders.new_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(t) == 43 for t in tokens)


def order_row(status: str, expires: datetime = NOW + timedelta(days=1)) -> dict[str, Any]:
    return {"status": status, "expires_at": expires, "error": None, "certificate_id": None}


@pytest.mark.parametrize(
    ("order", "request_row", "status", "error"),
    [
        (order_row("pending"), None, "pending", None),
        (order_row("ready", NOW - timedelta(seconds=1)), None, "invalid", "malformed"),
        (order_row("processing"), {"status": "pending"}, "processing", None),
        (
            order_row("processing"),
            {"status": "issued", "certificate_id": UUID(int=7), "error": None},
            "valid",
            None,
        ),
        (
            order_row("processing"),
            {"status": "rejected", "certificate_id": None, "error": "policy"},
            "invalid",
            "badCSR",
        ),
        (
            order_row("processing"),
            {"status": "failed", "certificate_id": None, "error": "boom"},
            "invalid",
            "serverInternal",
        ),
        (order_row("valid", NOW - timedelta(days=9)), None, "valid", None),
    ],
    ids=[
        "ok/pending",
        "expired",
        "processing",
        "issued",
        "rejected",
        "failed",
        "valid-stays-valid",
    ],
)
def test_settle(
    order: dict[str, Any], request_row: dict[str, Any] | None, status: str, error: str | None
) -> None:
    settled = orders.settle(order, request_row, NOW)  # type: ignore[arg-type]
    assert settled.status == status
    if error is None:
        assert settled.error is None
    else:
        assert settled.error is not None
        assert settled.error["type"].endswith(f":{error}")


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (["tel:123"], "unsupportedContact"),
        (["mailto:"], "invalidContact"),
        (["mailto:a@b"], "invalidContact"),
        (["mailto:a@example.com?cc=b@example.com"], "invalidContact"),
        ([f"mailto:a{i}@example.com" for i in range(9)], "invalidContact"),
        ("mailto:a@example.com", "malformed"),
    ],
    ids=["fail/scheme", "fail/empty", "fail/domain", "fail/hfields", "fail/too-many", "fail/type"],
)
def test_bad_contacts(value: Any, error: str) -> None:
    with pytest.raises(AcmeProblem) as exc:
        accounts.check_contacts(value)
    assert exc.value.error.value == error


def test_good_contacts() -> None:
    assert accounts.check_contacts(["MAILTO:ops@Example.com"]) == ["mailto:ops@example.com"]
    assert accounts.check_contacts([]) == []


@pytest.mark.parametrize("value", [7, 8, 11, -1, "1", True, 1.0])
def test_bad_revocation_reasons(value: Any) -> None:
    with pytest.raises(AcmeProblem) as exc:
        revocation.reason_of(value)
    assert exc.value.error.value == "badRevocationReason"


def test_revocation_reasons() -> None:
    assert revocation.reason_of(None).value == "unspecified"
    assert revocation.reason_of(1).value == "keyCompromise"
    assert revocation.reason_of(4).value == "superseded"


def test_early_renewal_of_a_ca_applies_to_what_it_issued_before() -> None:
    issued = NOW - timedelta(days=3)
    assert ari.early_renewal_at(None, None, issued) is None
    assert ari.early_renewal_at(None, NOW, issued) == NOW
    assert ari.early_renewal_at(None, issued - timedelta(days=1), issued) is None
    assert ari.early_renewal_at(NOW - timedelta(days=1), NOW, issued) == NOW - timedelta(days=1)


def test_chains_leave_the_root_out_first() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from pki_tools import certificate_pem, external_certificate

    root_key = ec.generate_private_key(ec.SECP256R1())
    root = external_certificate("Root", root_key, None, ca=True)
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    issuing = external_certificate("Issuing", issuing_key, (root, root_key), ca=True)
    leaf = external_certificate(
        "leaf.example.com",
        ec.generate_private_key(ec.SECP256R1()),
        (issuing, issuing_key),
        ca=False,
    )
    leaf_pem, issuing_pem, root_pem = map(certificate_pem, (leaf, issuing, root))
    first, second = certificates.chains(leaf_pem, issuing_pem + root_pem)
    assert first == leaf_pem + issuing_pem
    assert second == leaf_pem + issuing_pem + root_pem


def test_identifier_type_is_kept() -> None:
    found = identifiers.parse([ident("ip", "10.0.0.1")])
    assert found[0].type is IdentifierType.IP


@pytest.mark.parametrize(
    ("names", "authorized", "expected"),
    [
        ({("dns", "a.example.com")}, {("dns", "a.example.com", False)}, True),
        ({("dns", "*.example.com")}, {("dns", "example.com", False)}, False),
        ({("dns", "*.example.com")}, {("dns", "example.com", True)}, True),
        ({("dns", "a.example.com"), ("ip", "10.0.0.1")}, {("dns", "a.example.com", False)}, False),
        (set(), {("dns", "a.example.com", False)}, False),
    ],
    ids=["ok/one", "fail/wildcard-needs-wildcard", "ok/wildcard", "fail/partial", "fail/none"],
)
def test_revocation_by_authorizations(
    names: set[tuple[str, str]], authorized: set[tuple[str, str, bool]], expected: bool
) -> None:
    assert revocation.covered(names, authorized) is expected

"""The certificate policy: pattern semantics, every violation at once, models refusing nonsense."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from certforge.api.problems import status_for
from certforge.common.domain import SanType
from certforge.common.errors import FieldError, PolicyViolation
from certforge.common.policy import PolicyDocument, Violation, enforce, evaluate
from certforge.common.template import CertificateTemplate, San

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def dns(*names: str) -> list[dict[str, str]]:
    return [{"type": "dns", "value": n} for n in names]


def ip(*addresses: str) -> list[dict[str, str]]:
    return [{"type": "ip", "value": a} for a in addresses]


def email(*addresses: str) -> list[dict[str, str]]:
    return [{"type": "email", "value": a} for a in addresses]


def uri(*uris: str) -> list[dict[str, str]]:
    return [{"type": "uri", "value": u} for u in uris]


def template(**overrides: Any) -> CertificateTemplate:
    """A compliant-by-default server certificate for api.example.com, valid 90 days from NOW."""
    fields: dict[str, Any] = {
        "subject": {"common_name": "api.example.com"},
        "sans": dns("api.example.com"),
        "key_algorithm": "EC_P256",
        "signature_hash": "SHA256",
        "key_usages": ["digital_signature"],
        "extended_key_usages": ["server_auth"],
        "not_before": NOW,
        "not_after": NOW + timedelta(days=90),
    }
    if "sans" in overrides and "subject" not in overrides:
        # a case about SANs: a CN that is no host name keeps the CN's own rule out of it
        fields["subject"] = {"common_name": "Test Service"}
    fields.update(overrides)
    return CertificateTemplate.model_validate(fields)


WEB_DNS = {"allowed": ["*.example.com", "example.com"]}

CASES = [
    # --- DNS -------------------------------------------------------------------------------------
    pytest.param({}, {}, [], id="ok/empty-policy-allows-anything-but-ca"),
    pytest.param({"sans": {"dns": WEB_DNS}}, {"sans": dns("example.com")}, [], id="ok/dns-exact"),
    pytest.param(
        {"sans": {"dns": {"allowed": ["example.com"]}}},
        {"sans": dns("www.example.com")},
        ["sans.0.value"],
        id="fail/dns-exact-does-not-match-subdomain",
    ),
    pytest.param(
        {"sans": {"dns": {"allowed": ["EXAMPLE.com."]}}},
        {"sans": dns("example.com")},
        [],
        id="ok/dns-pattern-case-and-trailing-dot-normalised",
    ),
    pytest.param(
        {"sans": {"dns": WEB_DNS}},
        {"sans": dns("api.example.com")},
        [],
        id="ok/dns-single-label-wildcard-pattern",
    ),
    pytest.param(
        {"sans": {"dns": WEB_DNS}},
        {"sans": dns("a.b.example.com")},
        ["sans.0.value"],
        id="fail/dns-single-label-wildcard-not-two-labels",
    ),
    pytest.param(
        {"sans": {"dns": WEB_DNS}},
        {"sans": dns("evil.com")},
        ["sans.0.value"],
        id="fail/dns-outside-allowed",
    ),
    pytest.param(
        {"sans": {"dns": {"allowed": ["api.*.example.com"]}}},
        {"sans": dns("api.eu.example.com")},
        [],
        id="ok/dns-wildcard-label-in-the-middle",
    ),
    pytest.param(
        {"sans": {"dns": {"allowed": ["**.example.com"]}}},
        {"sans": dns("a.b.c.example.com", "x.example.com")},
        [],
        id="ok/dns-deep-pattern-any-depth",
    ),
    pytest.param(
        {"sans": {"dns": {"allowed": ["**.example.com"]}}},
        {"sans": dns("example.com")},
        ["sans.0.value"],
        id="fail/dns-deep-pattern-needs-at-least-one-label",
    ),
    pytest.param(
        {"sans": {"dns": {"allowed": ["**.example.com"]}}},
        {"sans": dns("api.example.org")},
        ["sans.0.value"],
        id="fail/dns-deep-pattern-other-domain",
    ),
    pytest.param(
        {"sans": {"dns": WEB_DNS}},
        {"sans": dns("*.example.com")},
        [],
        id="ok/dns-literal-wildcard-san-matched-by-wildcard-pattern",
    ),
    pytest.param(
        {"sans": {"dns": {"allowed": ["**.example.com"]}}},
        {"sans": dns("*.a.example.com")},
        [],
        id="ok/dns-literal-wildcard-san-matched-by-deep-pattern",
    ),
    pytest.param(
        {"sans": {"dns": {"allowed": ["api.example.com", "www.example.com"]}}},
        {"sans": dns("*.example.com")},
        ["sans.0.value"],
        id="fail/dns-literal-wildcard-san-needs-wildcard-pattern",
    ),
    pytest.param(
        {"sans": {"dns": {**WEB_DNS, "allow_wildcard": False}}},
        {"sans": dns("*.example.com")},
        ["sans.0.value"],
        id="fail/dns-wildcard-san-refused-by-allow-wildcard",
    ),
    pytest.param(
        {"sans": {"dns": {"allow_wildcard": False}}},
        {"sans": dns("*.example.com", "api.example.com")},
        ["sans.0.value"],
        id="fail/dns-wildcard-refused-without-allowed-list",
    ),
    pytest.param(
        {"sans": {"dns": {**WEB_DNS, "allow_wildcard": False}}},
        {"sans": dns("api.example.com")},
        [],
        id="ok/dns-allow-wildcard-false-still-allows-plain-names",
    ),
    pytest.param(
        {"sans": {"dns": {**WEB_DNS, "denied": ["admin.example.com"]}}},
        {"sans": dns("admin.example.com", "api.example.com")},
        ["sans.0.value"],
        id="fail/dns-denied-beats-allowed",
    ),
    pytest.param(
        {"sans": {"dns": {**WEB_DNS, "denied": ["admin.example.com"]}}},
        {"sans": dns("*.example.com")},
        ["sans.0.value"],
        id="fail/dns-wildcard-san-covering-a-denied-name",
    ),
    pytest.param(
        {"sans": {"dns": {"denied": ["**.internal.example.com"]}}},
        {"sans": dns("db.eu.internal.example.com")},
        ["sans.0.value"],
        id="fail/dns-denied-deep-pattern",
    ),
    pytest.param(
        {"sans": {"dns": {"denied": ["**.internal.example.com"]}}},
        {"sans": dns("*.example.com")},
        [],
        id="ok/dns-wildcard-san-not-covering-denied-deeper-names",
    ),
    pytest.param(
        {"sans": {"dns": {"allowed": []}}},
        {"sans": dns("api.example.com")},
        ["sans.0.value"],
        id="fail/dns-empty-allowed-list-allows-nothing",
    ),
    pytest.param(
        {"sans": {"dns": {"allowed": []}}},
        {"sans": ip("10.0.0.1")},
        [],
        id="ok/dns-empty-allowed-list-other-types-unaffected",
    ),
    pytest.param(
        {"sans": {"dns": {"required": True}}},
        {"sans": ip("10.0.0.1")},
        ["sans"],
        id="fail/dns-required-missing",
    ),
    pytest.param(
        {"sans": {"dns": {"required": True}}},
        {"sans": dns("api.example.com")},
        [],
        id="ok/dns-required-present",
    ),
    # --- IP --------------------------------------------------------------------------------------
    pytest.param(
        {"sans": {"ip": {"allowed": ["10.0.0.0/8"]}}},
        {"sans": ip("10.1.2.3")},
        [],
        id="ok/ip-inside-cidr",
    ),
    pytest.param(
        {"sans": {"ip": {"allowed": ["10.0.0.0/8"]}}},
        {"sans": ip("192.168.1.1")},
        ["sans.0.value"],
        id="fail/ip-outside-cidr",
    ),
    pytest.param(
        {"sans": {"ip": {"allowed": ["192.0.2.7"]}}},
        {"sans": ip("192.0.2.7")},
        [],
        id="ok/ip-single-address",
    ),
    pytest.param(
        {"sans": {"ip": {"allowed": ["2001:db8::/32"]}}},
        {"sans": ip("2001:db8:1::5")},
        [],
        id="ok/ip-inside-ipv6-cidr",
    ),
    pytest.param(
        {"sans": {"ip": {"allowed": ["2001:db8::/32"]}}},
        {"sans": ip("2001:db9::5", "10.0.0.1")},
        ["sans.0.value", "sans.1.value"],
        id="fail/ip-outside-ipv6-cidr-and-wrong-version",
    ),
    pytest.param(
        {"sans": {"ip": {"allowed": ["10.0.0.0/8"], "denied": ["10.0.0.0/24"]}}},
        {"sans": ip("10.0.0.9", "10.0.1.9")},
        ["sans.0.value"],
        id="fail/ip-denied-beats-allowed",
    ),
    pytest.param(
        {"sans": {"ip": {"denied": ["10.0.0.0/8"]}}},
        {"sans": ip("::ffff:10.0.0.1")},
        ["sans.0.value"],
        id="fail/ip-v4-mapped-v6-cannot-bypass-denied",
    ),
    pytest.param(
        {"sans": {"ip": {"required": True}}},
        {"sans": dns("api.example.com")},
        ["sans"],
        id="fail/ip-required-missing",
    ),
    # --- email -----------------------------------------------------------------------------------
    pytest.param(
        {"sans": {"email": {"allowed": ["*@example.com"]}}},
        {"sans": email("alice@EXAMPLE.com")},
        [],
        id="ok/email-glob-domain-case-insensitive",
    ),
    pytest.param(
        {"sans": {"email": {"allowed": ["*@example.com"]}}},
        {"sans": email("alice@evil.com")},
        ["sans.0.value"],
        id="fail/email-outside-glob",
    ),
    pytest.param(
        {"sans": {"email": {"allowed": ["*@example.com"], "denied": ["ceo@example.com"]}}},
        {"sans": email("CEO@example.com")},
        ["sans.0.value"],
        id="fail/email-denied-case-insensitive",
    ),
    # --- URI -------------------------------------------------------------------------------------
    pytest.param(
        {"sans": {"uri": {"allowed": ["spiffe://example.org/*"]}}},
        {"sans": uri("spiffe://example.org/ns/prod/sa/web")},
        [],
        id="ok/uri-glob",
    ),
    pytest.param(
        {"sans": {"uri": {"allowed": ["spiffe://example.org/*"]}}},
        {"sans": uri("spiffe://evil.org/ns/prod")},
        ["sans.0.value"],
        id="fail/uri-outside-glob",
    ),
    pytest.param(
        {"sans": {"uri": {"denied": ["https://evil.example/*"]}}},
        {"sans": uri("HTTPS://EVIL.example/x")},
        ["sans.0.value"],
        id="fail/uri-scheme-and-host-case-cannot-bypass-denied",
    ),
    pytest.param(
        {"sans": {"uri": {"allowed": ["spiffe://example.org/ns/prod/*"]}}},
        {"sans": uri("spiffe://example.org/ns/PROD/sa/web")},
        ["sans.0.value"],
        id="fail/uri-path-case-sensitive",
    ),
    pytest.param(
        {"sans": {"uri": {"allowed": ["http://[2001:db8::1]/*"]}}},
        {"sans": uri("http://[2001:db8::1]/health")},
        [],
        id="ok/uri-brackets-are-literal",
    ),
    # --- subject ---------------------------------------------------------------------------------
    pytest.param(
        {"sans": {"dns": WEB_DNS}},
        {"subject": {"common_name": "evil.com"}, "sans": dns("api.example.com")},
        ["subject.common_name"],
        id="fail/subject-cn-host-name-answers-to-the-dns-rule",
    ),
    pytest.param(
        {"sans": {"dns": WEB_DNS}},
        {"subject": {"common_name": "www.evil.com"}, "sans": []},
        ["subject.common_name"],
        id="fail/subject-cn-host-name-without-sans-answers-to-the-dns-rule",
    ),
    pytest.param(
        {"sans": {"dns": {**WEB_DNS, "denied": ["admin.example.com"]}}},
        {"subject": {"common_name": "ADMIN.example.com."}, "sans": []},
        ["subject.common_name"],
        id="fail/subject-cn-host-name-denied-case-and-dot-insensitive",
    ),
    pytest.param(
        {"sans": {"dns": WEB_DNS}},
        {"subject": {"common_name": "evil.com"}, "sans": dns("evil.com")},
        ["sans.0.value"],
        id="fail/subject-cn-that-is-also-a-dns-san-is-reported-once-at-the-san",
    ),
    pytest.param(
        {"subject": {"common_name": {"denied": ["*.evil.com"]}}, "sans": {"dns": WEB_DNS}},
        {"subject": {"common_name": "www.evil.com"}, "sans": []},
        ["subject.common_name"],
        id="fail/subject-cn-refused-by-its-own-rule-is-not-reported-again-by-the-dns-rule",
    ),
    pytest.param(
        {"sans": {"dns": WEB_DNS}},
        {"subject": {"common_name": "Payments Service"}, "sans": dns("api.example.com")},
        [],
        id="ok/subject-cn-that-is-no-host-name-is-not-judged-by-the-dns-rule",
    ),
    pytest.param(
        {"sans": {"dns": {"allowed": ["*.example.com"]}}},
        {"subject": {"common_name": "localhost"}, "sans": dns("api.example.com")},
        [],
        id="ok/subject-cn-single-label-is-not-a-host-name-with-a-domain",
    ),
    pytest.param(
        {"subject": {"common_name": {"allowed": ["*.example.com"]}}},
        {"subject": {"common_name": "API.Example.com"}},
        [],
        id="ok/subject-glob-case-insensitive",
    ),
    pytest.param(
        {"subject": {"common_name": {"allowed": ["*.example.com"]}}},
        {"subject": {"common_name": "evil.com"}},
        ["subject.common_name"],
        id="fail/subject-outside-allowed",
    ),
    pytest.param(
        {"subject": {"organization": {"allowed": ["Acme*"], "denied": ["Acme Evil*"]}}},
        {"subject": {"organization": "Acme Evil Inc"}},
        ["subject.organization"],
        id="fail/subject-denied-beats-allowed",
    ),
    pytest.param(
        {"subject": {"organization": {"required": True}}},
        {"subject": {"common_name": "api.example.com"}},
        ["subject.organization"],
        id="fail/subject-required-missing",
    ),
    pytest.param(
        {"subject": {"organization": {"required": True, "allowed": ["Acme*"]}}},
        {"subject": {"organization": "Acme Inc"}},
        [],
        id="ok/subject-required-present",
    ),
    pytest.param(
        {"subject": {"organizational_unit": {"allowed": []}}},
        {"subject": {"organizational_unit": "Ops"}},
        ["subject.organizational_unit"],
        id="fail/subject-empty-allowed-list-forbids-attribute",
    ),
    pytest.param(
        {"subject": {"organizational_unit": {"allowed": []}}},
        {"subject": {}},
        [],
        id="ok/subject-forbidden-attribute-absent",
    ),
    pytest.param(
        {"subject": {"country": {"allowed": ["de", "FR"]}}},
        {"subject": {"country": "DE"}},
        [],
        id="ok/subject-country-case-insensitive",
    ),
    # --- algorithms ------------------------------------------------------------------------------
    pytest.param(
        {"key_algorithms": ["RSA_2048", "EC_P256"]},
        {"key_algorithm": "EC_P384"},
        ["key_algorithm"],
        id="fail/key-algorithm-not-allowed",
    ),
    pytest.param(
        {"signature_hashes": ["SHA384"]},
        {"signature_hash": "SHA256"},
        ["signature_hash"],
        id="fail/signature-hash-not-allowed",
    ),
    pytest.param(
        {"signature_hashes": ["SHA384"]},
        {"signature_hash": None},
        [],
        id="ok/signature-hash-none-left-to-builder",
    ),
    pytest.param(
        {"key_algorithms": ["ED25519"], "signature_hashes": ["SHA512"]},
        {"key_algorithm": "ED25519", "signature_hash": None},
        [],
        id="ok/ed25519-without-hash",
    ),
    # --- usages ----------------------------------------------------------------------------------
    pytest.param(
        {"key_usages": {"allowed": ["digital_signature", "key_encipherment"]}},
        {"key_usages": ["digital_signature", "key_cert_sign", "crl_sign"]},
        ["key_usages", "key_usages"],
        id="fail/key-usage-not-allowed",
    ),
    pytest.param(
        {"key_usages": {"required": ["digital_signature", "key_encipherment"]}},
        {"key_usages": ["digital_signature"]},
        ["key_usages"],
        id="fail/key-usage-required-missing",
    ),
    pytest.param(
        {"key_usages": {"allowed": [], "required": []}},
        {"key_usages": []},
        [],
        id="ok/key-usage-none-allowed-none-present",
    ),
    pytest.param(
        {"extended_key_usages": {"allowed": ["server_auth"]}},
        {"extended_key_usages": ["server_auth", "code_signing"]},
        ["extended_key_usages"],
        id="fail/eku-not-allowed",
    ),
    pytest.param(
        {"extended_key_usages": {"required": ["client_auth"]}},
        {"extended_key_usages": ["server_auth"]},
        ["extended_key_usages"],
        id="fail/eku-required-missing",
    ),
    pytest.param(
        {"extended_key_usages": {"allowed": ["server_auth", "client_auth"], "required": []}},
        {"extended_key_usages": ["client_auth", "server_auth"]},
        [],
        id="ok/eku-all-allowed",
    ),
    # --- validity and CA -------------------------------------------------------------------------
    pytest.param(
        {"max_validity": "90d"},
        {"not_after": NOW + timedelta(days=90)},
        [],
        id="ok/validity-exactly-max",
    ),
    pytest.param(
        {"max_validity": "90d"},
        {"not_after": NOW + timedelta(days=90, seconds=1)},
        ["not_after"],
        id="fail/validity-over-max",
    ),
    pytest.param({}, {"is_ca": True}, ["is_ca"], id="fail/ca-not-allowed-by-default"),
    pytest.param({"allow_ca": True}, {"is_ca": True}, [], id="ok/ca-allowed"),
    # --- many at once ----------------------------------------------------------------------------
    pytest.param(
        {
            "subject": {"common_name": {"allowed": ["*.example.com"]}},
            "sans": {"dns": WEB_DNS, "ip": {"allowed": ["10.0.0.0/8"]}},
            "key_algorithms": ["EC_P256"],
            "signature_hashes": ["SHA256"],
            "key_usages": {"allowed": ["digital_signature"]},
            "extended_key_usages": {"required": ["server_auth"]},
            "max_validity": "30d",
        },
        {
            "subject": {"common_name": "evil.com"},
            "sans": [*dns("api.example.com", "evil.com"), *ip("192.168.0.1")],
            "key_algorithm": "RSA_2048",
            "signature_hash": "SHA512",
            "key_usages": ["key_encipherment"],
            "extended_key_usages": [],
            "is_ca": True,
        },
        [
            "subject.common_name",  # by the subject rule (not again by the DNS rule)
            "sans.1.value",
            "sans.2.value",
            "key_algorithm",
            "signature_hash",
            "key_usages",
            "extended_key_usages",
            "not_after",
            "is_ca",
        ],
        id="fail/every-violation-reported-together",
    ),
]


@pytest.mark.parametrize(("policy", "overrides", "fields"), CASES)
def test_evaluate(policy: dict[str, Any], overrides: dict[str, Any], fields: list[str]) -> None:
    violations = evaluate(PolicyDocument.model_validate(policy), template(**overrides))

    assert [v.field for v in violations] == fields, violations
    assert all(v.message for v in violations)


MESSAGES = [
    pytest.param(
        {"sans": {"dns": WEB_DNS}},
        {"sans": dns("evil.com")},
        'DNS name "evil.com" is not allowed by policy "web" (allowed: *.example.com, example.com)',
        id="dns-not-allowed",
    ),
    pytest.param(
        {"sans": {"dns": {**WEB_DNS, "denied": ["admin.example.com"]}}},
        {"sans": dns("*.example.com")},
        'DNS name "*.example.com" is denied by policy "web" (denied: admin.example.com)',
        id="dns-wildcard-covers-denied",
    ),
    pytest.param(
        {"sans": {"dns": {"allow_wildcard": False}}},
        {"sans": dns("*.example.com")},
        'DNS name "*.example.com" is a wildcard, which policy "web" does not allow',
        id="dns-wildcard-refused",
    ),
    pytest.param(
        {"sans": {"dns": {"allowed": []}}},
        {"sans": dns("api.example.com")},
        'DNS name "api.example.com" is not allowed by policy "web" (allowed: nothing)',
        id="dns-nothing-allowed",
    ),
    pytest.param(
        {"sans": {"ip": {"allowed": ["10.0.0.0/8", "2001:db8::1"]}}},
        {"sans": ip("192.168.0.1")},
        'IP address "192.168.0.1" is not allowed by policy "web"'
        " (allowed: 10.0.0.0/8, 2001:db8::1/128)",
        id="ip-not-allowed",
    ),
    pytest.param(
        {"sans": {"email": {"required": True}}},
        {},
        'at least one email address SAN is required by policy "web"; none was requested',
        id="san-required",
    ),
    pytest.param(
        {"subject": {"organization": {"required": True}}},
        {},
        'subject organization is required by policy "web" but is missing',
        id="subject-required",
    ),
    pytest.param(
        {"subject": {"common_name": {"denied": ["*.evil.com"]}}},
        {"subject": {"common_name": "www.evil.com"}},
        'subject common name "www.evil.com" is denied by policy "web" (denied: *.evil.com)',
        id="subject-denied",
    ),
    pytest.param(
        {"key_algorithms": ["EC_P256", "EC_P384"]},
        {"key_algorithm": "RSA_2048"},
        'key algorithm RSA_2048 is not allowed by policy "web" (allowed: EC_P256, EC_P384)',
        id="key-algorithm",
    ),
    pytest.param(
        {"extended_key_usages": {"required": ["client_auth"]}},
        {},
        'extended key usage client_auth is required by policy "web" but is missing',
        id="eku-required",
    ),
    pytest.param(
        {"max_validity": "90d"},
        {"not_after": NOW + timedelta(days=100)},
        'validity of 100d exceeds the maximum of 90d allowed by policy "web"',
        id="validity",
    ),
    pytest.param(
        {"max_validity": "90d"},
        {"not_after": NOW + timedelta(days=90, microseconds=1)},
        'validity of 90d1s exceeds the maximum of 90d allowed by policy "web"',
        id="validity-fraction-rounded-up",
    ),
    pytest.param(
        {},
        {"is_ca": True},
        'CA certificates are not allowed by policy "web"',
        id="ca",
    ),
]


@pytest.mark.parametrize(("policy", "overrides", "message"), MESSAGES)
def test_messages_name_value_policy_and_rule(
    policy: dict[str, Any], overrides: dict[str, Any], message: str
) -> None:
    violations = evaluate(
        PolicyDocument.model_validate(policy), template(**overrides), policy_name="web"
    )

    assert [v.message for v in violations] == [message]


def test_messages_without_a_policy_name_say_the_policy() -> None:
    violations = evaluate(PolicyDocument(), template(is_ca=True))

    assert violations == [Violation("is_ca", "CA certificates are not allowed by the policy")]


def test_enforce_raises_one_error_with_every_violation() -> None:
    policy = PolicyDocument.model_validate(
        {"sans": {"dns": WEB_DNS}, "key_algorithms": ["RSA_2048"]}
    )

    with pytest.raises(PolicyViolation) as caught:
        enforce(policy, template(sans=dns("evil.com")), "web")

    error = caught.value
    assert status_for(error) == 422
    assert error.code == "policy-violation"
    assert error.detail.startswith('2 violations of policy "web": DNS name "evil.com"')
    assert error.errors == [
        FieldError(
            "sans.0.value",
            'DNS name "evil.com" is not allowed by policy "web"'
            " (allowed: *.example.com, example.com)",
        ),
        FieldError(
            "key_algorithm",
            'key algorithm EC_P256 is not allowed by policy "web" (allowed: RSA_2048)',
        ),
    ]


def test_enforce_returns_when_compliant() -> None:
    enforce(PolicyDocument.model_validate({"sans": {"dns": WEB_DNS}}), template(), "web")


def test_enforce_detail_is_singular_for_one_violation() -> None:
    with pytest.raises(PolicyViolation, match=r'^1 violation of policy "web": CA certificates'):
        enforce(PolicyDocument(), template(is_ca=True), "web")


def test_evaluate_never_raises_on_a_template_built_without_validation() -> None:
    # model_copy does not validate, so these SANs never went through San's syntax checks.
    broken = template().model_copy(
        update={
            "sans": [
                San.model_construct(type=SanType.IP, value="not-an-ip"),
                San.model_construct(type=SanType.EMAIL, value="no-at-sign"),
                San.model_construct(type=SanType.URI, value="no scheme"),
            ]
        }
    )
    policy = PolicyDocument.model_validate(
        {
            "sans": {
                "ip": {"allowed": ["10.0.0.0/8"], "denied": ["10.0.0.0/24"]},
                "email": {"allowed": ["*@example.com"]},
                "uri": {"allowed": ["spiffe://example.org/*"]},
            }
        }
    )

    violations = evaluate(policy, broken)

    assert [v.field for v in violations] == ["sans.0.value", "sans.1.value", "sans.2.value"]


INVALID = [
    pytest.param({"subject": {"cn": {}}}, "unknown subject attribute cn", id="unknown-subject-key"),
    pytest.param({"colour": "blue"}, "colour", id="unknown-top-level-field"),
    pytest.param({"sans": {"dns": {"alowed": []}}}, "alowed", id="unknown-rule-field"),
    pytest.param({"sans": {"x400": {}}}, "x400", id="unknown-san-type"),
    pytest.param(
        {"sans": {"ip": {"allowed": ["10.0.0.0/33"]}}}, "invalid IP network", id="bad-cidr-prefix"
    ),
    pytest.param(
        {"sans": {"ip": {"denied": ["10.0.0.1/8"]}}}, "has host bits set", id="bad-cidr-host-bits"
    ),
    pytest.param({"sans": {"ip": {"allowed": ["example.com"]}}}, "invalid IP", id="bad-ip"),
    pytest.param(
        {"sans": {"dns": {"allowed": ["api-*.example.com"]}}},
        "must be a whole label",
        id="bad-dns-partial-label-glob",
    ),
    pytest.param(
        {"sans": {"dns": {"allowed": ["a.**.example.com"]}}},
        "may only be the first label",
        id="bad-dns-deep-not-first",
    ),
    pytest.param(
        {"sans": {"dns": {"allowed": ["**"]}}}, "followed by a domain", id="bad-dns-deep-alone"
    ),
    pytest.param(
        {"sans": {"dns": {"denied": ["exa_mple.com"]}}}, "not a DNS label", id="bad-dns-label"
    ),
    pytest.param(
        {"sans": {"dns": {"allowed": ["a..com"]}}}, "not a DNS label", id="bad-dns-empty-label"
    ),
    pytest.param(
        {"sans": {"email": {"allowed": ["example.com"]}}}, "needs an @", id="bad-email-glob"
    ),
    pytest.param(
        {"sans": {"uri": {"allowed": ["example.org/*"]}}}, "needs a scheme", id="bad-uri-glob"
    ),
    pytest.param({"subject": {"organization": {"allowed": [" "]}}}, "empty", id="empty-pattern"),
    pytest.param(
        {"sans": {"dns": {"required": True, "allowed": []}}},
        "nothing could satisfy",
        id="required-san-nothing-allowed",
    ),
    pytest.param(
        {"key_usages": {"allowed": ["digital_signature"], "required": ["key_encipherment"]}},
        "required usages key_encipherment are not in `allowed`",
        id="required-key-usage-not-allowed",
    ),
    pytest.param(
        {"extended_key_usages": {"allowed": [], "required": ["server_auth"]}},
        "required usages server_auth",
        id="required-eku-not-allowed",
    ),
    pytest.param({"key_usages": {"allowed": ["server_auth"]}}, "key_usages", id="eku-as-key-usage"),
    pytest.param({"key_algorithms": []}, "at least 1", id="no-key-algorithm"),
    pytest.param({"key_algorithms": ["DSA_1024"]}, "DSA_1024", id="unknown-key-algorithm"),
    pytest.param({"max_validity": "3 months"}, "invalid duration", id="bad-duration"),
]


@pytest.mark.parametrize(("document", "fragment"), INVALID)
def test_invalid_policy_is_refused_with_a_clear_error(
    document: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        PolicyDocument.model_validate(document)

    assert fragment in str(caught.value)


def test_policy_round_trips_through_json_with_normalised_patterns() -> None:
    policy = PolicyDocument.model_validate(
        {
            "sans": {
                "dns": {"allowed": ["*.Example.COM."], "allow_wildcard": False},
                "ip": {"allowed": ["10.0.0.1", "2001:DB8::/32"]},
            },
            "max_validity": "90d",
        }
    )

    assert policy.sans.dns is not None
    assert policy.sans.dns.allowed == ["*.example.com"]
    assert policy.sans.ip is not None
    assert policy.sans.ip.allowed == ["10.0.0.1/32", "2001:db8::/32"]
    assert policy.max_validity == timedelta(days=90)
    dumped = policy.model_dump(mode="json")
    assert dumped["max_validity"] == "90d"
    assert PolicyDocument.model_validate_json(policy.model_dump_json()) == policy


def test_defaults_allow_every_algorithm_but_no_ca() -> None:
    policy = PolicyDocument()

    assert len(policy.key_algorithms) == 7
    assert len(policy.signature_hashes) == 3
    assert policy.allow_ca is False
    assert policy.key_usages.allowed is None
    assert policy.max_validity is None


def test_json_schema_is_generated() -> None:
    schema = PolicyDocument.model_json_schema()

    assert schema["additionalProperties"] is False
    assert {"subject", "sans", "key_usages", "max_validity", "allow_ca"} <= set(
        schema["properties"]
    )

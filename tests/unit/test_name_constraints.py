"""Name constraints of CAs: the model's normalisation, the child-inside-parent rule and the
matching of a certificate's names, as tables (`certforge.common.name_constraint*`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from certforge.common.crypto.certificates import build_self_signed_ca
from certforge.common.domain import KeyAlgorithm, SubjectFields
from certforge.common.errors import PolicyViolation
from certforge.common.name_constraint_rules import (
    enforce_policy_and_names,
    name_constraint_errors,
    name_violations,
)
from certforge.common.name_constraints import NameConstraints, chain_constraints
from certforge.common.policy import PolicyDocument
from certforge.common.template import CertificateTemplate, San

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def nc(permitted: dict[str, Any] | None = None, excluded: dict[str, Any] | None = None) -> Any:
    return NameConstraints.model_validate(
        {"permitted": permitted or {}, "excluded": excluded or {}}
    )


# --- the model: one spelling per subtree -------------------------------------------------------


@pytest.mark.parametrize(
    ("name_type", "given", "stored"),
    [
        pytest.param("dns", "Shop.Internal.", "shop.internal", id="ok/dns-case-and-dot"),
        pytest.param("dns", "faß.example", "xn--fa-hia.example", id="ok/dns-idna-2008"),
        pytest.param("ip", "10.20.0.0/16", "10.20.0.0/16", id="ok/ipv4-network"),
        pytest.param("ip", "fd00::/8", "fd00::/8", id="ok/ipv6-network"),
        pytest.param("email", "Shop.Internal", "shop.internal", id="ok/email-host"),
        pytest.param("email", ".shop.internal", ".shop.internal", id="ok/email-domain"),
        pytest.param("email", "Ops@Shop.Internal", "Ops@shop.internal", id="ok/email-mailbox"),
        pytest.param("uri", ".Shop.Internal", ".shop.internal", id="ok/uri-domain"),
        pytest.param("directory_names", "O=Shop,C=DE", "O=Shop,C=DE", id="ok/dn-rfc4514"),
    ],
)
def test_subtrees_are_normalised(name_type: str, given: str, stored: str) -> None:
    constraints = nc(permitted={name_type: [given]})
    assert getattr(constraints.permitted, name_type) == [stored]
    assert constraints.critical is True


@pytest.mark.parametrize(
    ("name_type", "given"),
    [
        pytest.param("dns", ".shop.internal", id="fail/dns-leading-dot"),
        pytest.param("dns", "*.shop.internal", id="fail/dns-wildcard"),
        pytest.param("dns", "☃.example", id="fail/dns-not-idna"),
        pytest.param("dns", "bad_label.example", id="fail/dns-syntax"),
        pytest.param("dns", "internal", id="fail/dns-one-label"),
        pytest.param("ip", "10.20.0.1/16", id="fail/ip-host-bits"),
        pytest.param("ip", "10.20.0.0/33", id="fail/ip-prefix"),
        pytest.param("ip", "shop.internal", id="fail/ip-not-a-network"),
        pytest.param("email", "a b@shop.internal", id="fail/email-space"),
        pytest.param("uri", "https://shop.internal/", id="fail/uri-with-scheme"),
        pytest.param("directory_names", "not a dn", id="fail/dn-syntax"),
    ],
)
def test_malformed_subtrees_name_their_field(name_type: str, given: str) -> None:
    good = {"ip": "10.0.0.0/8", "directory_names": "O=Shop"}.get(name_type, "ok.example")
    with pytest.raises(ValidationError) as caught:
        nc(permitted={name_type: [good, given]})
    assert caught.value.errors()[0]["loc"] == ("permitted", name_type, 1)


def test_extension_round_trip() -> None:
    """What a certificate carries reads back as the same constraints (import relies on it)."""
    constraints = nc(
        permitted={
            "dns": ["shop.internal"],
            "ip": ["10.20.0.0/16", "fd00::/8"],
            "email": [".shop.internal", "ops@shop.internal"],
            "uri": ["shop.internal"],
            "directory_names": ["C=DE,O=Shop"],
        },
        excluded={"dns": ["admin.shop.internal"]},
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build_self_signed_ca(
        SubjectFields(common_name="Shop Root", organization="Shop", country="DE"),
        key,
        NOW,
        NOW + timedelta(days=365),
        None,
        None,
        name_constraints=constraints,
    )
    ext = cert.extensions.get_extension_for_class(x509.NameConstraints)
    assert ext.critical
    assert NameConstraints.of_certificate(cert, field="certificate") == constraints
    assert chain_constraints(constraints.model_dump(mode="json"), []) == (constraints,)


# --- a child's constraints inside its parent's -------------------------------------------------

PARENT = nc(permitted={"dns": ["shop.internal"], "ip": ["10.0.0.0/8"]},
            excluded={"dns": ["admin.shop.internal"]})  # fmt: skip


@pytest.mark.parametrize(
    ("child", "fields"),
    [
        pytest.param(nc(permitted={"dns": ["api.shop.internal"]}), [], id="ok/narrower"),
        pytest.param(nc(permitted={"dns": ["shop.internal"]}), [], id="ok/same"),
        pytest.param(nc(excluded={"dns": ["x.shop.internal"]}), [], id="ok/excluded-only"),
        pytest.param(nc(permitted={"ip": ["10.1.0.0/16"]}), [], id="ok/ip-inside"),
        pytest.param(nc(permitted={"email": [".shop.internal"]}), [], id="ok/type-left-alone"),
        pytest.param(None, [], id="ok/none-inherits"),
        pytest.param(
            nc(permitted={"dns": ["example.com"]}),
            ["name_constraints.permitted.dns.0"],
            id="fail/outside-parent",
        ),
        pytest.param(
            nc(permitted={"ip": ["10.0.0.0/7"]}),
            ["name_constraints.permitted.ip.0"],
            id="fail/wider-than-parent",
        ),
        pytest.param(
            nc(permitted={"dns": ["x.admin.shop.internal"]}),
            ["name_constraints.permitted.dns.0"],
            id="fail/inside-parent-excluded",
        ),
        pytest.param(
            nc(permitted={"ip": ["10.0.0.0/8", "11.0.0.0/8"]}),
            ["name_constraints.permitted.ip.1"],
            id="fail/ip-outside",
        ),
        pytest.param(
            nc(permitted={"ip": ["fd00::/8"]}),
            ["name_constraints.permitted.ip.0"],
            id="fail/ip-other-version",
        ),
    ],
)
def test_child_within_parent(child: NameConstraints | None, fields: list[str]) -> None:
    errors = name_constraint_errors(child, [PARENT], parent_name="root")
    assert [e.field for e in errors] == fields
    for error in errors:
        assert "'" in error.message  # names the subtree


@pytest.mark.parametrize(
    ("constraints", "fields"),
    [
        pytest.param(
            nc(permitted={"dns": ["shop.internal", "api.shop.internal"]}),
            ["name_constraints.permitted.dns.1"],
            id="fail/nested-in-own-list",
        ),
        pytest.param(
            nc(permitted={"dns": ["shop.internal", "shop.internal"]}),
            ["name_constraints.permitted.dns.1"],
            id="fail/duplicate",
        ),
        pytest.param(
            nc(permitted={"dns": ["api.shop.internal"]}, excluded={"dns": ["shop.internal"]}),
            ["name_constraints.permitted.dns.0"],
            id="fail/permitted-inside-excluded",
        ),
        pytest.param(
            nc(permitted={"email": [".shop.internal", "a@x.shop.internal"]}),
            ["name_constraints.permitted.email.1"],
            id="fail/mailbox-inside-domain",
        ),
        pytest.param(nc(), ["name_constraints"], id="fail/empty"),
        pytest.param(
            nc(permitted={"email": ["shop.internal", ".shop.internal"]}),
            [],
            id="ok/host-and-below-are-disjoint",
        ),
    ],
)
def test_overlapping_subtrees(constraints: NameConstraints, fields: list[str]) -> None:
    assert [e.field for e in name_constraint_errors(constraints, [], parent_name=None)] == fields


# --- a certificate's names against the chain --------------------------------------------------

SHOP = nc(
    permitted={
        "dns": ["shop.internal"],
        "ip": ["10.20.0.0/16"],
        "email": [".shop.internal"],
        "uri": ["api.shop.internal"],
    },
    excluded={"dns": ["admin.shop.internal"]},
)
ABOVE = nc(
    permitted={"dns": ["shop.internal", "corp.internal"]},
    excluded={"dns": ["legacy.shop.internal"]},
)


def template(*sans: tuple[str, str], cn: str | None = None, **subject: str) -> CertificateTemplate:
    return CertificateTemplate(
        subject=SubjectFields(common_name=cn, **subject),
        sans=[San(type=t, value=v) for t, v in sans],  # type: ignore[arg-type]
        key_algorithm=KeyAlgorithm.EC_P256,
        not_before=NOW,
        not_after=NOW + timedelta(days=1),
    )


@pytest.mark.parametrize(
    ("tpl", "fields"),
    [
        pytest.param(template(("dns", "api.shop.internal")), [], id="ok/dns-inside"),
        pytest.param(template(("dns", "shop.internal")), [], id="ok/dns-apex"),
        pytest.param(template(("dns", "*.api.shop.internal")), [], id="ok/wildcard-inside"),
        pytest.param(template(("dns", "API.Shop.Internal.")), [], id="ok/dns-other-spelling"),
        pytest.param(template(("ip", "10.20.3.4")), [], id="ok/ip-inside"),
        pytest.param(
            template(("ip", "::ffff:10.20.3.4")), ["sans.0.value"], id="fail/ipv4-mapped-not-v4"
        ),
        pytest.param(template(("email", "ops@mail.shop.internal")), [], id="ok/email-below"),
        pytest.param(template(("uri", "https://api.shop.internal/x")), [], id="ok/uri-host"),
        pytest.param(template(cn="Shop service"), [], id="ok/cn-not-a-host-name"),
        pytest.param(template(("dns", "evil.example.com")), ["sans.0.value"], id="fail/outside"),
        pytest.param(
            template(("dns", "api.shop.internal"), ("dns", "shop.internal.evil.com")),
            ["sans.1.value"],
            id="fail/suffix-trick",
        ),
        pytest.param(template(("dns", "fakeshop.internal")), ["sans.0.value"], id="fail/no-dot"),
        pytest.param(template(("dns", "admin.shop.internal")), ["sans.0.value"], id="fail/excl"),
        pytest.param(
            template(("dns", "x.legacy.shop.internal")),
            ["sans.0.value"],
            id="fail/excluded-above",
        ),
        pytest.param(
            template(("dns", "*.shop.internal")),
            ["sans.0.value"],
            id="fail/wildcard-covers-excluded",
        ),
        pytest.param(template(("ip", "10.21.0.1")), ["sans.0.value"], id="fail/ip-outside"),
        pytest.param(template(("ip", "fd00::1")), ["sans.0.value"], id="fail/ipv6-outside"),
        pytest.param(
            template(("email", "ops@shop.internal")), ["sans.0.value"], id="fail/email-at-host"
        ),
        pytest.param(
            template(("uri", "https://www.shop.internal/")), ["sans.0.value"], id="fail/uri"
        ),
        pytest.param(template(("uri", "urn:uuid:1")), ["sans.0.value"], id="fail/uri-no-host"),
        pytest.param(
            template(("dns", "api.shop.internal"), cn="www.example.com"),
            ["subject.common_name"],
            id="fail/cn-host-name-outside",
        ),
        pytest.param(
            template(cn="Admin.Shop.Internal"), ["subject.common_name"], id="fail/cn-excluded"
        ),
    ],
)
def test_names_against_the_chain(tpl: CertificateTemplate, fields: list[str]) -> None:
    assert [v.field for v in name_violations(tpl, [SHOP, ABOVE])] == fields


@pytest.mark.parametrize(
    ("excluded", "refused"),
    [
        pytest.param("admin.shop.internal", True, id="fail/excludes-a-name-it-covers"),
        pytest.param("shop.internal", True, id="fail/excludes-all-it-covers"),
        pytest.param("x.admin.shop.internal", False, id="ok/exclusion-below-its-reach"),
        pytest.param("other.internal", False, id="ok/exclusion-elsewhere"),
    ],
)
def test_wildcards_against_exclusions(excluded: str, refused: bool) -> None:
    """`*.shop.internal` covers one label below shop.internal: an exclusion that takes any of
    those names refuses it, as a policy's denied pattern does."""
    chain = [nc(excluded={"dns": [excluded]})]
    assert bool(name_violations(template(("dns", "*.shop.internal")), chain)) is refused


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        pytest.param("10.20.9.1", True, id="fail/v4-excluded"),
        pytest.param("::ffff:10.20.9.1", True, id="fail/v4-mapped-excluded"),
        pytest.param("::ffff:10.20.8.1", False, id="ok/v4-mapped-elsewhere"),
    ],
)
def test_ip_exclusions_see_through_ipv4_mapping(address: str, refused: bool) -> None:
    chain = [nc(excluded={"ip": ["10.20.9.0/24"]})]
    assert bool(name_violations(template(("ip", address)), chain)) is refused


@pytest.mark.parametrize(
    ("subject", "fields"),
    [
        pytest.param({"organization": "Shop", "country": "DE"}, [], id="ok/dn-inside"),
        pytest.param({"organization": "Other", "country": "DE"}, ["subject"], id="fail/dn"),
        pytest.param({"country": "DE"}, ["subject"], id="fail/dn-shorter"),
    ],
)
def test_directory_names(subject: dict[str, str], fields: list[str]) -> None:
    dn = nc(permitted={"directory_names": ["O=Shop,C=DE"]})
    tpl = template(("dns", "api.shop.internal"), cn="Service", **subject)
    assert [v.field for v in name_violations(tpl, [dn])] == fields


def test_no_constraints_refuse_nothing_and_enforce_policy_and_names_raises() -> None:
    assert name_violations(template(("dns", "anything.example")), []) == []
    with pytest.raises(PolicyViolation) as caught:
        enforce_policy_and_names(
            PolicyDocument(), template(("dns", "evil.example.com")), "web", "shop-issuing", [SHOP]
        )
    assert "shop-issuing" in caught.value.detail
    assert [e.field for e in caught.value.errors] == ["sans.0.value"]

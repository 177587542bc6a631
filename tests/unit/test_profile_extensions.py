"""The extensions a profile may declare: what is accepted, what is refused and on which field."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import ValidationError

from certforge.common.errors import Unprocessable
from certforge.common.profile_extensions import (
    CustomValue,
    ProfileExtensions,
    SkiMethod,
    check_csr_extensions,
    der_valid,
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def custom(oid: str = "1.3.6.1.4.1.55555.2.1", **value: Any) -> dict[str, Any]:
    return {"oid": oid, "value": value or {"utf8_string": "x"}}


OK = [
    pytest.param({}, id="ok/empty-is-todays-behaviour"),
    pytest.param(
        {"certificate_policies": [{"oid": "2.23.140.1.2.1"}], "must_staple": True},
        id="ok/policy-and-must-staple",
    ),
    pytest.param(
        {
            "certificate_policies": [
                {
                    "oid": "1.3.6.1.4.1.55555.1.1",
                    "cps_uri": "https://pki.example.com/cps",
                    "user_notice": "Internal use only",
                }
            ]
        },
        id="ok/policy-with-qualifiers",
    ),
    pytest.param({"custom": [custom(der=b64(b"\x30\x03\x02\x01\x05"))]}, id="ok/der-sequence"),
    pytest.param({"custom": [custom(octet_string=b64(b"\x00\xff"))]}, id="ok/octet-string"),
    pytest.param({"custom": [custom(boolean=False)]}, id="ok/boolean"),
    pytest.param({"custom": [custom(integer=-129)]}, id="ok/integer"),
    pytest.param(
        {"custom": [custom("1.2.3.4"), custom("1.2.3.5")], "aia": False},
        id="ok/two-custom-no-aia",
    ),
    pytest.param(
        {"crl_distribution_points": False, "subject_key_identifier": "sha256"},
        id="ok/no-cdp-sha256-ski",
    ),
]


@pytest.mark.parametrize("body", OK)
def test_accepted(body: dict[str, Any]) -> None:
    parsed = ProfileExtensions.model_validate(body)
    assert ProfileExtensions.model_validate(parsed.model_dump(mode="json")) == parsed


def test_defaults_are_todays_behaviour() -> None:
    default = ProfileExtensions()
    assert (default.aia, default.crl_distribution_points) == (True, True)
    assert default.subject_key_identifier is SkiMethod.SHA1
    assert default.certificate_policies == []
    assert default.custom == []
    assert default.must_staple is False


FAIL = [
    pytest.param({"custom": [custom("1.2.3.")]}, "custom.0.oid", "not an OID", id="fail/oid-dot"),
    pytest.param({"custom": [custom("3.1")]}, "custom.0.oid", "not an OID", id="fail/oid-arc-3"),
    pytest.param({"custom": [custom("1.40.1")]}, "custom.0.oid", "39", id="fail/oid-second-arc"),
    pytest.param({"custom": [custom("1.02")]}, "custom.0.oid", "not an OID", id="fail/oid-zero"),
    pytest.param(
        {"certificate_policies": [{"oid": "policy"}]},
        "certificate_policies.0.oid",
        "not an OID",
        id="fail/policy-oid",
    ),
    pytest.param(
        {"custom": [custom(der="!!")]}, "custom.0.value.der", "base64", id="fail/der-not-base64"
    ),
    pytest.param(
        {"custom": [custom(der=b64(b"\x30\x05\x02\x01"))]},
        "custom.0.value.der",
        "DER",
        id="fail/der-truncated",
    ),
    pytest.param(
        {"custom": [custom(der=b64(b"\x02\x01\x05\x00"))]},
        "custom.0.value.der",
        "DER",
        id="fail/der-trailing-bytes",
    ),
    pytest.param(
        {"custom": [custom(utf8_string="a", boolean=True)]},
        "custom.0.value",
        "exactly one",
        id="fail/two-values",
    ),
    pytest.param(
        {"custom": [{"oid": "1.2.3", "value": {}}]}, "custom.0.value", "exactly one", id="fail/none"
    ),
    pytest.param(
        {"custom": [custom("1.2.3"), custom("1.2.3")]},
        "custom.1.oid",
        "listed twice",
        id="fail/duplicate-custom",
    ),
    pytest.param(
        {"certificate_policies": [{"oid": "1.2.3"}, {"oid": "1.2.3"}]},
        "certificate_policies.1.oid",
        "listed twice",
        id="fail/duplicate-policy",
    ),
    *[
        pytest.param({"custom": [custom(oid)]}, "custom.0.oid", name, id=f"fail/known-{name}")
        for oid, name in [
            ("2.5.29.19", "basicConstraints"),
            ("2.5.29.15", "keyUsage"),
            ("2.5.29.37", "extendedKeyUsage"),
            ("2.5.29.17", "subjectAltName"),
            ("2.5.29.14", "subjectKeyIdentifier"),
            ("2.5.29.35", "authorityKeyIdentifier"),
            ("1.3.6.1.5.5.7.1.1", "authorityInfoAccess"),
            ("2.5.29.31", "cRLDistributionPoints"),
            ("2.5.29.30", "nameConstraints"),
            ("2.5.29.32", "certificatePolicies"),
            ("1.3.6.1.5.5.7.1.24", "TLSFeature"),
        ]
    ],
    pytest.param(
        {"certificate_policies": [{"oid": "1.2.3", "cps_uri": "ftp://x/cps"}]},
        "certificate_policies.0.cps_uri",
        "http(s)",
        id="fail/cps-not-http",
    ),
    pytest.param(
        {"certificate_policies": [{"oid": "1.2.3", "user_notice": "x" * 201}]},
        "certificate_policies.0.user_notice",
        "200",
        id="fail/notice-too-long",
    ),
    pytest.param({"subject_key_identifier": "md5"}, "subject_key_identifier", "", id="fail/ski"),
    pytest.param({"critical_everything": True}, "critical_everything", "", id="fail/unknown"),
]


@pytest.mark.parametrize(("body", "field", "message"), FAIL)
def test_refused_on_the_field(body: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ProfileExtensions.model_validate(body)
    errors = {".".join(str(p) for p in e["loc"]): e["msg"] for e in caught.value.errors()}
    assert field in errors, errors
    assert message in errors[field]


VALUES = [
    pytest.param({"utf8_string": "shop"}, b"\x0c\x04shop", id="ok/utf8"),
    pytest.param({"utf8_string": "é"}, b"\x0c\x02\xc3\xa9", id="ok/utf8-non-ascii"),
    pytest.param({"octet_string": b64(b"\x01\x02")}, b"\x04\x02\x01\x02", id="ok/octets"),
    pytest.param({"octet_string": b64(b"a" * 200)}, b"\x04\x81\xc8" + b"a" * 200, id="ok/long"),
    pytest.param({"boolean": True}, b"\x01\x01\xff", id="ok/true"),
    pytest.param({"boolean": False}, b"\x01\x01\x00", id="ok/false"),
    pytest.param({"integer": 0}, b"\x02\x01\x00", id="ok/zero"),
    pytest.param({"integer": 127}, b"\x02\x01\x7f", id="ok/127"),
    pytest.param({"integer": 128}, b"\x02\x02\x00\x80", id="ok/128-needs-sign-octet"),
    pytest.param({"integer": -128}, b"\x02\x01\x80", id="ok/minus-128"),
    pytest.param({"integer": -129}, b"\x02\x02\xff\x7f", id="ok/minus-129"),
    pytest.param({"der": b64(b"\x05\x00")}, b"\x05\x00", id="ok/der-null"),
]


@pytest.mark.parametrize(("value", "der"), VALUES)
def test_values_encode_as_der(value: dict[str, Any], der: bytes) -> None:
    encoded = CustomValue.model_validate(value).encode()
    assert encoded == der
    assert der_valid(encoded)


DER = [
    pytest.param(b"\x30\x00", True, id="ok/empty-sequence"),
    pytest.param(b"\x30\x06\x02\x01\x01\x04\x01\x00", True, id="ok/nested"),
    pytest.param(b"\x9f\x1f\x01\x00", True, id="ok/high-tag-number"),
    pytest.param(b"\x04\x81\x80" + b"a" * 128, True, id="ok/long-form-length"),
    pytest.param(b"", False, id="fail/empty"),
    pytest.param(b"\x04\x80\x00\x00", False, id="fail/indefinite-length"),
    pytest.param(b"\x04\x81\x01a", False, id="fail/non-minimal-length"),
    pytest.param(b"\x04\x82\x00\x81" + b"a" * 129, False, id="fail/leading-zero-length"),
    pytest.param(b"\x30\x03\x02\x05\x00", False, id="fail/inner-overruns"),
    pytest.param(b"\x04\x01\x00\x04\x01\x00", False, id="fail/two-elements"),
    pytest.param(b"\x1f\x80\x01\x00", False, id="fail/non-minimal-tag"),
]


@pytest.mark.parametrize(("data", "valid"), DER)
def test_der_structure(data: bytes, valid: bool) -> None:
    assert der_valid(data) is valid


@pytest.mark.parametrize(
    ("critical", "profile", "refused"),
    [
        pytest.param([], {}, False, id="ok/nothing-critical"),
        pytest.param(["2.5.29.19", "2.5.29.15"], {}, False, id="ok/ours-to-decide"),
        pytest.param(["1.3.6.1.5.5.7.1.24"], {"must_staple": True}, False, id="ok/profile-adds"),
        pytest.param(
            ["1.2.3.4"],
            {"custom": [{"oid": "1.2.3.4", "critical": False, "value": {"boolean": True}}]},
            False,
            id="ok/profile-custom-oid",
        ),
        pytest.param(["1.3.6.1.5.5.7.1.24"], {}, True, id="fail/must-staple-not-added"),
        pytest.param(["1.2.3.4"], {}, True, id="fail/unknown-oid"),
        pytest.param(
            ["2.5.29.31"], {"crl_distribution_points": False}, True, id="fail/cdp-switched-off"
        ),
    ],
)
def test_check_csr_extensions(critical: list[str], profile: dict[str, Any], refused: bool) -> None:
    extensions = ProfileExtensions.model_validate(profile)
    if refused:
        with pytest.raises(Unprocessable) as caught:
            check_csr_extensions(critical, extensions, "web")
        assert caught.value.errors[0].field == "csr"
    else:
        check_csr_extensions(critical, extensions, "web")

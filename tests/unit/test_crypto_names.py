"""Names: subjects in conventional order, lossless reading, SANs both ways."""

from __future__ import annotations

import ipaddress
import warnings

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from certforge.common.crypto.names import (
    general_names_to_sans,
    name_to_subject,
    san_to_general_name,
    subject_to_name,
)
from certforge.common.domain import SanType, SubjectFields
from certforge.common.errors import Unprocessable
from certforge.common.template import San

FULL = SubjectFields(
    common_name="api.example.com",
    organization="Acme",
    organizational_unit="Platform",
    country="DE",
    state="Berlin",
    locality="Berlin",
)


def test_subject_is_written_c_st_l_o_ou_cn() -> None:
    name = subject_to_name(FULL)
    assert [a.oid for a in name] == [
        NameOID.COUNTRY_NAME,
        NameOID.STATE_OR_PROVINCE_NAME,
        NameOID.LOCALITY_NAME,
        NameOID.ORGANIZATION_NAME,
        NameOID.ORGANIZATIONAL_UNIT_NAME,
        NameOID.COMMON_NAME,
    ]
    assert name.rfc4514_string() == "CN=api.example.com,OU=Platform,O=Acme,L=Berlin,ST=Berlin,C=DE"
    assert all(len(rdn) == 1 for rdn in name.rdns)


def test_empty_subject_is_empty_name() -> None:
    assert len(subject_to_name(SubjectFields())) == 0


@pytest.mark.parametrize(
    "subject",
    [FULL, SubjectFields(common_name="x"), SubjectFields()],
    ids=["ok/full", "ok/cn-only", "ok/empty"],
)
def test_round_trip(subject: SubjectFields) -> None:
    parsed = name_to_subject(subject_to_name(subject))
    assert parsed.subject == subject
    assert parsed.unsupported == []


def test_unmodelled_repeated_and_multivalued_attributes_are_reported() -> None:
    name = x509.Name(
        [
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "a")]),
            x509.RelativeDistinguishedName(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme"),
                    x509.NameAttribute(NameOID.SERIAL_NUMBER, "42"),
                ]
            ),
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "b")]),
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.EMAIL_ADDRESS, "a@b.c")]),
        ]
    )
    parsed = name_to_subject(name)
    assert parsed.subject == SubjectFields(common_name="a", organization="Acme")
    assert parsed.unsupported == [
        NameOID.SERIAL_NUMBER.dotted_string,
        NameOID.COMMON_NAME.dotted_string,
        NameOID.EMAIL_ADDRESS.dotted_string,
    ]


@pytest.mark.parametrize(
    ("oid", "value", "field"),
    [
        (NameOID.COMMON_NAME, "x" * 65, "subject.common_name"),
        (NameOID.COUNTRY_NAME, "de", "subject.country"),
    ],
    ids=["fail/cn-too-long", "fail/country-lower-case"],
)
def test_values_subjectfields_would_refuse_are_unprocessable(
    oid: x509.ObjectIdentifier, value: str, field: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cryptography warns about the over-long CN we want
        attribute = x509.NameAttribute(oid, value, _validate=False)
    with pytest.raises(Unprocessable) as caught:
        name_to_subject(x509.Name([attribute]))
    assert [e.field for e in caught.value.errors] == [field]


SANS = [
    San(type=SanType.DNS, value="api.example.com"),
    San(type=SanType.DNS, value="*.example.com"),
    San(type=SanType.IP, value="10.0.0.1"),
    San(type=SanType.IP, value="2001:db8::1"),
    San(type=SanType.EMAIL, value="ops@example.com"),
    San(type=SanType.URI, value="spiffe://example.org/ns/a/sa/b"),
]


def test_sans_round_trip() -> None:
    general = [san_to_general_name(s) for s in SANS]
    assert isinstance(general[2], x509.IPAddress)
    assert general[2].value == ipaddress.ip_address("10.0.0.1")
    assert general_names_to_sans(general) == SANS


def test_duplicate_general_names_collapse_and_are_normalised() -> None:
    sans = general_names_to_sans([x509.DNSName("API.Example.com"), x509.DNSName("api.example.com")])
    assert sans == [San(type=SanType.DNS, value="api.example.com")]


@pytest.mark.parametrize(
    ("general", "message"),
    [
        (
            x509.OtherName(x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"), b"\x0c\x01a"),
            "otherName",
        ),
        (x509.DirectoryName(x509.Name([])), "directoryName"),
        (x509.RegisteredID(x509.ObjectIdentifier("1.2.3")), "registeredID"),
        (x509.IPAddress(ipaddress.ip_network("10.0.0.0/8")), "networks"),
        (x509.DNSName("bad_name.example"), "invalid DNS name"),
    ],
    ids=[
        "fail/other-name",
        "fail/directory-name",
        "fail/registered-id",
        "fail/ip-network",
        "fail/dns",
    ],
)
def test_unsupported_or_invalid_general_names(general: x509.GeneralName, message: str) -> None:
    with pytest.raises(Unprocessable, match=message) as caught:
        general_names_to_sans([x509.DNSName("ok.example"), general], field="csr.sans")
    assert caught.value.errors[0].field == "csr.sans.1"

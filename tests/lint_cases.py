"""Hypothesis strategies for certificates a pre-issuance lint may see, good and bad.

A few *structures* (issuer, key type, subject attribute kinds, SAN kinds, extensions) drawn
from small sets, so that shapes repeat and a shape cache gets hits; *values* drawn broadly,
including what our own template checks would never let through (names over their bounds,
non-ASCII, bad domain syntax, times either side of 2050, where the time type changes), so
that a fast path that missed a value pkilint judges is caught. Certificates are built with
cryptography directly, bypassing `build_certificate`'s refusals. Used by
tests/unit/test_lint_shape.py and bench/lint_cache.py.
"""

from __future__ import annotations

import functools
import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    NameOID,
)
from hypothesis import reject
from hypothesis import strategies as st


@functools.cache
def _keys() -> dict[str, Any]:
    return {
        "ec256": ec.generate_private_key(ec.SECP256R1()),
        "ec384": ec.generate_private_key(ec.SECP384R1()),
        "rsa2048": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
    }


def _issuer(kind: str) -> tuple[x509.Name, Any]:
    names = {
        "ec256": x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Lint Test EC CA")]),
        "rsa2048": x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Lint Test"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Lint Test RSA CA"),
            ]
        ),
    }
    return names[kind], _keys()[kind]


_LABEL = r"[a-z0-9]([a-z0-9-]{0,12}[a-z0-9])?"
good_dns = st.from_regex(rf"(\*\.)?({_LABEL}\.){{1,3}}[a-z]{{2,6}}", fullmatch=True)
dns_values = st.one_of(
    good_dns,
    good_dns,
    st.text(alphabet="abz09-._*", min_size=0, max_size=24),
    st.builds(lambda n: ("a" * 62 + ".") * n + "com", st.integers(3, 5)),
    st.sampled_from(["localhost", "10.0.0.1", "a..b.com", "-a.example.com", "*.*.example.com"]),
)
uri_values = st.one_of(
    st.builds(lambda host, path: f"https://{host}/{path}", good_dns, st.from_regex(r"[a-z/]{0,8}")),
    st.sampled_from(
        [
            "spiffe://example.org/ns/default/sa/web",
            "http://localhost:8080/x",
            "ldap://directory.example.com/cn=x",
            "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
            "https://" + "a" * 250 + ".example.com/",
            "not a uri",
            "https://example.com/a b",
        ]
    ),
)
email_values = st.one_of(
    st.builds(
        lambda local, domain: f"{local}@{domain}", st.from_regex(r"[a-z0-9.+_-]{0,10}"), dns_values
    ),
    st.text(alphabet="ab@.", min_size=0, max_size=10),
)
ip_values = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6))
text_values = st.one_of(
    st.from_regex(r"[A-Za-z0-9 .'-]{1,40}", fullmatch=True),
    st.text(min_size=0, max_size=140),
    st.builds(
        lambda c, n: c * n, st.sampled_from(["x", "é", "€", "\U0001d538"]), st.integers(1, 140)
    ),
)

_ATTRIBUTES = {
    NameOID.COMMON_NAME: text_values,
    NameOID.ORGANIZATION_NAME: text_values,
    NameOID.ORGANIZATIONAL_UNIT_NAME: text_values,
    NameOID.STATE_OR_PROVINCE_NAME: text_values,
    NameOID.LOCALITY_NAME: text_values,
    NameOID.SERIAL_NUMBER: st.from_regex(r"[A-Za-z0-9*]{1,70}", fullmatch=True),
    NameOID.COUNTRY_NAME: st.one_of(
        st.sampled_from(["US", "DE", "u1", "*A"]), st.text(min_size=2, max_size=2)
    ),
    NameOID.EMAIL_ADDRESS: email_values,
    NameOID.DOMAIN_COMPONENT: st.sampled_from(["example", "com", "bad_label", "-x"]),
}
_SUBJECT_KINDS = [
    (NameOID.COMMON_NAME,),
    (NameOID.COMMON_NAME,),
    (),
    (NameOID.COUNTRY_NAME, NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME),
    (NameOID.ORGANIZATION_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME, NameOID.COMMON_NAME),
    (NameOID.STATE_OR_PROVINCE_NAME, NameOID.LOCALITY_NAME, NameOID.COMMON_NAME),
    (NameOID.SERIAL_NUMBER, NameOID.COMMON_NAME),
    (NameOID.COMMON_NAME, NameOID.EMAIL_ADDRESS),
    (NameOID.DOMAIN_COMPONENT, NameOID.DOMAIN_COMPONENT, NameOID.COMMON_NAME),
]
_SAN_VALUES = {"dns": dns_values, "ip": ip_values, "email": email_values, "uri": uri_values}
_SAN_KINDS = [
    ("dns",),
    ("dns",),
    ("dns", "dns"),
    ("dns", "dns", "dns"),
    ("dns", "ip"),
    ("ip",),
    ("uri",),
    ("email",),
    ("dns", "email", "uri"),
    (),
]
_GENERAL_NAMES: dict[str, Any] = {
    "dns": x509.DNSName,
    "ip": lambda value: x509.IPAddress(ipaddress.ip_address(value)),
    "email": x509.RFC822Name,
    "uri": x509.UniformResourceIdentifier,
}


def _refused_or(make: Any, *args: Any, **kwargs: Any) -> Any:
    """`make(*args)`, or the example rejected when cryptography refuses the value outright
    (such a certificate cannot be built, so no lint ever sees it)."""
    try:
        return make(*args, **kwargs)
    except (ValueError, TypeError):
        reject()


_STARTS = [
    datetime(1950, 1, 1, tzinfo=UTC),
    datetime(2026, 12, 2, 10, 30, tzinfo=UTC),
    datetime(2026, 12, 2, 10, 30, tzinfo=UTC),
    datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(2050, 1, 1, tzinfo=UTC),
]
_BASES = ["http://127.0.0.1:8080", "https://pki.example.com", "http://localhost"]


@st.composite
def certificates(draw: st.DrawFn) -> x509.Certificate:
    """A certificate signed by one of two test CAs, as the pre-issuance lint would get it."""
    issuer_name, issuer_key = _issuer(draw(st.sampled_from(["ec256", "ec256", "rsa2048"])))
    subject_key = _keys()[draw(st.sampled_from(["ec256", "ec256", "ec384", "rsa2048", "ed25519"]))]
    attributes = [
        # cryptography's own length limits bypassed: pkilint judges those values too
        _refused_or(x509.NameAttribute, oid, draw(_ATTRIBUTES[oid]), _validate=False)
        for oid in draw(st.sampled_from(_SUBJECT_KINDS))
    ]
    sans = [
        _refused_or(_GENERAL_NAMES[kind], draw(_SAN_VALUES[kind]))
        for kind in draw(st.sampled_from(_SAN_KINDS))
    ]
    start = draw(st.sampled_from(_STARTS)) + timedelta(seconds=draw(st.integers(0, 86400)))
    length = timedelta(days=draw(st.sampled_from([90, 90, 365, 1])))
    serial = draw(st.one_of(st.integers(1, (1 << 159) - 1), st.sampled_from([1, (1 << 159) - 1])))
    base = draw(st.sampled_from(_BASES))
    try:
        subject = x509.Name(attributes)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(subject_key.public_key())
            .serial_number(serial)
            .not_valid_before(start)
            .not_valid_after(start + length)
            .add_extension(
                x509.BasicConstraints(ca=False, path_length=None),
                critical=draw(st.sampled_from([True, True, False])),
            )
            .add_extension(
                x509.KeyUsage(
                    digital_signature=draw(st.booleans()),
                    content_commitment=False,
                    key_encipherment=draw(st.booleans()),
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=draw(st.sampled_from([False, False, True])),
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                critical=False,
            )
        )
        if draw(st.booleans()):
            builder = builder.add_extension(
                x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()),
                critical=False,
            )
        if draw(st.booleans()):
            builder = builder.add_extension(
                x509.ExtendedKeyUsage(
                    draw(
                        st.sampled_from(
                            [
                                [ExtendedKeyUsageOID.SERVER_AUTH],
                                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
                                [ExtendedKeyUsageOID.TIME_STAMPING],
                            ]
                        )
                    )
                ),
                critical=False,
            )
        if sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(sans),
                critical=draw(st.sampled_from([len(attributes) == 0, False, True])),
            )
        if draw(st.booleans()):
            builder = builder.add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            [x509.UniformResourceIdentifier(f"{base}/crl")], None, None, None
                        )
                    ]
                ),
                critical=False,
            )
            builder = builder.add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier(f"{base}/ocsp"),
                        )
                    ]
                ),
                critical=False,
            )
        if draw(st.booleans()):
            builder = builder.add_extension(
                x509.CertificatePolicies(
                    [x509.PolicyInformation(x509.ObjectIdentifier("2.23.140.1.2.1"), None)]
                ),
                critical=False,
            )
        is_ed = isinstance(issuer_key, ed25519.Ed25519PrivateKey)
        return builder.sign(issuer_key, None if is_ed else hashes.SHA256())
    except (ValueError, TypeError):  # cryptography refuses it outright: nothing to lint
        reject()

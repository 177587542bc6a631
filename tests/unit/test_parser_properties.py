"""Issue 20: every parser that takes outside bytes answers with a valid result or its typed
refusal, never another exception (which the api would turn into a 500).

Inputs are arbitrary bytes and text, and valid documents mutated byte by byte (flipped,
truncated, spliced), which reach much deeper into a DER parser than noise does. The parsers and
the refusal each promises:

- certificates, PEM and DER (`load_certificate_pem`, `load_certificate_chain_pem`, the client
  certificate header, ACME's revokeCert): a certificate, or `InvalidInput` / `Unauthenticated`
  / an ACME problem;
- CSRs, PEM and DER (`parse_csr`, `parse_csr_der`): a `ParsedCsr` whose names are in their one
  form and within the SAN limit, or a `CertforgeError`;
- OCSP requests (the api's `ocsp.decode_get` and `ocsp.parse_request`): a request, or None (the
  responder answers `malformedRequest`);
- durations (`parse_duration`, the `Duration` field): a positive bounded `timedelta`, or
  `ValueError` / `ValidationError`;
- names (`names.dns_name`, `common_name_form`, `San`): the canonical form, or `ValueError`;
- ACME JWS (`jws.parse`, `check_protected`, `public_key`): a value, or an `AcmeProblem`.
"""

from __future__ import annotations

import base64
import os
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from certforge.api import ocsp
from certforge.api.acme import jws
from certforge.api.acme.errors import AcmeProblem
from certforge.api.acme.revocation import parse_certificate
from certforge.api.client_certs import parse_header
from certforge.common.crypto.certificates import (
    build_self_signed_ca,
    certificate_to_der,
    certificate_to_pem,
    load_certificate_chain_pem,
    load_certificate_pem,
)
from certforge.common.crypto.csr import ParsedCsr, build_csr, csr_to_pem, parse_csr, parse_csr_der
from certforge.common.crypto.keys import generate_private_key
from certforge.common.domain import KeyAlgorithm, SanType, SubjectFields
from certforge.common.durations import MAX_DURATION, Duration, format_duration, parse_duration
from certforge.common.errors import CertforgeError, InvalidInput, Unauthenticated
from certforge.common.names import MAX_NAME_LENGTH, common_name_form, dns_name
from certforge.common.template import MAX_SANS, San

ErrorT = TypeVar("ErrorT", bound=Exception)

PROPERTIES = settings(
    max_examples=int(os.environ.get("CERTFORGE_PROPERTY_EXAMPLES", "200")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
"""Bounded, so the suite stays fast; CERTFORGE_PROPERTY_EXAMPLES=5000 searches deeper."""

_KEY = generate_private_key(KeyAlgorithm.EC_P256)
_CA = build_self_signed_ca(
    SubjectFields(common_name="Property Root"),
    _KEY,
    datetime(2030, 1, 1, tzinfo=UTC),
    datetime(2031, 1, 1, tzinfo=UTC),
    None,
    None,
)
_CERT_DER = certificate_to_der(_CA)
_CERT_PEM = certificate_to_pem(_CA).encode()
_CSR = build_csr(
    _KEY,
    SubjectFields(common_name="api.example.com", organization="Example"),
    [San(type="dns", value="api.example.com"), San(type="ip", value="10.0.0.1")],
)
_CSR_DER = _CSR.public_bytes(serialization.Encoding.DER)
_CSR_PEM = csr_to_pem(_CSR).encode()
_OCSP_DER = (
    x509.ocsp.OCSPRequestBuilder()
    .add_certificate(_CA, _CA, hashes.SHA1())
    .add_extension(x509.OCSPNonce(b"0123456789abcdef"), critical=False)
    .build()
    .public_bytes(serialization.Encoding.DER)
)


def _refusal(
    kind: type[ErrorT], parse: Callable[..., object], *args: Any, **kw: Any
) -> ErrorT | None:
    """The refusal of kind `kind` that `parse` raises, or None when it answers; any other
    exception propagates and fails the property."""
    try:
        parse(*args, **kw)
    except kind as exc:
        return exc
    return None


@st.composite
def _mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    """`valid` with a few bytes flipped, a slice cut out or repeated, or its tail cut off."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        edit = draw(st.sampled_from(["flip", "set", "cut", "repeat", "truncate"]))
        if edit == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "set":
            data[at] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0x81, 0x82, 0xFF]))
        elif edit == "cut":
            del data[at : at + draw(st.integers(1, 16))]
        elif edit == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 64))]
        else:
            del data[at:]
    return bytes(data)


def _bytes_like(valid: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=512), _mutated(valid))


def _pem_of(der: st.SearchStrategy[bytes], label: str) -> st.SearchStrategy[bytes]:
    """A PEM block around `der`, so that a mutated DER gets past the PEM armour."""
    return der.map(
        lambda d: (
            f"-----BEGIN {label}-----\n{base64.encodebytes(d).decode()}-----END {label}-----\n"
        ).encode()
    )


# --- certificates --------------------------------------------------------------------------------


@PROPERTIES
@given(
    st.one_of(
        _bytes_like(_CERT_PEM),
        _pem_of(_mutated(_CERT_DER), "CERTIFICATE"),
        st.text(max_size=256).map(str.encode),
    )
)
def test_pem_certificates_parse_or_are_refused_as_invalid_input(data: bytes) -> None:
    for parse in (load_certificate_pem, load_certificate_chain_pem):
        refused = _refusal(InvalidInput, parse, data)
        assert refused is None or refused.errors, "a refusal names the field"


@PROPERTIES
@given(_bytes_like(_CERT_DER))
def test_der_certificates_of_revoke_cert_parse_or_are_an_acme_problem(der: bytes) -> None:
    encoded = base64.urlsafe_b64encode(der).decode().rstrip("=")
    try:
        cert = parse_certificate({"certificate": encoded})
    except AcmeProblem:
        return
    assert isinstance(cert, x509.Certificate)


@PROPERTIES
@given(
    st.one_of(
        st.text(max_size=256),
        _pem_of(_mutated(_CERT_DER), "CERTIFICATE").map(bytes.decode),
        st.builds(lambda t: f'By=spiffe://x;Cert="{t}"', st.text(max_size=64)),
    )
)
def test_client_certificate_headers_parse_or_are_unauthenticated(header: str) -> None:
    _refusal(Unauthenticated, parse_header, header)


# --- CSRs ----------------------------------------------------------------------------------------


def _check_parsed(parsed: ParsedCsr) -> None:
    assert len(parsed.sans) <= MAX_SANS
    for san in parsed.sans:
        if san.type is SanType.DNS:
            assert dns_name(san.value) == san.value, "a DNS SAN is in its one form"


@PROPERTIES
@given(
    st.one_of(
        _bytes_like(_CSR_PEM),
        _pem_of(_mutated(_CSR_DER), "CERTIFICATE REQUEST"),
        st.text(max_size=256).map(str.encode),
    )
)
def test_pem_csrs_parse_or_are_refused(data: bytes) -> None:
    try:
        parsed = parse_csr(data)
    except CertforgeError as exc:
        refused = exc
    else:
        _check_parsed(parsed)
        return
    assert refused.errors, "a refusal names the field"


@PROPERTIES
@given(_bytes_like(_CSR_DER))
def test_der_csrs_parse_or_are_refused(der: bytes) -> None:
    try:
        parsed = parse_csr_der(der)
    except CertforgeError:
        return
    _check_parsed(parsed)


_ANY_NAME = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=80
)


@PROPERTIES
@given(_ANY_NAME, st.lists(st.text(min_size=1, max_size=40), max_size=3))
def test_csrs_with_any_names_parse_or_are_refused(common_name: str, dns: list[str]) -> None:
    """Names a CSR builder would refuse, signed anyway: any text as the CN (UTF8String), any
    text as dNSNames (an IA5String carrying whatever bytes)."""
    with warnings.catch_warnings():  # cryptography warns of a CN over 64 characters: wanted
        warnings.simplefilter("ignore", UserWarning)
        attribute = x509.NameAttribute(NameOID.COMMON_NAME, common_name, _validate=False)
    subject = x509.Name([attribute])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if dns:
        names = [x509.DNSName._init_without_validation(value) for value in dns]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    try:
        csr = builder.sign(_KEY, hashes.SHA256())  # type: ignore[arg-type]
    except ValueError:
        return  # cryptography itself would not encode it
    try:
        parsed = parse_csr(csr_to_pem(csr))
    except CertforgeError:
        return
    _check_parsed(parsed)


# --- OCSP requests (the api's parser) ------------------------------------------------------------


@PROPERTIES
@given(_bytes_like(_OCSP_DER))
def test_ocsp_requests_parse_or_are_malformed(der: bytes) -> None:
    request = ocsp.parse_request(der)
    if request is not None:
        assert request.nonce is None or 0 < len(request.nonce) <= ocsp.MAX_NONCE_BYTES


@PROPERTIES
@given(
    st.one_of(
        st.text(max_size=256),
        _mutated(_OCSP_DER).map(lambda d: base64.b64encode(d).decode()),
        _mutated(_OCSP_DER).map(lambda d: base64.urlsafe_b64encode(d).decode()),
    )
)
def test_ocsp_get_urls_decode_or_are_malformed(encoded: str) -> None:
    der = ocsp.decode_get(encoded)
    if der is not None:
        ocsp.parse_request(der)


# --- durations -----------------------------------------------------------------------------------

_DURATION = TypeAdapter(Duration)


@PROPERTIES
@given(st.one_of(st.text(max_size=32), st.from_regex(r"\s*(\d{1,7}[ywdhmsYWDHMS]){1,4}\s*")))
def test_durations_parse_to_a_bounded_positive_time_or_value_error(text: str) -> None:
    try:
        value = parse_duration(text)
    except ValueError:
        return
    assert timedelta(0) < value <= MAX_DURATION
    assert parse_duration(format_duration(value)) == value, "the shown form reads back"


@PROPERTIES
@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=32),
        st.lists(st.integers(), max_size=2),
    )
)
def test_duration_fields_accept_a_duration_or_refuse_it(value: Any) -> None:
    try:
        parsed = _DURATION.validate_python(value)
    except ValidationError:
        return
    assert timedelta(0) < parsed <= MAX_DURATION


# --- names ---------------------------------------------------------------------------------------


@PROPERTIES
@given(st.one_of(_ANY_NAME, st.from_regex(r"(\*\.)?([a-zA-Z0-9-]{1,12}\.){1,4}[a-z]{2,6}\.?")))
def test_names_are_read_into_one_form_or_refused(text: str) -> None:
    try:
        name = dns_name(text)
    except ValueError:
        pass
    else:
        assert name.isascii()
        assert name == name.lower()
        assert len(name) <= MAX_NAME_LENGTH
        assert dns_name(name) == name, "the form is a fixed point"
    _refusal(ValidationError, San, type="dns", value=text)
    try:
        form = common_name_form(text)
    except ValueError:
        pass
    else:
        assert common_name_form(form) == form


# --- ACME JWS ------------------------------------------------------------------------------------

_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=16)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_HEADER = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.one_of(st.sampled_from([*jws.ALGORITHMS, "none", "HS256"]), _JSON),
        "url": st.one_of(st.just("https://acme.example/new-order"), _JSON),
        "nonce": st.one_of(st.text(max_size=16), _JSON),
        "kid": st.one_of(st.just("https://acme.example/acct/1"), _JSON),
        "jwk": _JSON,
        "b64": st.booleans(),
    },
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@st.composite
def _jws_bodies(draw: st.DrawFn) -> bytes:
    """Flattened JWS bodies with any header and payload, or any members, or any bytes."""
    kind = draw(st.sampled_from(["flattened", "members", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=256))
    if kind == "members":
        return orjson.dumps(draw(st.dictionaries(st.text(max_size=10), _JSON, max_size=4)))
    return orjson.dumps(
        {
            "protected": _b64(orjson.dumps(draw(st.one_of(_HEADER, _JSON)))),
            "payload": draw(st.one_of(st.just(""), _JSON.map(orjson.dumps).map(_b64))),
            "signature": draw(st.one_of(st.just(_b64(b"\x00" * 64)), st.text(max_size=8))),
        }
    )


@PROPERTIES
@given(_jws_bodies(), st.sampled_from(["jwk", "kid", "either"]))
def test_acme_jws_bodies_parse_or_are_an_acme_problem(body: bytes, key_by: str) -> None:
    try:
        token = jws.parse(body)
        jws.check_protected(token, key_by=key_by)
        if not token.post_as_get:
            token.json_payload()
        if "jwk" in token.protected:
            jws.public_key(token.protected["jwk"])
    except AcmeProblem:
        pass


_EC_JWK = {
    "kty": "EC",
    "crv": "P-256",
    "x": _b64(ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers().x.to_bytes(32)),
}


@PROPERTIES
@given(
    st.one_of(
        _JSON,
        st.dictionaries(
            st.sampled_from(["kty", "crv", "x", "y", "n", "e", "d", "k", "alg", "use"]),
            st.one_of(
                st.sampled_from(["EC", "RSA", "OKP", "oct", "P-256", "Ed25519", "AQAB"]),
                st.text(max_size=12),
                _JSON,
            ),
            max_size=6,
        ).map(lambda extra: {**_EC_JWK, **extra}),
    )
)
def test_acme_account_keys_import_or_are_an_acme_problem(jwk: Any) -> None:
    _refusal(AcmeProblem, jws.public_key, jwk)

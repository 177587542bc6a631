"""Issue 20: a name that a rule denies is never allowed, in any spelling, in any field.

Hypothesis spells a denied name every way a caller could (case, a root dot, U-label or A-label
per label, decomposed Unicode, fullwidth letters, invisible characters, other full stops, the
transitional reading of `ß` and `ς`), asks for it as a common name, a DNS SAN or both, in JSON
or in a CSR, and runs the request through the api's check (`requests.checked_template`) and the
issuer's (`resolve_template` + `enforce_policy_and_names` on the stored parameters). Every one
must refuse it. And an allowed name is issued in one form in the CN and the SAN.
"""

from __future__ import annotations

import os
import string
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

import idna
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from certforge.api.domain.requests import checked_template, csr_params
from certforge.common.crypto.csr import csr_to_pem, parse_csr
from certforge.common.crypto.keys import generate_private_key
from certforge.common.domain import KeyAlgorithm, RequestMethod, SubjectFields
from certforge.common.errors import CertforgeError
from certforge.common.issuance import IssuingCA, ProfileDefaults, RequestParams, resolve_template
from certforge.common.name_constraint_rules import enforce_policy_and_names
from certforge.common.names import common_name_form
from certforge.common.policy import PolicyDocument
from certforge.common.template import CertificateTemplate, San

PROPERTIES = settings(
    max_examples=int(os.environ.get("CERTFORGE_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
"""Bounded, so the suite stays fast; CERTFORGE_PROPERTY_EXAMPLES=5000 searches deeper."""
NOW = datetime(2030, 1, 1, tzinfo=UTC)
_KEY = generate_private_key(KeyAlgorithm.EC_P256)

# Labels with the characters that have more than one reading: ß and ς (IDNA 2008 keeps them,
# transitional processing maps them), umlauts (composed or not), Cyrillic, plain ASCII.
_WORDS = ["admin", "fa\u00df", "stra\u00dfe", "\u03b1\u03c2", "m\u00fcnchen", "\u043f\u0440\u0438"]
_label = st.one_of(st.sampled_from(_WORDS), st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True))
_INVISIBLE = ["\u00ad", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u202e", "\u034f"]
_FULL_STOPS = ["\u3002", "\uff0e", "\uff61"]


def _a_label(label: str) -> str:
    return label if label.isascii() else idna.alabel(label).decode("ascii")


def _transitional(label: str) -> str:
    return label.replace("\u00df", "ss").replace("\u03c2", "\u03c3")


@st.composite
def _spelling(draw: st.DrawFn, labels: list[str]) -> str:
    """One way of writing the name made of `labels` (IDNA 2008 U-labels or ASCII)."""
    written = []
    for label in labels:
        form = draw(st.sampled_from(["as-is", "a-label", "transitional", "nfd", "upper"]))
        if form == "a-label":
            label = _a_label(label)
        elif form == "transitional":
            label = _transitional(label)
        elif form == "nfd":
            label = unicodedata.normalize("NFD", label)
        elif form == "upper":
            label = label.upper()
        written.append(label)
    text = ".".join(written)
    tricks = draw(st.lists(st.sampled_from(["fullwidth", "invisible", "stop", "dot"]), max_size=2))
    for trick in tricks:
        if trick == "fullwidth" and any("a" <= c <= "z" for c in text):
            at = draw(st.sampled_from([i for i, c in enumerate(text) if "a" <= c <= "z"]))
            text = text[:at] + chr(ord(text[at]) - ord("a") + 0xFF41) + text[at + 1 :]
        elif trick == "invisible":
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.sampled_from(_INVISIBLE)) + text[at:]
        elif trick == "stop" and "." in text:
            text = text.replace(".", draw(st.sampled_from(_FULL_STOPS)), 1)
        elif trick == "dot":
            text += "."
    return text


def _target(policy: PolicyDocument) -> dict[str, Any]:
    """What the api reads of a profile, its CA and its policy (`requests._target_sql`)."""
    return {
        "ca_name": "issuing",
        "ca_key_algorithm": "EC_P256",
        "ca_not_after": NOW + timedelta(days=3650),
        "ca_name_constraints": None,
        "ca_chain_name_constraints": [],
        "defaults": ProfileDefaults().model_dump(mode="json"),
        "extensions": None,
        "profile_slug": "web",
        "policy_name": "web",
        "policy_document": policy.model_dump(mode="json"),
    }


def _csr(common_name: str | None, dns: str | None) -> str:
    attributes = []
    if common_name is not None:
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name, _validate=False)]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
    if dns is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False
        )
    return csr_to_pem(builder.sign(_KEY, hashes.SHA256()))  # type: ignore[arg-type]


def _managed_params(fields: dict[str, Any]) -> RequestParams:
    """A JSON request's parameters as `requests._params` makes them (the schema's own checks
    are the same `San` and `SubjectFields` models)."""
    return RequestParams(
        method=RequestMethod.MANAGED,
        subject=SubjectFields(common_name=fields.get("common_name")),
        sans=[San(type="dns", value=v) for v in fields.get("sans", [])],
    )


def _issued_by_api(policy: PolicyDocument, params_of: Any) -> CertificateTemplate | None:
    """The template the api would accept, or None when it refuses."""
    try:
        return checked_template(_target(policy), params_of(), NOW)
    except (ValidationError, CertforgeError, ValueError):
        return None


def _issued_by_issuer(policy: PolicyDocument, params: RequestParams) -> bool:
    """Whether the issuer would sign the request stored with `params`."""
    try:
        stored = RequestParams.model_validate(params.model_dump(mode="json"))
        ca = IssuingCA("issuing", KeyAlgorithm.EC_P256, NOW + timedelta(days=3650))
        template = resolve_template(stored, ProfileDefaults(), ca, NOW)
        enforce_policy_and_names(policy, template, "web", ca.name, ())
    except (ValidationError, CertforgeError, ValueError):
        return False
    return True


@st.composite
def _denied_request(draw: st.DrawFn) -> tuple[PolicyDocument, str, str]:
    """A policy allowing `**.example.com` (or anything) and denying one name written in some
    valid spelling; the field to request it in; a spelling of it to request."""
    labels = [*draw(st.lists(_label, min_size=1, max_size=2)), "example", "com"]
    pattern = draw(_spelling(labels).filter(_valid_pattern))
    allowed = draw(st.sampled_from([["**.example.com"], None]))
    policy = PolicyDocument.model_validate(
        {"sans": {"dns": {"allowed": allowed, "denied": [pattern]}}}
    )
    field = draw(st.sampled_from(["cn", "san", "cn+san", "csr-cn", "csr-san"]))
    return policy, field, draw(_spelling(labels))


def _valid_pattern(text: str) -> bool:
    try:
        PolicyDocument.model_validate({"sans": {"dns": {"denied": [text]}}})
    except ValidationError:
        return False
    return True


@PROPERTIES
@given(_denied_request())
def test_a_denied_name_is_refused_in_every_spelling_and_field(
    case: tuple[PolicyDocument, str, str],
) -> None:
    policy, field, spelling = case
    if field.startswith("csr"):
        if field == "csr-san" and not spelling.isascii():
            return  # a dNSName is an IA5String: a CSR carries only ASCII spellings
        try:
            pem = _csr(
                spelling if field == "csr-cn" else None, spelling if "san" in field else None
            )
            parsed = parse_csr(pem)
        except (CertforgeError, ValueError):
            return  # refused while reading the CSR
        params = csr_params(parsed, pem, _target(policy))
    else:
        fields: dict[str, Any] = {}
        if "cn" in field:
            fields["common_name"] = spelling
        if "san" in field:
            fields["sans"] = [spelling]
        try:
            params = _managed_params(fields)
        except (ValidationError, ValueError):
            return  # refused by the request's own validation
        if field == "cn" and len(spelling) > 64:
            return
    assert _issued_by_api(policy, lambda: params) is None, (field, spelling)
    assert not _issued_by_issuer(policy, params), (field, spelling)


@PROPERTIES
@given(st.lists(_label, min_size=1, max_size=3), st.data())
def test_an_allowed_name_has_one_form_in_the_common_name_and_the_san(
    labels: list[str], data: st.DataObject
) -> None:
    spelling = data.draw(_spelling([*labels, "example", "com"]))
    try:
        san = San(type="dns", value=spelling)
        common_name = common_name_form(spelling)
    except (ValidationError, ValueError):
        with pytest.raises(ValueError):  # refused as a SAN: refused as a common name too
            common_name_form(spelling)
        return
    assert common_name == san.value
    policy = PolicyDocument.model_validate({"sans": {"dns": {"allowed": ["**.example.com"]}}})
    if len(spelling) <= 64 and len(san.value) <= 64:
        template = _issued_by_api(
            policy, lambda: _managed_params({"common_name": spelling, "sans": [spelling]})
        )
        assert template is not None
        assert template.subject.common_name == template.sans[0].value == san.value


_WORDS_OF_NAMES = st.text(
    st.sampled_from(string.ascii_letters + string.digits + " -&\u00df\u00e9"),
    min_size=1,
    max_size=24,
).filter(lambda t: t.strip() == t and t != "")


@st.composite
def _text_spelling(draw: st.DrawFn, text: str) -> str:
    """`text` with its case changed, letters made fullwidth, invisible characters inserted,
    spaces made ideographic or its accents decomposed."""
    chars = list(text)
    for at, c in enumerate(chars):
        trick = draw(st.sampled_from(["", "", "upper", "lower", "fullwidth", "nfd"]))
        if trick == "upper":
            chars[at] = c.upper()
        elif trick == "lower":
            chars[at] = c.lower()
        elif trick == "fullwidth" and "!" <= c <= "~":
            chars[at] = chr(ord(c) - 0x21 + 0xFF01)
        elif trick == "fullwidth" and c == " ":
            chars[at] = "\u3000"
        elif trick == "nfd":
            chars[at] = unicodedata.normalize("NFD", c)
    if draw(st.booleans()):
        chars.insert(draw(st.integers(0, len(chars))), draw(st.sampled_from(_INVISIBLE)))
    return "".join(chars)


@PROPERTIES
@given(_WORDS_OF_NAMES, st.data())
def test_a_denied_subject_attribute_is_refused_in_every_spelling(
    denied: str, data: st.DataObject
) -> None:
    spelling = data.draw(_text_spelling(denied))
    policy = PolicyDocument.model_validate({"subject": {"organization": {"denied": [denied]}}})
    try:
        params = RequestParams(
            method=RequestMethod.MANAGED,
            subject=SubjectFields(organization=spelling),
            sans=[San(type="dns", value="api.example.com")],
        )
    except ValidationError:
        return  # refused by the request's own validation (over 64 characters)
    assert _issued_by_api(policy, lambda: params) is None, spelling
    assert not _issued_by_issuer(policy, params), spelling


@PROPERTIES
@given(st.lists(_label, min_size=1, max_size=2), st.data())
def test_a_denied_email_address_is_refused_in_every_spelling(
    labels: list[str], data: st.DataObject
) -> None:
    domain = [*labels, "example"]
    pattern = "ceo@" + data.draw(_spelling(domain).filter(lambda d: _valid_pattern(f"x.{d}")))
    local = data.draw(st.sampled_from(["ceo", "CEO", "Ceo"]))
    spelling = f"{local}@{data.draw(_spelling(domain))}"
    policy = PolicyDocument.model_validate({"sans": {"email": {"denied": [pattern]}}})
    try:
        params = RequestParams(
            method=RequestMethod.MANAGED, sans=[San(type="email", value=spelling)]
        )
    except ValidationError:
        return  # refused as an address
    assert _issued_by_api(policy, lambda: params) is None, (pattern, spelling)
    assert not _issued_by_issuer(policy, params), (pattern, spelling)

"""Issue 20, defects 1-3: `certforge.common.names`, the one reading of a host name.

Case is the only mapping applied silently; every other character UTS 46 would change or drop
is refused naming its code point; an `xn--` label must decode and round-trip; a host-name
common name takes the form of its DNS SAN; a denied name also holds in its transitional
reading.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from certforge.common.domain import KeyAlgorithm, SubjectFields
from certforge.common.errors import Unprocessable
from certforge.common.issuance import IssuingCA, ProfileDefaults, RequestParams, resolve_template
from certforge.common.names import (
    common_name_form,
    dns_name,
    invisible_character,
    looks_like_host_name,
    spellings,
)
from certforge.common.policy import AttributeRule, DnsSanRule, EmailSanRule, UriSanRule
from certforge.common.template import San


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("API.Example.COM.", "api.example.com", id="ok/case-and-root-dot"),
        pytest.param("Fa\u00df.example", "xn--fa-hia.example", id="ok/sharp-s-kept"),
        pytest.param("FA\u1e9e.example", "xn--fa-hia.example", id="ok/capital-sharp-s-is-case"),
        pytest.param("\u041f\u0420\u0418.example", "xn--h1and.example", id="ok/cyrillic-case"),
        pytest.param("a\u0308.example", "xn--4ca.example", id="ok/decomposed-is-composed"),
        pytest.param("xn--4ca.example", "xn--4ca.example", id="ok/a-label-kept"),
        pytest.param("XN--4CA.example", "xn--4ca.example", id="ok/a-label-case"),
        pytest.param("*.xn--4ca.example", "*.xn--4ca.example", id="ok/wildcard"),
        pytest.param("ab--cd.example", "ab--cd.example", id="ok/other-double-hyphen"),
        pytest.param("caf\u00e9.example", "xn--caf-dma.example", id="ok/latin-with-accent"),
        pytest.param("\u03b1\u03b2\u03b3.example", "xn--mxacd.example", id="ok/greek-alone"),
        pytest.param("\u65e5\u672cabc.example", "xn--abc-s08fl0d.example", id="ok/han-with-latin"),
        pytest.param(
            "\u0430\u0440\u0440\u04cf\u0435.ru",
            "xn--80ak6aa92e.ru",
            id="ok/cyrillic-lookalikes-in-ru",
        ),
        pytest.param(
            "\u0430\u0440\u0440\u04cf\u0435.\u0440\u0444",
            "xn--80ak6aa92e.xn--p1ai",
            id="ok/cyrillic-lookalikes-under-cyrillic-tld",
        ),
    ],
)
def test_dns_name(value: str, expected: str) -> None:
    assert dns_name(value) == expected
    assert dns_name(expected) == expected, "the form is a fixed point"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param("\uff41dmin.example", "U+FF41", id="fail/fullwidth-letter"),
        pytest.param("admin\u3002example", "U+3002", id="fail/ideographic-full-stop"),
        pytest.param("ad\u00admin.example", "U+00AD", id="fail/soft-hyphen"),
        pytest.param("admin\u200b.example", "U+200B", id="fail/zero-width-space"),
        pytest.param("adm\u200cin.example", "U+200C", id="fail/zero-width-non-joiner"),
        pytest.param("\u0915\u094d\u200d.example", "U+200D", id="fail/joiner-even-in-context"),
        pytest.param("admin\u202e.example", "U+202E", id="fail/bidi-override"),
        pytest.param("\ufeffadmin.example", "U+FEFF", id="fail/byte-order-mark"),
        pytest.param("admin\ufe0f.example", "U+FE0F", id="fail/variation-selector"),
        pytest.param("a\u034fdmin.example", "U+034F", id="fail/grapheme-joiner"),
        pytest.param("\u212aelvin.example", "U+212A", id="fail/kelvin-sign"),
        pytest.param("\ufb01le.example", "U+FB01", id="fail/ligature"),
        pytest.param("\u24d0dmin.example", "U+24D0", id="fail/circled-letter"),
        pytest.param("xn--zz.example", "A-label", id="fail/a-label-does-not-decode"),
        pytest.param("xn--abc-.example", "A-label", id="fail/a-label-ends-with-hyphen"),
        pytest.param("xn--ls8h.example", "A-label", id="fail/a-label-of-a-symbol"),
        pytest.param("xn--1ug.example", "A-label", id="fail/a-label-of-a-joiner"),
        pytest.param("xn--ss-.example", "A-label", id="fail/a-label-of-ascii"),
        pytest.param("p\u0430ypal.example", "mixes Cyrillic and Latin", id="fail/mixed-cyrillic"),
        pytest.param("xn--pypal-4ve.example", "U+0430", id="fail/mixed-cyrillic-a-label"),
        pytest.param("\u03bfpen.example", "mixes Greek and Latin", id="fail/mixed-greek"),
        pytest.param("\u0430\u03b2.example", "Cyrillic and Greek", id="fail/cyrillic-with-greek"),
        pytest.param(
            "\u0430\u0440\u0440\u04cf\u0435.example.com", "look like Latin", id="fail/whole-script"
        ),
        pytest.param("xn--80ak6aa92e.com", "look like Latin", id="fail/whole-script-a-label"),
    ],
)
def test_names_spelt_to_deceive_are_refused_naming_why(value: str, reason: str) -> None:
    with pytest.raises(ValueError, match="invalid DNS name") as caught:
        dns_name(value)

    assert reason in str(caught.value)


@pytest.mark.parametrize(
    ("value", "host_like"),
    [
        pytest.param("api.example.com", True, id="host"),
        pytest.param("*.example.com", True, id="wildcard"),
        pytest.param("\uff41dmin.example.com", True, id="fullwidth-host"),
        pytest.param("admin\u3002example", True, id="ideographic-full-stop"),
        pytest.param("10.0.0.1", True, id="dotted-digits"),
        pytest.param("Alice", False, id="person"),
        pytest.param("My Service v1.2", False, id="spaces"),
        pytest.param("svc_a.internal", False, id="underscore"),
        pytest.param("a@b.example", False, id="email"),
        pytest.param("example.", False, id="one-label"),
    ],
)
def test_looks_like_host_name(value: str, host_like: bool) -> None:
    assert looks_like_host_name(value) is host_like


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("Stra\u00dfe.Example.com.", "xn--strae-oqa.example.com", id="idn-a-label"),
        pytest.param("API.example.com", "api.example.com", id="lower-case"),
        pytest.param("Alice Example", "Alice Example", id="not-a-host-as-written"),
        pytest.param("svc_a.internal", "svc_a.internal", id="underscore-as-written"),
    ],
)
def test_a_host_common_name_takes_the_form_of_its_san(value: str, expected: str) -> None:
    assert common_name_form(value) == expected
    if looks_like_host_name(value):
        assert San(type="dns", value=value).value == expected


@pytest.mark.parametrize(
    "value",
    ["\uff41dmin.example.com", "admin\u200b.example.com", "xn--zz.example.com", "a..b.example"],
)
def test_a_common_name_that_looks_like_a_host_but_is_no_valid_one_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="looks like a host name"):
        common_name_form(value)


def test_invisible_characters_are_found_in_any_text() -> None:
    assert invisible_character("Evil\u200b Corp") == (
        "U+200B (ZERO WIDTH SPACE) is an invisible character"
    )
    assert invisible_character("Zo\u00eb M\u00fcller") is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("xn--fa-hia.example", ("xn--fa-hia.example", "fass.example"), id="sharp-s"),
        pytest.param(
            "xn--mxa8a.example", ("xn--mxa8a.example", "xn--mxa0b.example"), id="final-sigma"
        ),
        pytest.param("xn--4ca.example", ("xn--4ca.example",), id="no-deviation"),
        pytest.param("fass.example", ("fass.example",), id="ascii"),
    ],
)
def test_spellings(name: str, expected: tuple[str, ...]) -> None:
    assert spellings(name) == expected


@pytest.mark.parametrize(
    ("denied", "value"),
    [
        pytest.param("fass.example", "fa\u00df.example", id="ss-denies-sharp-s"),
        pytest.param("fa\u00df.example", "fass.example", id="sharp-s-denies-ss"),
        pytest.param("*.fass.example", "api.fa\u00df.example", id="wildcard-pattern"),
        pytest.param("api.fass.example", "*.fa\u00df.example", id="wildcard-value"),
    ],
)
def test_a_denied_name_holds_in_its_transitional_reading(denied: str, value: str) -> None:
    rule = DnsSanRule(denied=[denied])

    assert rule.refusals(San(type="dns", value=value).value, "the policy") != []


def test_an_allowed_name_is_only_its_own_reading() -> None:
    """Allowing `fass` does not allow `faß`: the certificate would name `xn--fa-hia`."""
    rule = DnsSanRule(allowed=["fass.example"])

    assert rule.refusals(San(type="dns", value="fa\u00df.example").value, "the policy") != []


@pytest.mark.parametrize(
    "value",
    ["EVIL Corp", "\uff25vil Corp", "Evil\u200b Corp", "evil corp"],
    ids=["case", "fullwidth", "zero-width", "lower"],
)
def test_a_denied_subject_attribute_holds_in_every_spelling(value: str) -> None:
    assert AttributeRule(denied=["Evil Corp"]).refusals(value, "the policy") != []


@pytest.mark.parametrize(
    ("denied", "value"),
    [
        pytest.param("ceo@fa\u00df.example", "CEO@fass.example", id="u-label-pattern-ss-value"),
        pytest.param("*@*.fass.example", "x@api.fa\u00df.example", id="glob-domain"),
        pytest.param("ceo@xn--fa-hia.example", "ceo@Fa\u00df.example", id="a-label-pattern"),
    ],
)
def test_a_denied_email_domain_holds_in_every_reading(denied: str, value: str) -> None:
    rule = EmailSanRule(denied=[denied])

    assert rule.refusals(San(type="email", value=value).value, "the policy") != []


_CJK = "\u4e00\u4e8c\u4e09\u56db\u4e94\u516d\u4e03\u516b\u4e5d\u5341\u767e\u5343\u4e07\u5104"
"""14 characters whose A-label has 40: a 37-character common name of 89 as A-labels."""


@pytest.mark.parametrize(
    ("method", "subject", "field"),
    [
        pytest.param("managed", {"organization": "Evil\u200b Corp"}, "organization", id="org"),
        pytest.param("csr", {"locality": "Ber\u00adlin"}, "csr.locality", id="csr-locality"),
        pytest.param("managed", {"common_name": "\uff41pi.example.com"}, "common_name", id="cn"),
        pytest.param(
            "managed", {"common_name": f"{_CJK}.{_CJK[::-1]}.example"}, "common_name", id="long"
        ),
    ],
)
def test_the_template_refuses_a_subject_spelt_to_deceive_on_the_callers_field(
    method: str, subject: dict[str, str], field: str
) -> None:
    params = RequestParams(method=method, subject=SubjectFields(**subject))
    ca = IssuingCA("ca", KeyAlgorithm.EC_P256, datetime(2040, 1, 1, tzinfo=UTC))

    with pytest.raises(Unprocessable) as caught:
        resolve_template(params, ProfileDefaults(), ca, datetime(2030, 1, 1, tzinfo=UTC))

    assert [e.field for e in caught.value.errors] == [field]


@pytest.mark.parametrize(
    ("denied", "value"),
    [
        pytest.param("spiffe://fa\u00df.example/*", "spiffe://XN--FA-HIA.example/x", id="host"),
        pytest.param("https://*.example/stra\u00dfe", "https://a.example/stra%C3%9Fe", id="path"),
    ],
)
def test_a_denied_uri_written_in_unicode_matches_its_ascii_form(denied: str, value: str) -> None:
    rule = UriSanRule(denied=[denied])

    assert rule.refusals(San(type="uri", value=value).value, "the policy") != []

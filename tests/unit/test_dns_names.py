"""DNS names are converted by IDNA 2008 (UTS 46), the rules browsers and registries follow.

IDNA 2003 (Python's built-in codec) maps `ß` to `ss`, so `faß.example` would be issued as
`fass.example`, a different domain; and it accepts symbols IDNA 2008 refuses.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from certforge.common.policy import DnsSanRule
from certforge.common.template import San, normalize_dns_name


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("faß.example", "xn--fa-hia.example", id="ok/sharp-s-is-kept"),
        pytest.param("FAß.Example.", "xn--fa-hia.example", id="ok/case-and-root-dot"),
        pytest.param("*.faß.example", "*.xn--fa-hia.example", id="ok/wildcard"),
        pytest.param("api.münchen.de", "api.xn--mnchen-3ya.de", id="ok/mixed-labels"),
        pytest.param("xn--fa-hia.example", "xn--fa-hia.example", id="ok/a-label-unchanged"),
        pytest.param("api.example.com", "api.example.com", id="ok/ascii-unchanged"),
    ],
)
def test_normalize_dns_name(value: str, expected: str) -> None:
    assert normalize_dns_name(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param("sn☃w.example", "U+2603", id="fail/symbol-disallowed"),
        pytest.param("a\u200db.example", "U+200D", id="fail/joiner-out-of-context"),
        pytest.param("\u0660\u06f0.example", "U+0660", id="fail/mixed-arabic-digits"),
        pytest.param("x" * 60 + "ß.example", "too long", id="fail/label-too-long"),
        pytest.param("bad_label.example", None, id="fail/ascii-syntax"),
        pytest.param("\uff26\uff21\u00df.example", "U+FF26", id="fail/full-width-refused"),
    ],
)
def test_invalid_dns_names_say_why(value: str, reason: str | None) -> None:
    with pytest.raises(ValueError, match="invalid DNS name") as caught:
        normalize_dns_name(value)

    assert reason is None or reason in str(caught.value)


def test_a_bad_label_is_an_error_on_the_san_value() -> None:
    with pytest.raises(ValidationError) as caught:
        San.model_validate({"type": "dns", "value": "sn☃w.example.com"})

    [error] = caught.value.errors()
    assert error["loc"] == ("value",)
    assert "U+2603" in error["msg"]


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        pytest.param("faß.example", True, id="ok/u-label"),
        pytest.param("xn--fa-hia.example", True, id="ok/a-label"),
        pytest.param("fass.example", False, id="fail/ss-is-another-domain"),
    ],
)
def test_policy_patterns_use_the_same_conversion(value: str, allowed: bool) -> None:
    rule = DnsSanRule(allowed=["faß.example"])

    refused = rule.refusals(San(type="dns", value=value).value, "the policy")

    assert (refused == []) is allowed

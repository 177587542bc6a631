"""The console's translation of form text into API bodies, and of times into words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from certforge.api.ui import display, forms

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param("www.example.com", ("dns", "www.example.com"), id="ok/bare-dns"),
        pytest.param("10.1.2.3", ("ip", "10.1.2.3"), id="ok/bare-ipv4"),
        pytest.param("2001:db8::1", ("ip", "2001:db8::1"), id="ok/bare-ipv6"),
        pytest.param("ops@example.com", ("email", "ops@example.com"), id="ok/bare-email"),
        pytest.param("spiffe://example/web", ("uri", "spiffe://example/web"), id="ok/bare-uri"),
        pytest.param("DNS: api.example.com", ("dns", "api.example.com"), id="ok/prefixed"),
        pytest.param("uri:https://x.example", ("uri", "https://x.example"), id="ok/uri-prefix"),
    ],
)
def test_a_san_line_becomes_a_typed_san(line: str, expected: tuple[str, str]) -> None:
    assert forms.san_of(line) == {"type": expected[0], "value": expected[1]}


def test_sans_one_per_line_or_comma_separated() -> None:
    assert forms.sans_of("a.example.com, b.example.com\n\n10.0.0.1\n") == [
        {"type": "dns", "value": "a.example.com"},
        {"type": "dns", "value": "b.example.com"},
        {"type": "ip", "value": "10.0.0.1"},
    ]


def test_metadata_lines_become_tags_and_a_bare_word_is_refused_on_its_field() -> None:
    assert forms.metadata_of("team=web\nenv = prod") == {"team": "web", "env": "prod"}
    with pytest.raises(forms.FormError) as refused:
        forms.metadata_of("team")
    assert refused.value.field == "metadata"


def test_a_csr_request_sends_only_what_a_csr_request_may_carry() -> None:
    body = forms.certificate_request(
        {"profile": "web", "method": "csr", "csr": "PEM", "common_name": "x", "ttl": "7d"}
    )
    assert body == {"profile": "web", "method": "csr", "csr": "PEM", "ttl": "7d"}


def test_a_managed_request_leaves_empty_fields_to_the_profile_defaults() -> None:
    body = forms.certificate_request(
        {"profile": "web", "method": "managed", "common_name": "a.example.com", "ttl": " "}
    )
    assert body == {"profile": "web", "method": "managed", "common_name": "a.example.com"}


def test_configure_keeps_a_non_number_for_the_api_to_refuse() -> None:
    body = forms.api_enrollment({"api_enabled": "on", "renew_before_days": "soon"})
    assert body == {"api": {"enabled": True, "auto_renew": False, "renew_before_days": "soon"}}


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        pytest.param(timedelta(days=12, hours=3), "in 12 days", id="days-ahead"),
        pytest.param(-timedelta(hours=3), "3 hours ago", id="hours-ago"),
        pytest.param(timedelta(minutes=1), "in 1 minute", id="one-minute"),
        pytest.param(timedelta(seconds=20), "just now", id="now"),
        pytest.param(timedelta(days=400), "in 1 year", id="year"),
    ],
)
def test_relative_hints(delta: timedelta, text: str) -> None:
    assert display.relative(NOW + delta, NOW) == text


def test_what_stands_out_about_a_certificate() -> None:
    def cert(**kw: object) -> dict[str, object]:
        base = {
            "status": "active",
            "not_after": (NOW + timedelta(days=30)).isoformat(),
            "renew_at": (NOW + timedelta(days=10)).isoformat(),
        }
        return {**base, **kw}

    assert display.certificate_state(cert(), NOW) == "ok"
    assert display.certificate_state(cert(renew_at=NOW.isoformat()), NOW) == "expiring"
    assert display.certificate_state(cert(renewal_error="CA disabled"), NOW) == "failing"
    assert display.certificate_state(cert(not_after=NOW.isoformat()), NOW) == "expired"
    assert display.certificate_state(cert(status="revoked", not_after=NOW.isoformat()), NOW) == "ok"


def test_an_alert_form_becomes_one_rule_with_one_channel() -> None:
    email = forms.alert_rule(
        {
            "name": "n",
            "event": "expiring",
            "before": "14d",
            "channel_type": "email",
            "target": "a@example.com, b@example.com",
        }
    )
    assert email == {
        "name": "n",
        "event": "expiring",
        "before": "14d",
        "channels": [{"type": "email", "to": ["a@example.com", "b@example.com"]}],
    }
    hook = forms.alert_rule(
        {
            "name": "n",
            "event": "issued",
            "channel_type": "webhook",
            "target": "https://h",
            "secret": "whsec_x",
        }
    )
    assert hook["channels"] == [{"type": "webhook", "url": "https://h", "secret": "whsec_x"}]

"""The alert rule models and rules of `certforge.common.alerts` (pure, what the api validates
with) and the notifier's event matching (pure, `certforge.notifier.matching`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from certforge.common.alerts import (
    SECRET_FIELDS,
    SMTP_NOT_CONFIGURED,
    AlertEvent,
    AlertFilters,
    parse_channel,
    parse_channels,
    rule_errors,
    split_channel,
)
from certforge.common.contracts.events import (
    CertificateExpiring,
    CertificateIssued,
    CertificateRenewalFailed,
    CertificateRenewed,
    CertificateRevoked,
    RequestFailed,
    SyncFailed,
)
from certforge.notifier.matching import (
    dedup_key,
    expiry_window_key,
    names_of,
    occurrence,
    resolves,
)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEY = "R0UT1NGKEY0000000000000000000000"


@pytest.mark.parametrize(
    ("filters", "profile", "names", "tags", "expected"),
    [
        pytest.param({}, "web", ["a.example.com"], {}, True, id="ok/no-filters"),
        pytest.param({"profiles": ["web"]}, "web", [], {}, True, id="ok/profile"),
        pytest.param({"profiles": ["db"]}, "web", [], {}, False, id="fail/other-profile"),
        pytest.param({"profiles": []}, "web", [], {}, False, id="fail/no-profile-allowed"),
        pytest.param(
            {"name": "*.shop.example.com"},
            None,
            ["x", "api.shop.example.com"],
            {},
            True,
            id="ok/one-san-matches",
        ),
        pytest.param(
            {"name": "*.shop.example.com"},
            None,
            ["shop.example.com"],
            {},
            False,
            id="fail/apex-not-covered",
        ),
        pytest.param(
            {"name": "API.EXAMPLE.COM"},
            None,
            ["api.example.com"],
            {},
            True,
            id="ok/case-insensitive",
        ),
        pytest.param({"name": "api.example.com"}, None, [], {}, False, id="fail/no-names"),
        pytest.param(
            {"tags": {"team": "pay"}}, None, [], {"team": "pay", "x": "y"}, True, id="ok/tags"
        ),
        pytest.param(
            {"tags": {"team": "pay"}}, None, [], {"team": "web"}, False, id="fail/tag-value"
        ),
        pytest.param({"tags": {"team": "pay"}}, None, [], {}, False, id="fail/tag-missing"),
    ],
)
def test_filters_match(
    filters: dict[str, Any],
    profile: str | None,
    names: list[str],
    tags: dict[str, str],
    expected: bool,
) -> None:
    assert AlertFilters.model_validate(filters).matches(profile, names, tags) is expected


@pytest.mark.parametrize(
    "filters",
    [
        pytest.param({"name": ""}, id="fail/empty-name"),
        pytest.param({"name": "a\x00b"}, id="fail/control-character"),
        pytest.param({"name": "x" * 254}, id="fail/too-long"),
        pytest.param({"owner": "x"}, id="fail/unknown-key"),
        pytest.param({"tags": {"a": 1}}, id="fail/tag-not-text"),
    ],
)
def test_filters_that_do_not_parse(filters: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AlertFilters.model_validate(filters)


def test_secrets_are_split_from_settings_for_every_channel_type() -> None:
    cases = {
        "webhook": {"type": "webhook", "url": "https://h.example/x", "secret": SECRET},
        "slack": {"type": "slack", "url": "https://hooks.slack.example/T/B/c"},
        "pagerduty": {"type": "pagerduty", "routing_key": KEY},
        "email": {"type": "email", "to": ["a@example.com"]},
    }
    assert set(cases) == set(SECRET_FIELDS)
    for kind, body in cases.items():
        settings, secrets = split_channel(parse_channel(body))
        assert set(secrets) == set(SECRET_FIELDS[kind])
        for name in SECRET_FIELDS[kind]:
            assert name not in settings
            assert str(body[name]) in secrets[name]
        assert settings["type"] == kind
        # Settings and secrets together are the channel again (what the notifier rebuilds).
        assert parse_channel({**settings, **secrets}) == parse_channel(body)


def test_a_webhook_secret_is_normalised_to_its_whsec_form() -> None:
    bare = SECRET.removeprefix("whsec_")
    channel = parse_channel({"type": "webhook", "url": "https://h.example", "secret": bare})
    assert channel.secret.get_secret_value() == SECRET
    assert bare not in repr(channel)


def test_channel_errors_name_the_field_without_the_union_member() -> None:
    _, errors = parse_channels(
        [
            {"type": "slack", "url": "https://ok.example"},
            {"type": "webhook", "url": "nope", "secret": "bad"},
            {"type": "carrier-pigeon"},
            {"to": ["a@example.com"]},
            {"type": "email", "to": ["a@example.com", "b@"]},
        ]
    )
    fields = [e.field for e in errors]
    assert fields == [
        "channels.1.url",
        "channels.1.secret",
        "channels.2.type",
        "channels.3.type",
        "channels.4.to.1",
    ]


def _rule_fields(
    event: AlertEvent,
    before: object,
    filters: dict[str, Any],
    channels: list[dict[str, Any]],
    *,
    development: bool = False,
    smtp: bool | None = None,
) -> list[str]:
    parsed, errors = parse_channels(channels)
    assert errors == []
    found = rule_errors(
        event,
        before,
        AlertFilters.model_validate(filters),
        parsed,
        development=development,
        smtp_configured=smtp,
    )
    return [e.field for e in found]


SLACK_HTTP = {"type": "slack", "url": "http://chat.example/hook"}
HOOK_HTTP = {"type": "webhook", "url": "http://h.example/x", "secret": SECRET}
EMAIL = {"type": "email", "to": ["a@example.com"]}


def test_rule_errors() -> None:
    week = timedelta(days=7)
    assert _rule_fields(AlertEvent.EXPIRING, week, {}, [EMAIL], smtp=True) == []
    assert _rule_fields(AlertEvent.EXPIRING, None, {}, [EMAIL], smtp=True) == ["before"]
    assert _rule_fields(AlertEvent.CA_EXPIRING, None, {}, [EMAIL], smtp=True) == ["before"]
    assert _rule_fields(AlertEvent.ISSUED, week, {}, [EMAIL], smtp=True) == ["before"]
    assert _rule_fields(AlertEvent.CA_EXPIRING, week, {"tags": {"a": "b"}}, [EMAIL], smtp=True) == [
        "filters.tags"
    ]
    # https outside development only; every channel judged, every problem at once.
    assert _rule_fields(
        AlertEvent.ISSUED, None, {}, [EMAIL, SLACK_HTTP, HOOK_HTTP], smtp=False
    ) == ["channels.0.type", "channels.1.url", "channels.2.url"]
    assert (
        _rule_fields(AlertEvent.ISSUED, None, {}, [SLACK_HTTP, HOOK_HTTP], development=True) == []
    )


def test_smtp_refusal_says_what_to_configure() -> None:
    parsed, _ = parse_channels([EMAIL])
    [error] = rule_errors(
        AlertEvent.ISSUED, None, AlertFilters(), parsed, development=True, smtp_configured=False
    )
    assert error.message == SMTP_NOT_CONFIGURED
    assert "CERTFORGE_NOTIFIER__SMTP__HOST" in error.message


# --- the notifier's matching ---------------------------------------------------------------------


def _envelope(model: Any, **data: Any) -> dict[str, Any]:
    return {
        "id": str(uuid4()),
        "type": model.event_type,
        "data": {k: str(v) for k, v in data.items()},
    }


def test_events_become_occurrences_with_their_window() -> None:
    app, cert, request, sync = uuid4(), uuid4(), uuid4(), uuid4()
    issued = occurrence(_envelope(CertificateIssued, application_id=app, certificate_id=cert))
    assert issued is not None
    assert (issued.event, issued.subject_id, issued.window_key) == (
        AlertEvent.ISSUED,
        cert,
        "issued",
    )
    revoked = occurrence(
        _envelope(CertificateRevoked, application_id=app, certificate_id=cert, reason="superseded")
    )
    assert revoked is not None
    assert (revoked.window_key, revoked.detail) == ("revoked", "superseded")
    failed = occurrence(
        _envelope(
            CertificateRenewalFailed,
            application_id=app,
            certificate_id=cert,
            request_id=request,
            attempts=3,
            reason="CA disabled",
        )
    )
    assert failed is not None
    assert failed.window_key == f"renewal_failed:{request}:3"
    envelope = _envelope(
        SyncFailed,
        application_id=app,
        certificate_id=cert,
        sync_id=sync,
        sync="vault",
        kind="vault-kv",
        error="403",
    )
    synced = occurrence(envelope)
    assert synced is not None
    assert synced.window_key == f"sync_failed:{sync}:{envelope['id']}"
    assert synced.detail == "to vault (vault-kv): 403"
    request_failed = occurrence(
        _envelope(RequestFailed, application_id=app, request_id=request, reason="policy")
    )
    assert request_failed is not None
    assert (request_failed.subject_kind, request_failed.subject_id) == ("request", request)
    # The renewer's fixed thresholds are not alerts: the notifier scans its rules' own windows.
    assert (
        occurrence(_envelope(CertificateExpiring, application_id=app, certificate_id=cert)) is None
    )


def test_renewals_and_revocations_resolve_the_old_certificates_incidents() -> None:
    app, old, new = uuid4(), uuid4(), uuid4()
    renewed = _envelope(
        CertificateRenewed, application_id=app, certificate_id=new, renewed_from_id=old
    )
    assert resolves(renewed) == old
    assert resolves(_envelope(CertificateRevoked, application_id=app, certificate_id=old)) == old
    assert resolves(_envelope(CertificateIssued, application_id=app, certificate_id=new)) is None


def test_malformed_envelopes_raise_for_the_consumer_to_terminate() -> None:
    with pytest.raises((KeyError, ValueError, TypeError)):
        occurrence({"type": CertificateIssued.event_type, "data": {"application_id": "x"}})


def test_keys_and_names() -> None:
    rule, cert = uuid4(), uuid4()
    assert expiry_window_key(AlertEvent.EXPIRING, timedelta(days=7)) == "expiring:604800"
    assert expiry_window_key(AlertEvent.CA_EXPIRING, timedelta(days=30)) == "ca_expiring:2592000"
    assert dedup_key(rule, cert, "expiring:604800") == f"certforge/{rule}/{cert}/expiring:604800"
    assert names_of("a.example.com", [{"type": "dns", "value": "b.example.com"}, "junk"]) == [
        "a.example.com",
        "b.example.com",
    ]
    assert names_of(None, []) == []


def test_a_rule_ignores_events_from_before_it_existed() -> None:
    from datetime import UTC, datetime

    from certforge.notifier.matching import happened_before

    created = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    envelope = _envelope(CertificateIssued, application_id=uuid4(), certificate_id=uuid4())
    for time, before in (("2026-12-02T11:59:59+00:00", True), ("2026-12-02T12:00:01Z", False)):
        found = occurrence({**envelope, "time": time})
        assert found is not None
        assert happened_before(found, created) is before
    untimed = occurrence(envelope)
    assert untimed is not None
    assert happened_before(untimed, created) is False

"""Renewal rules, pure: when a certificate is due, and what its successor's validity is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from certforge.common.crypto.certificates import build_certificate, key_identifier, new_serial
from certforge.common.crypto.keys import generate_private_key
from certforge.common.domain import (
    ExtendedKeyUsage,
    KeyAlgorithm,
    KeyUsage,
    SanType,
    SubjectFields,
)
from certforge.common.errors import Unprocessable
from certforge.common.issuance import (
    IssuingCA,
    fitted_renew_before_days,
    renew_at,
    renewal_template,
)
from certforge.common.template import CertificateTemplate, San

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CA_NAME = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Test CA")])


def _leaf(validity: timedelta, start: datetime = NOW) -> x509.Certificate:
    ca_key = generate_private_key(KeyAlgorithm.EC_P256)
    template = CertificateTemplate(
        subject=SubjectFields(common_name="svc.example.com"),
        sans=[San(type=SanType.DNS, value="svc.example.com")],
        key_algorithm=KeyAlgorithm.EC_P256,
        key_usages=[KeyUsage.DIGITAL_SIGNATURE],
        extended_key_usages=[ExtendedKeyUsage.SERVER_AUTH],
        not_before=start,
        not_after=start + validity,
    )
    leaf_key = generate_private_key(KeyAlgorithm.EC_P256)
    return build_certificate(
        template,
        leaf_key.public_key(),
        CA_NAME,
        ca_key,
        key_identifier(ca_key.public_key()),
        new_serial(),
    )


def _ca(not_after: datetime) -> IssuingCA:
    return IssuingCA("test-ca", KeyAlgorithm.EC_P256, not_after)


@pytest.mark.parametrize(
    ("validity", "days", "window"),
    [
        pytest.param(timedelta(days=90), 30, timedelta(days=30), id="ok/days-fit"),
        pytest.param(timedelta(days=30), 29, timedelta(days=10), id="ok/capped-to-a-third"),
        pytest.param(timedelta(seconds=30), 10, timedelta(seconds=10), id="ok/short-lived"),
    ],
)
def test_renew_at_is_never_in_the_first_two_thirds(
    validity: timedelta, days: int, window: timedelta
) -> None:
    assert renew_at(NOW, NOW + validity, days) == NOW + validity - window


@pytest.mark.parametrize(
    ("days", "validity", "fitted"),
    [
        pytest.param(10, timedelta(days=30), 10, id="ok/fits"),
        pytest.param(25, timedelta(days=20), 19, id="ok/shrinks"),
        pytest.param(10, timedelta(days=9, hours=23), 8, id="ok/partial-day"),
        pytest.param(10, timedelta(hours=12), 1, id="ok/at-least-one"),
    ],
)
def test_fitted_renew_before_days(days: int, validity: timedelta, fitted: int) -> None:
    assert fitted_renew_before_days(days, validity) == fitted


def test_successor_keeps_a_short_validity() -> None:
    """A 30-second certificate renews as a 30-second certificate (it used to be refused as if
    its CA were expiring)."""
    old = _leaf(timedelta(seconds=30))
    later = NOW + timedelta(seconds=20)
    template = renewal_template(
        old, KeyAlgorithm.EC_P256, None, _ca(NOW + timedelta(days=365)), later
    )
    assert template.not_before == later
    assert template.not_after - template.not_before == timedelta(seconds=30)


def test_successor_capped_by_policy_then_by_ca() -> None:
    old = _leaf(timedelta(days=30))
    ca = _ca(NOW + timedelta(days=365))
    capped = renewal_template(old, KeyAlgorithm.EC_P256, timedelta(days=20), ca, NOW)
    assert capped.not_after - capped.not_before == timedelta(days=20)
    ca_end = NOW + timedelta(days=12)
    shortened = renewal_template(old, KeyAlgorithm.EC_P256, None, _ca(ca_end), NOW)
    assert shortened.not_after == ca_end


def test_successor_refused_when_the_ca_expires_within_a_minute() -> None:
    old = _leaf(timedelta(days=30))
    with pytest.raises(Unprocessable) as raised:
        renewal_template(old, KeyAlgorithm.EC_P256, None, _ca(NOW + timedelta(seconds=59)), NOW)
    assert [e.field for e in raised.value.errors] == ["ca"]

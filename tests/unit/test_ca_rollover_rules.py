"""The pure rules of CA rollover (`common/ca_rollover.py`): which roots a trust bundle holds,
reproducing a CA's subject, and when a successor may take over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from certforge.common.ca_rollover import (
    BundleCA,
    BundleCross,
    check_take_over,
    subject_fields_of,
    trust_bundle,
)
from certforge.common.db.tables import CertificateAuthority
from certforge.common.errors import Conflict, Unprocessable

NOW = datetime(2027, 1, 1, tzinfo=UTC)
LATER = NOW + timedelta(days=3650)


def _ca(
    name: str,
    *,
    type: str = "root",
    parent: BundleCA | None = None,
    predecessor: BundleCA | None = None,
    not_after: datetime = LATER,
    chain_pem: str = "",
) -> BundleCA:
    return BundleCA(
        id=uuid4(),
        type=type if parent is None else "intermediate",
        parent_id=parent.id if parent else None,
        predecessor_id=predecessor.id if predecessor else None,
        not_after=not_after,
        certificate_pem=f"<{name}>",
        chain_pem=chain_pem,
    )


def _bundle(ca: BundleCA, *cas: BundleCA, crosses: tuple[BundleCross, ...] = ()) -> list[str]:
    return trust_bundle(ca.id, {c.id: c for c in (ca, *cas)}, crosses, NOW)


def test_an_intermediate_trusts_its_root() -> None:
    root = _ca("root")
    issuing = _ca("issuing", parent=root)
    assert _bundle(issuing, root) == ["<root>"]
    assert _bundle(root) == ["<root>"]


def test_a_root_rollover_adds_the_new_root_until_the_old_one_expires() -> None:
    old = _ca("old-root")
    new = _ca("new-root", predecessor=old)
    issuing = _ca("issuing", parent=old)
    assert _bundle(issuing, old, new) == ["<old-root>", "<new-root>"]
    assert _bundle(new, old, issuing) == ["<new-root>", "<old-root>"]
    expired = _ca("old-root", not_after=NOW)
    newer = _ca("new-root", predecessor=expired)
    assert _bundle(newer, expired) == ["<new-root>"]


def test_a_cross_signer_adds_its_root_while_the_cross_certificate_is_valid() -> None:
    root, other = _ca("root"), _ca("other-root")
    signer = _ca("other-issuing", parent=other)
    issuing = _ca("issuing", parent=root)
    valid = BundleCross(issuing.id, signer.id, LATER)
    assert _bundle(issuing, root, other, signer, crosses=(valid,)) == ["<root>", "<other-root>"]
    gone = BundleCross(issuing.id, signer.id, NOW)
    assert _bundle(issuing, root, other, signer, crosses=(gone,)) == ["<root>"]


def test_an_unknown_ca_has_an_empty_bundle() -> None:
    assert trust_bundle(UUID(int=1), {}, (), NOW) == []


def _name(*pairs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


def test_subject_fields_rebuild_the_name() -> None:
    fields = subject_fields_of(
        _name(
            (NameOID.COUNTRY_NAME, "DE"),
            (NameOID.ORGANIZATION_NAME, "Example"),
            (NameOID.COMMON_NAME, "Issuing CA"),
        )
    )
    assert fields.present() == {
        "country": "DE",
        "organization": "Example",
        "common_name": "Issuing CA",
    }


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(_name((NameOID.DOMAIN_COMPONENT, "example")), id="fail/unknown-attribute"),
        pytest.param(
            _name((NameOID.ORGANIZATIONAL_UNIT_NAME, "a"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "b")),
            id="fail/repeated-attribute",
        ),
    ],
)
def test_subjects_that_cannot_be_rebuilt_are_refused(name: x509.Name) -> None:
    with pytest.raises(Unprocessable) as raised:
        subject_fields_of(name)
    assert raised.value.errors[0].field == "ca_id"


def _successor(**fields: object) -> CertificateAuthority:
    values: dict[str, object] = {
        "predecessor_id": uuid4(),
        "status": "active",
        "not_before": NOW - timedelta(days=1),
        "not_after": LATER,
        "took_over_at": None,
    }
    values.update(fields)
    return CertificateAuthority(**values)


@pytest.mark.parametrize(
    ("fields", "at", "error", "field"),
    [
        pytest.param({}, NOW, None, None, id="ok/now"),
        pytest.param({}, NOW + timedelta(days=30), None, None, id="ok/scheduled"),
        pytest.param(
            {"not_before": NOW + timedelta(days=2)},
            NOW + timedelta(days=3),
            None,
            None,
            id="ok/scheduled-once-valid",
        ),
        pytest.param(
            {"predecessor_id": None}, NOW, Unprocessable, "ca_id", id="fail/no-predecessor"
        ),
        pytest.param({"took_over_at": NOW}, NOW, Conflict, "ca_id", id="fail/twice"),
        pytest.param({"status": "disabled"}, NOW, Unprocessable, "ca_id", id="fail/disabled"),
        pytest.param({}, LATER, Unprocessable, "at", id="fail/after-expiry"),
        pytest.param(
            {"not_before": NOW + timedelta(days=2)},
            NOW,
            Unprocessable,
            "at",
            id="fail/not-yet-valid",
        ),
    ],
)
def test_take_over_rules(
    fields: dict[str, object], at: datetime, error: type[Exception] | None, field: str | None
) -> None:
    successor = _successor(**fields)
    if error is None:
        check_take_over(successor, at, NOW)
        return
    with pytest.raises(error) as raised:
        check_take_over(successor, at, NOW)
    assert raised.value.errors[0].field == field  # type: ignore[attr-defined]

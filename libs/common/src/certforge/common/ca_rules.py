"""Rules for creating a CA under a parent, shared by the api (early 422) and the issuer (the
authority). Pure: the clock is a parameter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from certforge.common.db.tables import CertificateAuthority
from certforge.common.domain import CAStatus, KeyAlgorithm, SignatureHash
from certforge.common.errors import FieldError, Unprocessable
from certforge.common.name_constraint_rules import name_constraint_errors
from certforge.common.name_constraints import NameConstraints, chain_constraints

# The dates an X.509 certificate can carry (RFC 5280 4.1.2.5).
_EARLIEST = datetime(1950, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 12, 31, tzinfo=UTC)


@dataclass(frozen=True)
class ParentFacts:
    id: UUID
    name: str
    status: str
    max_path_length: int | None
    not_before: datetime
    not_after: datetime
    key_algorithm: KeyAlgorithm
    name_constraints: tuple[NameConstraints, ...] = ()
    """its own and those of the CAs above it: a child's must lie inside each"""

    @classmethod
    def of(cls, ca: CertificateAuthority) -> ParentFacts:
        return cls(
            id=ca.id,
            name=ca.name,
            status=ca.status,
            max_path_length=ca.max_path_length,
            not_before=ca.not_before,
            not_after=ca.not_after,
            key_algorithm=KeyAlgorithm(ca.key_algorithm),
            name_constraints=chain_constraints(ca.name_constraints, ca.chain_name_constraints),
        )


@dataclass(frozen=True)
class CAWindow:
    not_before: datetime
    not_after: datetime
    max_path_length: int | None


def plan_ca(
    *,
    parent: ParentFacts | None,
    validity: timedelta,
    max_path_length: int | None,
    not_before: datetime | None,
    signature_hash: SignatureHash | None,
    now: datetime,
    name_constraints: NameConstraints | None = None,
) -> CAWindow:
    """Validity window and effective path length of a new CA, or every reason it cannot be."""
    start = not_before or now
    if start < _EARLIEST:
        raise Unprocessable.on_field("not_before", "must not be before 1950 (RFC 5280 UTCTime)")
    try:
        end = start + validity
    except OverflowError:
        end = datetime.max.replace(tzinfo=start.tzinfo)
    if end >= _LATEST:
        raise Unprocessable.on_field("validity", "would end after the year 9999")
    errors: list[FieldError] = []
    signer_alg = parent.key_algorithm if parent else None
    effective_path = max_path_length
    if parent is not None:
        if parent.status != CAStatus.ACTIVE:
            errors.append(FieldError("parent_ca_id", f"parent CA {parent.name!r} is disabled"))
        if parent.max_path_length is not None:
            if parent.max_path_length < 1:
                errors.append(
                    FieldError(
                        "parent_ca_id",
                        f"parent CA {parent.name!r} has path length 0: it may not sign CAs",
                    )
                )
            elif max_path_length is None:
                effective_path = parent.max_path_length - 1
            elif max_path_length > parent.max_path_length - 1:
                errors.append(
                    FieldError(
                        "max_path_length",
                        f"must be at most {parent.max_path_length - 1} under {parent.name!r}",
                    )
                )
        if end > parent.not_after:
            errors.append(
                FieldError(
                    "validity",
                    f"would end {end:%Y-%m-%d}, after parent CA {parent.name!r} expires "
                    f"({parent.not_after:%Y-%m-%d})",
                )
            )
        if start < parent.not_before:
            errors.append(FieldError("not_before", "is before the parent CA's validity starts"))
    if signature_hash is not None and signer_alg is KeyAlgorithm.ED25519:
        errors.append(
            FieldError("signature_algorithm", "an Ed25519 signer takes no signature algorithm")
        )
    errors += name_constraint_errors(
        name_constraints,
        parent.name_constraints if parent else (),
        parent_name=parent.name if parent else None,
    )
    if errors:
        raise Unprocessable(
            detail="; ".join(f"{e.field}: {e.message}" for e in errors), errors=errors
        )
    return CAWindow(not_before=start, not_after=end, max_path_length=effective_path)

"""acme: enrollment settings, EAB keys, accounts, orders, authorizations, challenges, nonces

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 11:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TZ = sa.DateTime(timezone=True)


def _jsonb(name: str, default: str, *, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        name,
        postgresql.JSONB(astext_type=sa.Text()),
        server_default=None if nullable else sa.text(f"'{default}'"),
        nullable=nullable,
    )


def _stamps() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
    ]


def upgrade() -> None:
    op.add_column(
        "application_profiles",
        sa.Column("acme_eab_required", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "application_profiles",
        _jsonb("acme_challenge_types", '["http-01", "dns-01", "tls-alpn-01"]'),
    )
    op.add_column(
        "application_profiles",
        sa.Column("acme_renew_before_days", sa.Integer(), server_default="30", nullable=False),
    )
    op.add_column(
        "application_profiles",
        sa.Column("acme_terms_of_service", sa.String(length=2048), nullable=True),
    )
    op.add_column(
        "application_profiles", sa.Column("acme_website", sa.String(length=2048), nullable=True)
    )
    op.add_column("certificates", sa.Column("early_renewal_requested_at", _TZ, nullable=True))
    op.add_column(
        "certificate_authorities", sa.Column("early_renewal_requested_at", _TZ, nullable=True)
    )

    op.create_table(
        "acme_eab_keys",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column(
            "application_id",
            sa.Uuid(),
            sa.ForeignKey("applications.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "profile_id",
            sa.Uuid(),
            sa.ForeignKey("profiles.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("encrypted_hmac_key", sa.LargeBinary(), nullable=False),
        sa.Column("key_kek_id", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("revoked_at", _TZ, nullable=True),
        sa.Column("account_id", sa.Uuid(), nullable=True),
        sa.Column("bound_at", _TZ, nullable=True),
    )
    op.create_index("ix_acme_eab_keys_application_id", "acme_eab_keys", ["application_id"])

    op.create_table(
        "acme_accounts",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "application_id",
            sa.Uuid(),
            sa.ForeignKey("applications.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "profile_id",
            sa.Uuid(),
            sa.ForeignKey("profiles.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        _jsonb("jwk", "{}"),
        sa.Column("jwk_thumbprint", sa.String(length=64), nullable=False),
        _jsonb("contact", "[]"),
        sa.Column("eab_key_id", sa.String(length=64), nullable=True),
        sa.Column("terms_agreed", sa.Boolean(), nullable=False),
        *_stamps(),
        sa.UniqueConstraint(
            "application_id", "profile_id", "jwk_thumbprint", name="uq_acme_account_key"
        ),
    )
    op.create_index("ix_acme_accounts_profile_id", "acme_accounts", ["profile_id"])

    op.create_table(
        "acme_orders",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "account_id",
            sa.Uuid(),
            sa.ForeignKey("acme_accounts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "application_id",
            sa.Uuid(),
            sa.ForeignKey("applications.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "profile_id",
            sa.Uuid(),
            sa.ForeignKey("profiles.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        _jsonb("identifiers", "[]"),
        sa.Column("expires_at", _TZ, nullable=False),
        _jsonb("error", "", nullable=True),
        sa.Column(
            "request_id",
            sa.Uuid(),
            sa.ForeignKey("certificate_requests.id", ondelete="RESTRICT"),
            nullable=True,
        ),
        sa.Column("certificate_id", sa.Uuid(), nullable=True),
        sa.Column("replaces", sa.String(length=255), nullable=True),
        *_stamps(),
    )
    op.create_index("ix_acme_orders_account", "acme_orders", ["account_id", "created_at"])
    op.create_index("ix_acme_orders_status", "acme_orders", ["status"])

    op.create_table(
        "acme_authorizations",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "order_id",
            sa.Uuid(),
            sa.ForeignKey("acme_orders.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "account_id",
            sa.Uuid(),
            sa.ForeignKey("acme_accounts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("identifier_type", sa.String(length=8), nullable=False),
        sa.Column("identifier_value", sa.String(length=253), nullable=False),
        sa.Column("wildcard", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expires_at", _TZ, nullable=False),
        *_stamps(),
    )
    op.create_index("ix_acme_authorizations_order_id", "acme_authorizations", ["order_id"])

    op.create_table(
        "acme_challenges",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "authorization_id",
            sa.Uuid(),
            sa.ForeignKey("acme_authorizations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _jsonb("error", "", nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("validated_at", _TZ, nullable=True),
        *_stamps(),
    )
    op.create_index("ix_acme_challenges_authorization_id", "acme_challenges", ["authorization_id"])

    op.create_table(
        "acme_nonces",
        sa.Column("value", sa.String(length=64), primary_key=True),
        sa.Column("expires_at", _TZ, nullable=False),
    )
    op.create_index("ix_acme_nonces_expires_at", "acme_nonces", ["expires_at"])


def downgrade() -> None:
    for table in (
        "acme_nonces",
        "acme_challenges",
        "acme_authorizations",
        "acme_orders",
        "acme_accounts",
        "acme_eab_keys",
    ):
        op.drop_table(table)
    op.drop_column("certificate_authorities", "early_renewal_requested_at")
    op.drop_column("certificates", "early_renewal_requested_at")
    for column in (
        "acme_website",
        "acme_terms_of_service",
        "acme_renew_before_days",
        "acme_challenge_types",
        "acme_eab_required",
    ):
        op.drop_column("application_profiles", column)

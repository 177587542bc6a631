"""alerts: rules, firings (one alert per subject, rule and window), deliveries

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 11:29:27.870437
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("application_id", sa.Uuid(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("event", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("before_seconds", sa.Integer(), nullable=True),
        sa.Column(
            "filters",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column(
            "channels",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'"),
            nullable=False,
        ),
        sa.Column("encrypted_secrets", sa.LargeBinary(), nullable=True),
        sa.Column("secrets_kek_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("digest", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["application_id"], ["applications.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("application_id", "name", name="uq_alert_rule_name"),
    )
    op.create_index(
        op.f("ix_alert_rules_application_id"), "alert_rules", ["application_id"], unique=False
    )
    op.create_index(
        "ix_alert_rules_enabled_event",
        "alert_rules",
        ["event"],
        unique=False,
        postgresql_where=sa.text("enabled"),
    )
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("rule_id", sa.Uuid(), nullable=False),
        sa.Column("application_id", sa.Uuid(), nullable=False),
        sa.Column("subject_kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("window_key", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("channel_type", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column(
            "payload",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("dedup_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("digest", sa.Boolean(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["rule_id"], ["alert_rules.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "rule_id", "subject_id", "window_key", "channel_id", "action", name="uq_alert_delivery"
        ),
    )
    op.create_index(
        "ix_alert_deliveries_due",
        "alert_deliveries",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_alert_deliveries_pagerduty",
        "alert_deliveries",
        ["subject_id"],
        unique=False,
        postgresql_where=sa.text("dedup_key IS NOT NULL"),
    )
    op.create_index(
        "ix_alert_deliveries_rule_created",
        "alert_deliveries",
        ["rule_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "alert_firings",
        sa.Column("rule_id", sa.Uuid(), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("window_key", sa.String(length=128), nullable=False),
        sa.Column("matched", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["rule_id"], ["alert_rules.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("rule_id", "subject_id", "window_key"),
    )


def downgrade() -> None:
    op.drop_table("alert_firings")
    op.drop_index("ix_alert_deliveries_rule_created", table_name="alert_deliveries")
    op.drop_index(
        "ix_alert_deliveries_pagerduty",
        table_name="alert_deliveries",
        postgresql_where=sa.text("dedup_key IS NOT NULL"),
    )
    op.drop_index(
        "ix_alert_deliveries_due",
        table_name="alert_deliveries",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_table("alert_deliveries")
    op.drop_index(
        "ix_alert_rules_enabled_event",
        table_name="alert_rules",
        postgresql_where=sa.text("enabled"),
    )
    op.drop_index(op.f("ix_alert_rules_application_id"), table_name="alert_rules")
    op.drop_table("alert_rules")

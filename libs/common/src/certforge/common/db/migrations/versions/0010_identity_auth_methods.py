"""identity auth methods (JWT login), certificate bindings (mTLS), used JWT ids, token kinds

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 12:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "identity_auth_methods",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("identity_id", sa.Uuid(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column(
            "config",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["identity_id"], ["identities.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("identity_id", "name", name="uq_auth_method_name"),
    )
    op.create_index(
        op.f("ix_identity_auth_methods_identity_id"),
        "identity_auth_methods",
        ["identity_id"],
        unique=False,
    )
    op.create_table(
        "used_jwt_ids",
        sa.Column("issuer", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("jti", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("issuer", "jti"),
    )
    op.create_index(
        op.f("ix_used_jwt_ids_expires_at"), "used_jwt_ids", ["expires_at"], unique=False
    )
    op.create_table(
        "identity_certificate_bindings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("identity_id", sa.Uuid(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("profile_id", sa.Uuid(), nullable=False),
        sa.Column("common_name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("san", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["identity_id"], ["identities.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["profile_id"], ["profiles.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("identity_id", "name", name="uq_cert_binding_name"),
    )
    op.create_index(
        op.f("ix_identity_certificate_bindings_identity_id"),
        "identity_certificate_bindings",
        ["identity_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_identity_certificate_bindings_profile_id"),
        "identity_certificate_bindings",
        ["profile_id"],
        unique=False,
    )
    op.add_column(
        "api_tokens",
        sa.Column(
            "kind",
            sqlmodel.sql.sqltypes.AutoString(length=16),
            server_default="static",
            nullable=False,
        ),
    )
    op.add_column("api_tokens", sa.Column("auth_method_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        "api_tokens_auth_method_id_fkey",
        "api_tokens",
        "identity_auth_methods",
        ["auth_method_id"],
        ["id"],
        ondelete="SET NULL",
    )


def downgrade() -> None:
    op.drop_constraint("api_tokens_auth_method_id_fkey", "api_tokens", type_="foreignkey")
    op.drop_column("api_tokens", "auth_method_id")
    op.drop_column("api_tokens", "kind")
    op.drop_table("identity_certificate_bindings")
    op.drop_index(op.f("ix_used_jwt_ids_expires_at"), table_name="used_jwt_ids")
    op.drop_table("used_jwt_ids")
    op.drop_index(op.f("ix_identity_auth_methods_identity_id"), table_name="identity_auth_methods")
    op.drop_table("identity_auth_methods")

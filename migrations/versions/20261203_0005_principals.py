"""Principals: every API token belongs to a person or a service account with a unique
name, the identity that approves and is audited.

Each existing token moves to a principal named as the token was (kind ``person``).
Tokens that shared a name, in any roles, share that principal: the name was already the
identity that approvals compared and audit events recorded, so merging them changes
nothing about who may approve what (docs/decisions/0013-principals-and-last-admin.md).

Downgrade writes each token's principal name into the token's name (the identity it
stood for before this revision) and drops the table.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "principals",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('person', 'service')", name=op.f("ck_principals_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_principals")),
        sa.UniqueConstraint("name", name=op.f("uq_principals_name")),
    )
    op.execute(
        "INSERT INTO principals (name, kind, created_by, created_at) "
        "SELECT name, 'person', 'migration 0005', MIN(created_at) FROM api_tokens GROUP BY name"
    )
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("principal_id", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE api_tokens SET principal_id = "
        "(SELECT principals.id FROM principals WHERE principals.name = api_tokens.name)"
    )
    with op.batch_alter_table("api_tokens") as batch:
        batch.alter_column("principal_id", existing_type=sa.BigInteger(), nullable=False)
        batch.create_foreign_key(
            op.f("fk_api_tokens_principal_id_principals"), "principals", ["principal_id"], ["id"]
        )
        batch.create_index(op.f("ix_api_tokens_principal_id"), ["principal_id"], unique=False)


def downgrade() -> None:
    op.execute(
        "UPDATE api_tokens SET name = "
        "(SELECT principals.name FROM principals WHERE principals.id = api_tokens.principal_id)"
    )
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_index(op.f("ix_api_tokens_principal_id"))
        batch.drop_constraint(op.f("fk_api_tokens_principal_id_principals"), type_="foreignkey")
        batch.drop_column("principal_id")
    op.drop_table("principals")

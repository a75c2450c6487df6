"""Promotion requests may move a protected alias instead of a stage.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column without a default: an ALTER TABLE ADD COLUMN on both databases.
    op.add_column("promotion_requests", sa.Column("target_alias", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("promotion_requests") as batch:
        batch.drop_column("target_alias")

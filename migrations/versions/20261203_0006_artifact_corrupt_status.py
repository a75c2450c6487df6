"""Artifacts can be found corrupt: a verification that saw the stored bytes altered.

``model_versions.artifact_corrupt_at`` is set while the stored bytes are known not to
match the recorded sha256 (a download, rollback or scrub found them altered, short or
missing; a later verification that finds them intact clears it), and the API reports
the artifact's status as ``corrupt`` meanwhile. ``artifact_checked_at`` and
``artifact_check`` keep the last verification: when, by which method, with what result.

New columns rather than a third ``artifact_status`` value: widening that CHECK
constraint would make SQLite rebuild ``model_versions``, which other tables reference.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(
            sa.Column("artifact_corrupt_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(
            sa.Column("artifact_checked_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("artifact_check", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("artifact_check")
        batch.drop_column("artifact_checked_at")
        batch.drop_column("artifact_corrupt_at")

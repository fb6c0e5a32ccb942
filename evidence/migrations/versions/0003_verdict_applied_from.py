"""verdict.applied_from_id: where a verdict applied across a canonical claim came from

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: SQLite adds a foreign key by rebuilding the table.
    with op.batch_alter_table("verdict") as batch:
        batch.add_column(sa.Column("applied_from_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_verdict_applied_from_id_verdict", "verdict",
                                 ["applied_from_id"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    with op.batch_alter_table("verdict") as batch:
        batch.drop_constraint("fk_verdict_applied_from_id_verdict", type_="foreignkey")
        batch.drop_column("applied_from_id")

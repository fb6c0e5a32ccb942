"""surveillance: re-opened claims (with reasons) and the ``surveillance`` link origin

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 05:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("claim", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reopen_reasons", sa.JSON(), nullable=False,
                                      server_default=sa.text("'[]'")))
        batch_op.add_column(sa.Column("reopened_at", sa.DateTime(timezone=True),
                                      nullable=True))
    # "surveillance" is 12 characters: the origin column was 10 wide.
    with op.batch_alter_table("evidence_link", schema=None) as batch_op:
        batch_op.alter_column("origin", existing_type=sqlmodel.sql.sqltypes.AutoString(10),
                              type_=sqlmodel.sql.sqltypes.AutoString(20),
                              existing_nullable=False)


def downgrade() -> None:
    op.execute("UPDATE evidence_link SET origin = 'manual' WHERE origin = 'surveillance'")
    with op.batch_alter_table("evidence_link", schema=None) as batch_op:
        batch_op.alter_column("origin", existing_type=sqlmodel.sql.sqltypes.AutoString(20),
                              type_=sqlmodel.sql.sqltypes.AutoString(10),
                              existing_nullable=False)
    op.execute("UPDATE claim SET status = 'final' WHERE status = 'reopened'")
    with op.batch_alter_table("claim", schema=None) as batch_op:
        batch_op.drop_column("reopened_at")
        batch_op.drop_column("reopen_reasons")

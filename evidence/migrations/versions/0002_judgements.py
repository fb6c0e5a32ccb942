"""judgements: stored study flags with reasons, citation flags, suggestion basis, claim sources

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 23:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flags", sa.JSON(), nullable=False,
                                      server_default=sa.text("'[]'")))
    _derive_study_flags()
    with op.batch_alter_table("citation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flags", sa.JSON(), nullable=False,
                                      server_default=sa.text("'[]'")))
    with op.batch_alter_table("claim", schema=None) as batch_op:
        batch_op.add_column(sa.Column("suggestion_basis",
                                      sqlmodel.sql.sqltypes.AutoString(length=20),
                                      nullable=False, server_default="metadata"))
    op.create_table(
        "claim_source",
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("claim_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("url", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.ForeignKeyConstraint(["claim_id"], ["claim.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("claim_source", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_claim_source_claim_id"), ["claim_id"],
                              unique=False)


def _derive_study_flags() -> None:
    """Store every existing study's flags, with reasons, from its own record fields."""
    from evidence.grading import study_flags

    study = sa.table("study", sa.column("id", sa.Integer), sa.column("flags", sa.JSON),
                     sa.column("publication_types", sa.JSON),
                     sa.column("comments_corrections", sa.JSON),
                     sa.column("languages", sa.JSON), sa.column("is_retracted", sa.Boolean),
                     sa.column("deleted", sa.Boolean))
    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(sa.select(study).where(study.c.id > last)
                            .order_by(study.c.id).limit(1000)).mappings().all()
        if not rows:
            break
        for row in rows:
            flags = study_flags(
                publication_types=row["publication_types"] or [],
                comments_corrections=[(str(c.get("ref_type", "")), c.get("pmid"))
                                      for c in row["comments_corrections"] or []],
                languages=row["languages"] or [], retracted=row["is_retracted"] or None,
                deleted=bool(row["deleted"]),
            )
            if flags:
                conn.execute(sa.update(study).where(study.c.id == row["id"]).values(
                    flags=[{"code": f.code, "reason": f.reason} for f in flags]))
        last = rows[-1]["id"]


def downgrade() -> None:
    with op.batch_alter_table("claim_source", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_claim_source_claim_id"))
    op.drop_table("claim_source")
    with op.batch_alter_table("claim", schema=None) as batch_op:
        batch_op.drop_column("suggestion_basis")
    with op.batch_alter_table("citation", schema=None) as batch_op:
        batch_op.drop_column("flags")
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.drop_column("flags")

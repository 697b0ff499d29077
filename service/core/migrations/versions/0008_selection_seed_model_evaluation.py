"""Rounds keep their strategy's seed; model versions keep their evaluation.

The `embeddings` table stays for databases that still hold blobs: the service copies them
into the backbone's memory-mapped store the first time it opens that store, and deletes them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rounds") as batch:
        batch.add_column(sa.Column("seed", sa.Integer(), nullable=True))
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("evaluation", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("evaluation")
    with op.batch_alter_table("rounds") as batch:
        batch.drop_column("seed")

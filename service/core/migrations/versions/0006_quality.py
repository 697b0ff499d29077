"""Quality: gold answers and stored agreement and drift reports.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gold_answers",
        sa.Column(
            "image_id",
            sa.Integer(),
            sa.ForeignKey("images.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("expected_label", sa.String(128), nullable=False),
        sa.Column("reference", sa.String(1024), nullable=False),
        sa.Column("guide_version", sa.String(64), nullable=False),
        sa.Column("guide_fingerprint", sa.String(32), nullable=False),
    )
    op.create_table(
        "quality_reports",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("schema_version", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("guide_version", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
    )
    op.create_index("ix_quality_reports_kind", "quality_reports", ["kind"])


def downgrade() -> None:
    op.drop_index("ix_quality_reports_kind", table_name="quality_reports")
    op.drop_table("quality_reports")
    op.drop_table("gold_answers")

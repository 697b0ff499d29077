"""API keys (stored hashed) and the active model version of each backbone.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False, unique=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("last_used_at", TZ, nullable=True),
        sa.Column("revoked_at", TZ, nullable=True),
    )
    op.create_table(
        "active_models",
        sa.Column("backbone_id", sa.String(128), primary_key=True),
        sa.Column(
            "model_version", sa.String(64), sa.ForeignKey("model_versions.id"), nullable=False
        ),
        sa.Column("activated_at", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("active_models")
    op.drop_table("api_keys")

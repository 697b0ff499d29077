"""The foundation schema: images, embeddings, model versions, rounds, annotations, jobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("path", sa.String(1024), nullable=False, unique=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("registered_at", TZ, nullable=False),
        sa.Column("label", sa.String(128), nullable=True),
        sa.Column("label_source", sa.String(16), nullable=True),
        sa.Column("labeled_at", TZ, nullable=True),
        sa.Column("unusable_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_images_sha256", "images", ["sha256"])
    op.create_index("ix_images_label", "images", ["label"])
    op.create_table(
        "embeddings",
        sa.Column(
            "image_id",
            sa.Integer(),
            sa.ForeignKey("images.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("backbone_id", sa.String(128), primary_key=True),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("backbone_id", sa.String(128), nullable=False),
        sa.Column("checkpoint_path", sa.String(1024), nullable=False),
        sa.Column("n_train", sa.Integer(), nullable=False),
        sa.Column("class_names", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("guide_fingerprint", sa.String(32), nullable=False),
        sa.Column("labels_digest", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "rounds",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("strategy", sa.String(64), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column(
            "model_version", sa.String(64), sa.ForeignKey("model_versions.id"), nullable=False
        ),
        sa.Column("pool_size", sa.Integer(), nullable=False),
        sa.Column("embedded", sa.Integer(), nullable=False),
        sa.Column("embedding_rate", sa.Float(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
    )
    op.create_table(
        "round_items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "round_id",
            sa.Integer(),
            sa.ForeignKey("rounds.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id"), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("predicted_label", sa.String(128), nullable=False),
        sa.Column("predicted_probability", sa.Float(), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.UniqueConstraint("round_id", "image_id"),
    )
    op.create_index("ix_round_items_round_id", "round_items", ["round_id"])
    op.create_index("ix_round_items_image_id", "round_items", ["image_id"])
    op.create_index("ix_round_items_task_id", "round_items", ["task_id"])
    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("studio_annotation_id", sa.Integer(), nullable=False, unique=True),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id"), nullable=True),
        sa.Column("label", sa.String(128), nullable=True),
        sa.Column("annotator", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.Column("suggested_label", sa.String(128), nullable=True),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("lead_time", sa.Float(), nullable=True),
        sa.Column("annotated_at", TZ, nullable=True),
        sa.Column("synced_at", TZ, nullable=False),
    )
    op.create_index("ix_annotations_task_id", "annotations", ["task_id"])
    op.create_index("ix_annotations_image_id", "annotations", ["image_id"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    for table in ("jobs", "annotations", "round_items", "rounds", "model_versions"):
        op.drop_table(table)
    op.drop_table("embeddings")
    op.drop_table("images")

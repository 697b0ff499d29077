"""Tables: images, their embeddings and labels, model versions, rounds, annotations."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Image(Base):
    """An image of the pool; `label` is set once a confirmed label exists."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))  # folder | upload
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    label: Mapped[str | None] = mapped_column(String(128), index=True)
    label_source: Mapped[str | None] = mapped_column(String(16))  # seed | annotation
    labeled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unusable_reason: Mapped[str | None] = mapped_column(Text)  # set when decoding later fails


class Embedding(Base):
    """Legacy: embeddings kept as float32 blobs before the memory-mapped stores.

    Nothing writes here any more; `service/pool/vectors.py` moves rows found here into the
    backbone's store once and deletes them.
    """

    __tablename__ = "embeddings"

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    backbone_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class ModelVersion(Base):
    """A trained head; every prediction names one of these ids."""

    __tablename__ = "model_versions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    backbone_id: Mapped[str] = mapped_column(String(128))
    checkpoint_path: Mapped[str] = mapped_column(String(1024))
    n_train: Mapped[int] = mapped_column(Integer)
    class_names: Mapped[list[str]] = mapped_column(JSON)
    metrics: Mapped[dict[str, float]] = mapped_column(JSON)
    guide_fingerprint: Mapped[str] = mapped_column(String(32))
    labels_digest: Mapped[str] = mapped_column(String(64))  # which confirmed labels it saw
    # Out-of-sample evaluation and calibration (`models.evaluation.HeadEvaluation.as_dict`).
    evaluation: Mapped[dict[str, object] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Round(Base):
    """One active-learning round: the batch chosen, pre-labeled and pushed."""

    __tablename__ = "rounds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # selected -> pushing (import under way or cut off) -> [releasing (held back by the
    # guide's WIP limit, released as answers come in)] -> pushed
    status: Mapped[str] = mapped_column(String(16), default="selected")
    strategy: Mapped[str] = mapped_column(String(64))
    k: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int | None] = mapped_column(Integer)  # the strategy's seed (None: before 0008)
    # whether the batch was re-picked toward the classes with the fewest labels
    class_balanced: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    model_version: Mapped[str] = mapped_column(ForeignKey("model_versions.id"))
    pool_size: Mapped[int] = mapped_column(Integer)
    embedded: Mapped[int] = mapped_column(Integer, default=0)  # images the backbone ran on
    embedding_rate: Mapped[float] = mapped_column(Float, default=0.0)  # images/s while doing so
    project_id: Mapped[int | None] = mapped_column(Integer)


class RoundItem(Base):
    """One image of a round with its rank, score and the model's suggestion."""

    __tablename__ = "round_items"
    __table_args__ = (UniqueConstraint("round_id", "image_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    predicted_label: Mapped[str] = mapped_column(String(128))
    predicted_probability: Mapped[float] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(64))  # of the suggestion shown now
    task_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # Set when its waiting task was taken out of the annotators' queue (`studio/withdraw.py`).
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Annotation(Base):
    """An annotation read from Label Studio, kept whether or not it was usable.

    One row per Label Studio annotation id. `studio_updated_at` orders its versions: an
    older event never overwrites a newer state. A deleted annotation keeps its row, flagged.
    """

    __tablename__ = "annotations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    studio_annotation_id: Mapped[int] = mapped_column(Integer, unique=True)
    project_id: Mapped[int | None] = mapped_column(Integer, index=True)
    task_id: Mapped[int] = mapped_column(Integer, index=True)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id"), index=True)
    label: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))  # accepted | cancelled | rejected
    problem_code: Mapped[str | None] = mapped_column(String(32))  # e.g. unknown_label
    problem: Mapped[str | None] = mapped_column(Text)
    annotator: Mapped[int | None] = mapped_column(Integer, index=True)  # Label Studio user id
    lead_time: Mapped[float | None] = mapped_column(Float)  # seconds the annotator spent
    # The prediction the annotator was shown (`parent_prediction`), when there was one.
    shown_prediction_id: Mapped[int | None] = mapped_column(Integer)
    shown_model_version: Mapped[str | None] = mapped_column(String(64))
    shown_label: Mapped[str | None] = mapped_column(String(128))
    guide_version: Mapped[str] = mapped_column(String(64))  # the guide in force when stored
    guide_fingerprint: Mapped[str] = mapped_column(String(32))
    studio_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    studio_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    synced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DeletedTask(Base):
    """A Label Studio task that was deleted: it no longer holds its image out of the pool."""

    __tablename__ = "deleted_tasks"

    task_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deleted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Withdrawn by the service from the queue (`studio/withdraw.py`), not deleted by a person.
    withdrawn: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

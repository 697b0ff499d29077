"""Model versions and the active-version pointer: which trained head serves, and rollback.

One `active_models` row per backbone names the version in force. Training activates the
version it produces (a retrain that reproduces an existing version's hash reactivates that
row); `set_active` moves the pointer back or forth. A version whose classes differ from
the guide's labels is never served.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.audit import record
from service.context import ServiceContext
from service.core.errors import NotFound, ServiceError
from service.core.orm import ModelVersion, utcnow
from service.learning.tables import ActiveModel


class ModelNotUsable(ServiceError):
    status_code, code = 409, "model_not_usable"


def active_model(session: Session, ctx: ServiceContext) -> ModelVersion | None:
    """The active version of the running backbone, if it fits the guide's labels."""
    pointer = session.get(ActiveModel, ctx.runtime.backbone_id)
    model = session.get(ModelVersion, pointer.model_version) if pointer else None
    if model is None or list(model.class_names) != ctx.guide.label_names:
        return None
    return model


def active_version_id(session: Session, backbone_id: str) -> str | None:
    pointer = session.get(ActiveModel, backbone_id)
    return pointer.model_version if pointer else None


def get_version(session: Session, version_id: str) -> ModelVersion:
    model = session.get(ModelVersion, version_id) if len(version_id) <= 64 else None
    if model is None:
        raise NotFound(f"model version {version_id!r} does not exist")
    return model


def set_active(session: Session, ctx: ServiceContext, model: ModelVersion) -> bool:
    """Point the backbone's active version at `model` (flush only); True when it changed.

    Audited as `model.activated` with the previous and the new version.
    """
    if model.backbone_id != ctx.runtime.backbone_id:
        raise ModelNotUsable(
            f"{model.id} was trained on backbone {model.backbone_id}, "
            f"the service runs {ctx.runtime.backbone_id}"
        )
    if list(model.class_names) != ctx.guide.label_names:
        raise ModelNotUsable(f"{model.id} predicts other classes than the guide's labels")
    pointer = session.get(ActiveModel, model.backbone_id)
    before = pointer.model_version if pointer else None
    if before == model.id:
        return False
    if pointer is None:
        session.add(ActiveModel(backbone_id=model.backbone_id, model_version=model.id))
    else:
        pointer.model_version, pointer.activated_at = model.id, utcnow()
    record(
        session,
        "model.activated",
        subject=("model_version", model.id),
        before={"model_version": before},
        after={"model_version": model.id},
    )
    session.flush()
    return True

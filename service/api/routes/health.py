"""Liveness and what the service is running with."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from service.api.deps import ContextDep, SessionDep
from service.api.schemas import HealthOut, ModelPathOut
from service.learning.training import current_model

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut)
def health(context: ContextDep, session: SessionDep) -> HealthOut:
    """Whether the database and Label Studio answer, and what the model runs with."""
    try:
        session.execute(text("SELECT 1"))
        database = True
    except Exception:  # a broken database is reported, not raised
        database = False
    studio = context.gateway.is_up()
    model = current_model(session, context) if database else None
    guide = context.guide
    runtime, plan = context.runtime, context.runtime.plan
    path = ModelPathOut(
        backbone_id=runtime.backbone_id,
        device=str(plan.device),
        device_name=runtime.device_name,
        precision=plan.precision,
        runtime=plan.runtime,
        decoder=plan.decoder,
        batch_size=plan.batch_size,
    )
    return HealthOut(
        status="ok" if database and studio else "degraded",
        database=database,
        label_studio=studio,
        backbone_id=context.runtime.backbone_id,
        guide=f"{guide.name} v{guide.version} ({guide.fingerprint()})",
        model_version=model.id if model else None,
        model=path,
    )

"""The labeling guide in force."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.api.deps import ContextDep
from service.auth.roles import Role, requires

router = APIRouter(tags=["guide"])


@router.get("/guide", response_model=dict[str, Any])
@requires(Role.pipeline, Role.reviewer, Role.viewer)
def guide(context: ContextDep) -> dict[str, Any]:
    """The labeling guide in force (labels, rules, thresholds), with its fingerprint."""
    body = context.guide.model_dump(mode="json")
    body["fingerprint"] = context.guide.fingerprint()
    return body

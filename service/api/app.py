"""The FastAPI application: `create_app(settings)` builds it, the lifespan loads model and guide."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute

from guides import Guide, example_guide_path, load_guide
from labeling.gateway import LabelStudioGateway
from service.api.errors import install_error_handlers
from service.api.limits import BodyLimitMiddleware
from service.api.metrics import router as metrics_router
from service.api.observability import ObservabilityMiddleware, name_actor
from service.api.query import strict_query
from service.api.registry import job_registry
from service.api.routes import (
    annotations,
    audit,
    board,
    drift,
    guide,
    health,
    images,
    jobs,
    labels,
    media,
    ml_backend,
    models,
    predictions,
    reports,
    rounds,
    webhooks,
)
from service.auth.roles import ordered, roles_of
from service.auth.signing import media_signer
from service.context import ServiceContext
from service.core.db import make_engine, session_factory
from service.core.metrics import ObservedTransport
from service.core.settings import Settings, get_settings
from service.jobs.worker import Worker
from service.learning.runtime import ModelRuntime
from service.quality.live import install_live_agreement
from service.studio import jobs as studio_jobs
from service.studio.release import install_release_hook

log = logging.getLogger(__name__)


def load_configured_guide(settings: Settings) -> Guide:
    return load_guide(settings.guide_path or example_guide_path("fashion-mnist"))


def build_context(settings: Settings) -> ServiceContext:
    """Everything the use cases need: database, guide, model runtime and Label Studio gateway."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(
        settings.resolved_database_url, busy_timeout_s=settings.database_busy_timeout_s
    )
    runtime = ModelRuntime(
        settings.model, max_pixels=settings.max_image_pixels, embedding_dir=settings.embedding_dir
    )
    runtime.load()  # the backbone loads once, before the first request
    gateway = LabelStudioGateway(
        settings.label_studio.url,
        settings.label_studio.api_key.get_secret_value(),
        timeout_s=settings.label_studio.timeout_s,
        transport=ObservedTransport(),  # Label Studio latency and errors for /metrics
    )
    return ServiceContext(
        settings=settings,
        guide=load_configured_guide(settings),
        engine=engine,
        sessions=session_factory(engine),
        runtime=runtime,
        gateway=gateway,
        media=media_signer(settings),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        context = build_context(settings)
        app.state.context = context
        app.state.live_agreement = install_live_agreement(context)
        install_release_hook(context, studio_jobs.project_scope(settings))
        app.state.jobs = Worker(context, job_registry())
        app.state.jobs.start()
        plan = context.runtime.plan
        log.info(
            "serving with backbone %s on %s (%s, %s, %s decoder)",
            context.runtime.backbone_id,
            plan.device,
            plan.precision,
            plan.runtime,
            plan.decoder,
        )
        try:
            yield
        finally:
            app.state.jobs.stop()
            context.gpu_metrics.close()
            context.gateway.close()
            context.engine.dispose()

    app = FastAPI(
        title="activelabel",
        version="0.1.0",
        lifespan=lifespan,
        description="Active-learning labeling with Label Studio and quality checks.",
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"],
    )
    app.add_middleware(
        BodyLimitMiddleware,
        body_bytes=settings.max_body_bytes,
        multipart_bytes=settings.max_multipart_bytes,
    )
    app.add_middleware(ObservabilityMiddleware)  # outermost: request ids, metrics, logs
    install_error_handlers(app)
    include_routes(app)
    return app


API_PREFIX = "/v1"
# Every router here needs an API key; the key dependency is attached once per router.
PROTECTED_ROUTERS = (
    guide.router,
    images.router,
    labels.router,
    rounds.router,
    models.router,
    predictions.router,
    jobs.router,
    annotations.router,
    audit.router,
    reports.router,
    drift.router,
)
# media checks its URL's signature, the webhook its shared secret header, the ML backend
# its API key as a Basic password (Label Studio's model connection)
PUBLIC_ROUTERS = (health.router, media.router, webhooks.router, ml_backend.router)
# the board checks a key or its signed link (a browser cannot send a key)
BOARD_ROUTERS = (board.router,)
# Label Studio's own protocols: extra query parameters are ignored there, refused elsewhere
OUTSIDE_PROTOCOL_ROUTERS = (webhooks.router, ml_backend.router)


def include_routes(app: FastAPI) -> None:
    """Mount every router under /v1; health also answers at the root for probes.

    Unknown query parameters are refused (`service.api.query`), after the key check.
    """
    strict = strict_query()
    for router in PUBLIC_ROUTERS + BOARD_ROUTERS + PROTECTED_ROUTERS + (metrics_router,):
        show_roles(router)
    app.include_router(health.router, include_in_schema=False, dependencies=[strict])
    for router in PUBLIC_ROUTERS + BOARD_ROUTERS:
        outside = router in OUTSIDE_PROTOCOL_ROUTERS
        app.include_router(router, prefix=API_PREFIX, dependencies=[] if outside else [strict])
    for router in PROTECTED_ROUTERS:
        app.include_router(router, prefix=API_PREFIX, dependencies=[Depends(name_actor), strict])
    app.include_router(metrics_router, dependencies=[Depends(name_actor), strict])  # keyed


def show_roles(router: APIRouter) -> None:
    """Put each route's roles (`service.auth.roles`) into its OpenAPI operation, once."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            continue
        roles, extra = roles_of(route.endpoint), route.openapi_extra or {}
        if roles is None or "x-roles" in extra:
            continue
        names = ordered(roles)
        route.openapi_extra = {**extra, "x-roles": names}
        said = f"Roles: {', '.join(names)}."
        route.description = f"{route.description}\n\n{said}" if route.description else said

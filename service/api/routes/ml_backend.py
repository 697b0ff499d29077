"""Label Studio's ML backend protocol under `/v1/ml-backend`: health, setup, predict, webhook.

The URL an admin enters in Label Studio's model settings is `<service>/v1/ml-backend`, with
Basic Authentication: any user name, an API key of this service as the password (a Bearer
key works too). Health needs the key as well: Label Studio turns a 401 from health, and only
from health, into its "authentication parameters ... are incorrect" message when connecting;
the service's own `/health` stays open for liveness probes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, ConfigDict, Field

from labeling.label_config import parse_choices_config
from service.api.deps import ContextDep, bearer
from service.api.routes.jobs import accepted
from service.auth.keys import InvalidApiKey, MissingApiKey, authenticate
from service.auth.roles import Role, check_role, requires
from service.auth.tables import ApiKey
from service.context import ServiceContext
from service.core.logs import set_actor
from service.studio.ml_backend.predict import predict_tasks, service_target
from service.studio.ml_backend.training import START_TRAINING, setup, start_training, versions

router = APIRouter(prefix="/ml-backend", tags=["ml-backend"])
MAX_TASKS = 10_000
MAX_CONFIG_CHARS = 1_000_000
NEEDS_KEY = (
    "Label Studio's model connection needs Basic Authentication with an API key of this "
    "service as the password (any user name)"
)


class LenientBasic(HTTPBasic):
    """Basic credentials, or None; a malformed header is `invalid_api_key`, never a bare 401."""

    async def __call__(self, request: Request) -> HTTPBasicCredentials | None:  # type: ignore[override]
        try:
            return await super().__call__(request)
        except HTTPException as err:
            raise InvalidApiKey("the Basic Authorization header is malformed") from err


basic = LenientBasic(
    auto_error=False,
    scheme_name="MlBackendBasic",
    description="Label Studio's ML backend Basic Authentication: the password is an API key.",
)
BasicDep = Annotated[HTTPBasicCredentials | None, Depends(basic)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _token(basic_credentials: HTTPBasicCredentials | None, bearer_credentials: Any) -> str | None:
    if basic_credentials is not None and basic_credentials.password:
        return basic_credentials.password
    return bearer_credentials.credentials if bearer_credentials is not None else None


def _check(
    context: ServiceContext, token: str | None, endpoint: object, *, record_use: bool = True
) -> ApiKey:
    if not token:
        raise MissingApiKey(NEEDS_KEY)
    with context.sessions() as session:
        key = authenticate(session, token, record_use=record_use)
        session.commit()
    check_role(key.role, endpoint)
    set_actor(f"key:{key.name}")
    return key


def ml_key(
    request: Request, context: ContextDep, credentials: BasicDep, bearer_credentials: BearerDep
) -> ApiKey:
    """The caller's API key: the Basic password, or a Bearer key; 401 otherwise, and 403
    `insufficient_role` when its role may not call the route."""
    token = _token(credentials, bearer_credentials)
    return _check(context, token, request.scope.get("endpoint"))


def probe_key(
    request: Request, context: ContextDep, credentials: BasicDep, bearer_credentials: BearerDep
) -> ApiKey:
    """As `ml_key`, read-only: health must answer within Label Studio's 1 s."""
    token = _token(credentials, bearer_credentials)
    return _check(context, token, request.scope.get("endpoint"), record_use=False)


class Health(BaseModel):
    status: str = "UP"
    model_class: str = "activelabel"


class SetupRequest(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    project: str | None = Field(default=None, max_length=256)
    label_config: str | None = Field(default=None, alias="schema", max_length=MAX_CONFIG_CHARS)


class SetupOut(BaseModel):
    model_version: str | None  # None until a first version is trained


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    tasks: list[dict[str, Any]] = Field(max_length=MAX_TASKS)
    project: str | None = Field(default=None, max_length=256)
    label_config: str | None = Field(default=None, max_length=MAX_CONFIG_CHARS)


class PredictOut(BaseModel):
    results: list[dict[str, Any]]  # one per task, in order; `error` instead of `result` if none
    model_version: str


class WebhookEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")  # Label Studio's events carry whole tasks
    action: str = Field(default="", max_length=128)


class WebhookOut(BaseModel):
    action: str
    status: str  # ignored, or the training job's status
    job: str | None = None  # the training job's id, which Label Studio keeps
    status_url: str | None = None


class VersionsOut(BaseModel):
    versions: list[str]


@router.get("/health", response_model=Health, dependencies=[Depends(probe_key)])
@requires(Role.pipeline)
def health() -> Health:
    """Label Studio's connection check (1 s timeout): up, and the key is valid."""
    return Health()


@router.post("/setup", response_model=SetupOut, dependencies=[Depends(ml_key)])
@requires(Role.pipeline)
def setup_model(body: SetupRequest, context: ContextDep) -> SetupOut:
    """The active model version; a labeling config without a guide label is refused (422)."""
    return SetupOut(model_version=setup(context, body.label_config))


@router.post("/predict", response_model=PredictOut, dependencies=[Depends(ml_key)])
@requires(Role.pipeline)
def predict(body: PredictRequest, context: ContextDep) -> PredictOut:
    """One answer per task, in order, from the active model, in batches within a time budget.

    Tasks pushed by the service use their stored image; others have their image fetched
    from an allowed host. A task without a usable image, or left when the call's budget
    (`ml_backend.predict_budget_s`) is spent, gets `error` and no `result`.
    """
    target = (
        parse_choices_config(body.label_config) if body.label_config else service_target(context)
    )
    results = predict_tasks(context, body.tasks, target)
    version = next((str(r["model_version"]) for r in results), "")
    return PredictOut(results=results, model_version=version)


@router.post("/webhook", response_model=WebhookOut)
@requires(Role.pipeline)
def webhook(
    event: WebhookEvent,
    context: ContextDep,
    credentials: BasicDep,
    bearer_credentials: BearerDep,
) -> WebhookOut:
    """`START_TRAINING` ("Start training" in Label Studio) enqueues the `train` job.

    Label Studio also sends every event of the project here, without credentials: those are
    acknowledged and ignored (annotations arrive through `/v1/webhooks/label-studio`).
    """
    token = _token(credentials, bearer_credentials)
    if token or event.action == START_TRAINING:
        _check(context, token, webhook)
    if event.action != START_TRAINING:
        return WebhookOut(action=event.action, status="ignored")
    return _training(context, event.action)


@router.post("/train", response_model=WebhookOut, dependencies=[Depends(ml_key)])
@requires(Role.pipeline)
def train(context: ContextDep) -> WebhookOut:
    """The older protocol's training call (Label Studio without its webhook training flag)."""
    return _training(context, "train")


@router.get("/versions", response_model=VersionsOut, dependencies=[Depends(ml_key)])
@requires(Role.pipeline)
def model_versions(context: ContextDep) -> VersionsOut:
    """Trained versions of the running backbone, the newest first (Label Studio's list)."""
    return VersionsOut(versions=versions(context))


def _training(context: ServiceContext, action: str) -> WebhookOut:
    started = start_training(context)
    return WebhookOut(
        action=action,
        status=started.status,
        job=started.job_id,
        status_url=accepted(started.job_id).status_url,
    )

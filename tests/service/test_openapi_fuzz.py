"""Every operation of the OpenAPI schema, fed generated requests in-process: never a 5xx.

Schemathesis reads `/openapi.json` from the app and sends a bounded, derandomised set of
examples to each operation with a real API key and the webhook secret. Label Studio is down
on purpose (nothing answers on its port): every route that needs it only enqueues a job, so
no response may be a 5xx, `label_studio_unavailable` included.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.generation.case import Case
from schemathesis.python.asgi import shutdown_lifespans

from service.api.app import create_app
from service.auth.keys import create_key
from service.core.db import make_engine, session_factory
from service.core.settings import LabelStudioSettings, Settings
from service.studio.webhooks import SECRET_HEADER
from tests.helpers import ImagePool, make_settings

SECRET = "fuzz-webhook-secret"
MAX_EXAMPLES = 15


@dataclass(frozen=True)
class Fuzzed:
    app: FastAPI
    headers: dict[str, str]  # a real key and the webhook secret


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, fashion_pool: ImagePool) -> Iterator[Fuzzed]:
    """The app on a fresh SQLite database with 10 pool files and a key made in it."""
    tmp = tmp_path_factory.mktemp("fuzz")
    folder = tmp / "root" / "pool"
    folder.mkdir(parents=True)
    for i in range(10):
        shutil.copy(fashion_pool.folder / f"{i:05d}.png", folder / f"{i:05d}.png")
    studio = LabelStudioSettings(
        url="http://127.0.0.1:9",
        api_key=SecretStr("0" * 40),
        timeout_s=2,
        webhook_secret=SecretStr(SECRET),
        reconcile_every_s=0,
    )
    pool = ImagePool(root=folder.parent, folder=folder, labels=[], broken=[])
    config = make_settings(tmp, pool, label_studio=studio)
    engine = make_engine(config.resolved_database_url)  # migrates, as start-up does
    with session_factory(engine)() as session:
        token = create_key(session, "fuzz").token.get_secret_value()
    engine.dispose()
    headers = {"Authorization": f"Bearer {token}", SECRET_HEADER: SECRET}
    try:
        yield Fuzzed(create_app(config), headers)
    finally:
        shutdown_lifespans()  # stops the app's job worker that schemathesis started


@pytest.fixture(scope="module")
def api_schema(fuzzed: Fuzzed) -> schemathesis.schemas.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed.app)


def operations() -> list[tuple[str, str]]:
    """(method, path) of every documented operation, read from the app without starting it."""
    document = create_app(Settings()).openapi()
    return [(method.upper(), path) for path, item in document["paths"].items() for method in item]


OPERATIONS = operations()


# Hypothesis warns when the global `random` state moves while it draws a case. Here it is
# moved by another thread: label_studio_sdk's retry jitter (`random.random()`) in the job
# worker, calling the Label Studio that is down on purpose; the strategies use no `random`.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_generated_request_gets_a_server_error(
    api_schema: schemathesis.schemas.BaseSchema, fuzzed: Fuzzed, method: str, path: str
) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def send(case: Case) -> None:
        response = case.call(headers=fuzzed.headers)
        case.validate_response(response, checks=[not_a_server_error])

    send()


def test_the_schema_lists_every_v1_route(api_schema: schemathesis.schemas.BaseSchema) -> None:
    paths = set(api_schema.raw_schema["paths"])
    assert {"/v1/images", "/v1/predictions", "/v1/webhooks/label-studio", "/v1/jobs"} <= paths
    assert all(path.startswith("/v1/") or path == "/metrics" for path in paths)

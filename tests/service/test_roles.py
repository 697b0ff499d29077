"""Roles: every keyed route, called with a key of every role, against the README's matrix.

The matrix between the `role-matrix` markers of README.md is the one table of who may do
what. A route missing from it, or one whose declared roles differ from it, fails here; so
does a route whose answer to a key does not follow its row (403 `insufficient_role`
exactly where the row has no mark).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.api.metrics import metrics
from service.auth.keys import create_key
from service.auth.roles import Role, parse_role, roles_of
from service.core.errors import ServiceError
from tests.helpers import ImagePool, api_client, make_settings

README = Path(__file__).resolve().parents[2] / "README.md"
MARK = "✓"
# Routes that need no key: their own signature, shared secret or nothing.
UNKEYED = {
    ("GET", "/health"),
    ("GET", "/v1/health"),
    ("GET", "/v1/media/{image_id}"),
    ("POST", "/v1/webhooks/label-studio"),
}


def readme_matrix() -> dict[tuple[str, str], frozenset[Role]]:
    """(method, path): roles, from the README table between the role-matrix markers."""
    text = README.read_text()
    table = text.split("<!-- role-matrix -->")[1].split("<!-- /role-matrix -->")[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    header = [cell.strip() for cell in table.splitlines()[1].strip("|").split("|")]
    roles = [Role(name) for name in header[1:]]
    matrix: dict[tuple[str, str], frozenset[Role]] = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        method, path = re.fullmatch(r"`(\w+) ([^`]+)`", cells[0]).groups()  # type: ignore[union-attr]
        matrix[(method, path)] = frozenset(
            r for r, cell in zip(roles, cells[1:], strict=True) if cell == MARK
        )
    return matrix


def declared_matrix(app: FastAPI) -> dict[tuple[str, str], frozenset[Role] | None]:
    """(method, path): the roles each keyed route declares (None: it declares none).

    Keyed routes are the schema's operations with a security requirement, and `/metrics`.
    """
    declared: dict[tuple[str, str], frozenset[Role] | None] = {
        ("GET", "/metrics"): roles_of(metrics)
    }
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            if operation.get("security") and (method.upper(), path) not in UNKEYED:
                roles = operation.get("x-roles")
                declared[(method.upper(), path)] = (
                    frozenset(Role(role) for role in roles) if roles else None
                )
    return declared


@pytest.fixture(scope="module")
def keyed(
    tmp_path_factory: pytest.TempPathFactory, fashion_pool: ImagePool
) -> Iterator[tuple[TestClient, dict[Role, str]]]:
    settings = make_settings(tmp_path_factory.mktemp("roles"), fashion_pool)
    with api_client(settings) as client:
        with client.app.state.context.sessions() as session:  # type: ignore[attr-defined]
            tokens = {
                role: create_key(session, f"{role.value}-key", role).token.get_secret_value()
                for role in Role
            }
        yield client, tokens


def test_every_keyed_route_declares_the_roles_of_the_readme_matrix(
    keyed: tuple[TestClient, dict[Role, str]],
) -> None:
    client, _ = keyed
    declared = declared_matrix(client.app)  # type: ignore[arg-type]
    undeclared = sorted(route for route, roles in declared.items() if roles is None)
    assert not undeclared, f"routes without @requires(...): {undeclared}"
    assert declared == readme_matrix()


def _call(client: TestClient, method: str, path: str, token: str) -> tuple[int, str | None]:
    """Call a route with no body and placeholder path values: the role is checked first."""
    concrete = re.sub(r"\{[^}]+\}", "0", path)
    headers = {"Authorization": f"Bearer {token}"}
    body = {"action": "PROJECT_UPDATED"} if path.endswith("/ml-backend/webhook") else None
    response = client.request(method, concrete, headers=headers, json=body)
    code = None
    if response.headers.get("content-type", "").startswith("application/json"):
        error = response.json().get("error") if isinstance(response.json(), dict) else None
        code = error.get("code") if isinstance(error, dict) else None
    return response.status_code, code


def test_every_route_with_every_role_answers_as_the_matrix_says(
    keyed: tuple[TestClient, dict[Role, str]],
) -> None:
    client, tokens = keyed
    mismatches = []
    for (method, path), allowed in sorted(readme_matrix().items()):
        for role, token in tokens.items():
            status, code = _call(client, method, path, token)
            refused = (status, code) == (403, "insufficient_role")
            if refused == (role in allowed) or status == 401:
                mismatches.append((method, path, role.value, status, code))
    assert mismatches == []


def test_admin_may_call_every_route_and_the_schema_shows_each_routes_roles(
    keyed: tuple[TestClient, dict[Role, str]],
) -> None:
    client, _ = keyed
    matrix = readme_matrix()
    assert all(Role.admin in roles for roles in matrix.values())
    schema = client.get("/openapi.json").json()
    for (method, path), roles in matrix.items():
        if path == "/metrics":
            continue  # not in the schema
        operation = schema["paths"][path][method.lower()]
        assert set(operation["x-roles"]) == {role.value for role in roles}, (method, path)
        assert "Roles: admin" in operation["description"]


def test_a_refused_call_says_which_roles_may_make_it(
    keyed: tuple[TestClient, dict[Role, str]],
) -> None:
    client, tokens = keyed
    response = client.post(
        "/v1/models/1/activate", headers={"Authorization": f"Bearer {tokens[Role.pipeline]}"}
    )
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "insufficient_role"
    assert "'pipeline'" in error["message"] and "admin" in error["message"]


def test_an_unknown_role_is_refused_with_a_stable_code() -> None:
    with pytest.raises(ServiceError) as raised:
        parse_role("superuser")
    assert raised.value.code == "unknown_role"
    assert parse_role(" Viewer ") is Role.viewer

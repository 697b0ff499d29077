"""Annotator accounts: a user's API token by logging in as them (plain HTTP, no SDK)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from labeling.errors import LabelStudioRejected, LabelStudioUnavailable


@dataclass(frozen=True)
class AnnotatorAccount:
    """A Label Studio user who annotates: its id, email and API token."""

    user_id: int
    email: str
    token: str


def login_token(url: str, email: str, password: str, *, timeout_s: float = 30.0) -> str:
    """Log in as `email` through the web form and return that user's API token."""
    base = url.rstrip("/")
    try:
        with httpx.Client(base_url=base, timeout=timeout_s, follow_redirects=False) as http:
            http.get("/user/login/").raise_for_status()
            csrf = http.cookies.get("csrftoken", "")
            response = http.post(
                "/user/login/",
                data={"email": email, "password": password, "csrfmiddlewaretoken": csrf},
                headers={"Referer": f"{base}/user/login/", "X-CSRFToken": csrf},
            )
            if response.status_code != 302:
                raise LabelStudioRejected(f"log in as {email}: refused ({response.status_code})")
            token = http.get("/api/current-user/token").raise_for_status().json().get("token")
    except httpx.HTTPStatusError as err:
        raise LabelStudioRejected(f"log in as {email}: {err.response.status_code}") from err
    except httpx.HTTPError as err:
        raise LabelStudioUnavailable(f"log in as {email}: Label Studio unreachable: {err}") from err
    if not token:
        raise LabelStudioRejected(f"log in as {email}: no API token in the answer")
    return str(token)

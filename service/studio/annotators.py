"""Annotator accounts from configuration: created in Label Studio, each with its own token."""

from __future__ import annotations

from collections.abc import Callable

from labeling.accounts import AnnotatorAccount, login_token
from service.context import ServiceContext

# Gives an existing Label Studio user a password: `LocalLabelStudio.set_password` for a
# local server (it runs `label-studio reset_password` in the server's data directory).
SetPassword = Callable[[str, str], None]


def provision_annotators(ctx: ServiceContext, set_password: SetPassword) -> list[AnnotatorAccount]:
    """Every annotator of `label_studio.annotators`: created if missing, password set, token read.

    Idempotent: an existing user keeps its id and gets the configured password again.
    """
    accounts: list[AnnotatorAccount] = []
    for annotator in ctx.settings.label_studio.annotators:
        password = annotator.password.get_secret_value()
        user_id = ctx.gateway.ensure_user(annotator.email)
        set_password(annotator.email, password)
        token = login_token(ctx.gateway.url, annotator.email, password)
        accounts.append(AnnotatorAccount(user_id=user_id, email=annotator.email, token=token))
    return accounts

"""API keys: random tokens shown once, stored as sha256 hashes, checked in constant time.

A token reads `al_<prefix>_<secret>`: the 8 hex characters of the prefix find the row, the
sha256 of the whole token must match its stored hash. The token has 256 bits of entropy,
so a plain sha256 (no slow hash) cannot be reversed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import SecretStr
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.auth.roles import Role, parse_role
from service.auth.tables import ApiKey
from service.core.errors import NotFound, ServiceError, is_busy
from service.core.orm import utcnow

log = logging.getLogger(__name__)
TOKEN_PREFIX = "al_"
LAST_USED_RESOLUTION = timedelta(minutes=1)  # at most one write per key and minute


class MissingApiKey(ServiceError):
    status_code, code = 401, "missing_api_key"


class InvalidApiKey(ServiceError):
    status_code, code = 401, "invalid_api_key"


@dataclass(frozen=True)
class IssuedKey:
    """A new key's row and its token, which exists nowhere else once shown."""

    key: ApiKey
    token: SecretStr


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_key(session: Session, name: str, role: Role | str = Role.admin) -> IssuedKey:
    """Issue a key named `name` with `role` (a use case: commits)."""
    issued = _issue(session, name, role)
    session.commit()
    return issued


def rotate_keys(session: Session, roles_by_name: Mapping[str, Role | str]) -> list[IssuedKey]:
    """Issue one key per name with its role, revoking every live key of that name first.

    A use case: the revocations and the new keys are committed together, so a name never
    has two live keys and a failure leaves the old ones working. Keys of other names are
    untouched. Returns the new keys in the order of `roles_by_name`.
    """
    issued = []
    for name, role in roles_by_name.items():
        revoke_keys_named(session, name)
        issued.append(_issue(session, name, role))
    session.commit()
    return issued


def revoke_keys_named(session: Session, name: str) -> int:
    """Revoke every live key named `name` (flush only, the caller commits); how many."""
    live = session.scalars(
        select(ApiKey).where(ApiKey.name == name.strip(), ApiKey.revoked_at.is_(None))
    ).all()
    now = utcnow()
    for key in live:
        key.revoked_at = now
    session.flush()
    return len(live)


def _issue(session: Session, name: str, role: Role | str) -> IssuedKey:
    """Add a new key named `name` with `role` (flush only)."""
    name = name.strip()
    if not name or len(name) > 128:
        raise ServiceError("a key needs a name of 1 to 128 characters")
    role = parse_role(role)
    prefix = secrets.token_hex(4)
    token = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(name=name, prefix=prefix, token_hash=hash_token(token), role=role.value)
    session.add(key)
    session.flush()
    return IssuedKey(key=key, token=SecretStr(token))


def authenticate(
    session: Session, token: str, *, now: datetime | None = None, record_use: bool = True
) -> ApiKey:
    """The live key whose token this is; records its use (flush only, the caller commits).

    `record_use=False` only reads, for probes that must answer fast even while writers wait.
    """
    prefix = _prefix_of(token)
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix)) if prefix else None
    if key is None or not hmac.compare_digest(key.token_hash, hash_token(token)):
        raise InvalidApiKey("the API key is not valid")
    if key.revoked_at is not None:
        raise InvalidApiKey("the API key was revoked")
    now = now or utcnow()
    last = _aware(key.last_used_at)
    if record_use and (last is None or now - last >= LAST_USED_RESOLUTION):
        key.last_used_at = now
        session.flush()
    return key


class SkippedUses:
    """Key uses left unrecorded (a busy database), logged at most once per key and `window`."""

    def __init__(self, window: timedelta = LAST_USED_RESOLUTION) -> None:
        self._window = window
        self._lock = threading.Lock()
        self._said: dict[str, tuple[datetime, int]] = {}  # prefix: (logged at, skipped since)

    def note(self, prefix: str, now: datetime) -> None:
        with self._lock:
            said_at, skipped = self._said.get(prefix, (None, 0))
            if said_at is not None and now - said_at < self._window:
                self._said[prefix] = (said_at, skipped + 1)
                log.debug("the use of key %s was not recorded: the database is busy", prefix)
                return
            self._said[prefix] = (now, 0)
        log.info(
            "the use of key %s was not recorded: the database is busy (%d more times since"
            " this was last logged)",
            prefix,
            skipped,
        )


def record_use(
    units: Callable[[], Session],
    key: ApiKey,
    *,
    skipped: SkippedUses,
    now: datetime | None = None,
) -> None:
    """Record that `key` was used, in a unit of its own, when its last use is a minute old.

    A busy database skips the note (it is informational): a request never fails for it,
    and `skipped` logs the skips of one key at most once a minute.
    """
    now = now or utcnow()
    last = _aware(key.last_used_at)
    if last is not None and now - last < LAST_USED_RESOLUTION:
        return
    try:
        with units() as session:
            session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
            session.commit()
    except Exception as err:
        if not is_busy(err):
            raise
        skipped.note(key.prefix, now)
        return
    key.last_used_at = now


def revoke_key(session: Session, id_or_prefix: str) -> ApiKey:
    """Revoke the key with this id or prefix (a use case: commits); revoking twice is fine."""
    query = select(ApiKey).where(ApiKey.prefix == id_or_prefix.removeprefix(TOKEN_PREFIX))
    key = session.scalar(query)
    if key is None and id_or_prefix.isdigit() and len(id_or_prefix) < 19:
        key = session.get(ApiKey, int(id_or_prefix))
    if key is None:
        raise NotFound(f"no API key has the id or prefix {id_or_prefix!r}")
    key.revoked_at = key.revoked_at or utcnow()
    session.commit()
    return key


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def _prefix_of(token: str) -> str | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    prefix, _, secret = token.removeprefix(TOKEN_PREFIX).partition("_")
    return prefix if len(prefix) == 8 and secret else None


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; they were stored in UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)

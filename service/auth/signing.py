"""Signed, expiring media URLs: what lets an annotator's browser fetch an image, and no more.

The signature is HMAC-SHA256 over `"<image id>:<expiry>"` with a secret from the settings
(or one generated once into the data directory). Expiries are rounded up to whole days, so
the URL of an image stays the same for a day and browsers can cache it.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
import time
from pathlib import Path

from pydantic import SecretStr

from service.core.errors import ServiceError
from service.core.settings import Settings

SECRET_FILE = "media-signing-secret"
DAY_S = 86_400


class InvalidSignature(ServiceError):
    status_code, code = 403, "invalid_signature"


class ExpiredSignature(ServiceError):
    status_code, code = 403, "expired_signature"


class MediaSigner:
    """Signs and checks `/v1/media/{id}?exp=&sig=` URLs."""

    def __init__(self, secret: SecretStr, *, public_url: str, lifetime_s: int) -> None:
        if len(secret.get_secret_value()) < 16:
            raise ValueError("the media signing secret must have at least 16 characters")
        self._secret = secret
        self.public_url = public_url.rstrip("/")
        self.lifetime_s = lifetime_s

    def signature(self, image_id: int, expires: int) -> str:
        return self.sign(str(image_id), expires)

    def sign(self, subject: str, expires: int) -> str:
        """HMAC-SHA256 over `"<subject>:<expiry>"`; media URLs sign the image id."""
        message = f"{subject}:{expires}".encode()
        key = self._secret.get_secret_value().encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()

    def expiry(self, *, now: float | None = None) -> int:
        """Unix time `lifetime_s` from now, rounded up to a whole day."""
        moment = time.time() if now is None else now
        return math.ceil((moment + self.lifetime_s) / DAY_S) * DAY_S

    def url(self, image_id: int, *, now: float | None = None) -> str:
        expires = self.expiry(now=now)
        return (
            f"{self.public_url}/v1/media/{image_id}"
            f"?exp={expires}&sig={self.signature(image_id, expires)}"
        )

    def verify(
        self, image_id: int, expires: int, signature: str, *, now: float | None = None
    ) -> None:
        """Raise `InvalidSignature` for a forged URL, `ExpiredSignature` for an old one."""
        expected = self.signature(image_id, expires).encode()
        if not hmac.compare_digest(expected, signature.encode()):  # bytes: any text compares
            raise InvalidSignature("the media URL's signature is not valid")
        if expires < (time.time() if now is None else now):
            raise ExpiredSignature("the media URL has expired; ask for a fresh one")


def media_signer(settings: Settings) -> MediaSigner:
    """The signer for these settings: the configured secret, else one kept in the data dir."""
    secret = settings.auth.media_signing_secret or _stored_secret(settings.data_dir / SECRET_FILE)
    return MediaSigner(
        secret, public_url=settings.public_url, lifetime_s=settings.auth.media_url_lifetime_s
    )


def _stored_secret(path: Path) -> SecretStr:
    """The secret in `path`, created (readable by the owner only) on first use.

    The new secret is written to a private temporary file and linked into place, so that
    concurrent first starts agree on one secret and never read a half-written file.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process won the race: use its secret
        finally:
            temporary.unlink()
    return SecretStr(path.read_text().strip())

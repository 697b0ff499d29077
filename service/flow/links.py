"""Signed board links: a browser opens the board (and the reports it links) without a key.

A link carries `exp` (unix time) and `sig`, the HMAC of `"board:<exp>"` with the media
signing secret (`MediaSigner.sign`; image URLs sign an image id, so neither passes for the
other). It grants reading the board and the quality reports, nothing else, until `exp`.
"""

from __future__ import annotations

import hmac
import time

from service.auth.signing import ExpiredSignature, InvalidSignature, MediaSigner

SUBJECT = "board"
DEFAULT_LIFETIME_S = 12 * 3600
MAX_LIFETIME_S = 7 * 86_400


def board_link(
    signer: MediaSigner, *, lifetime_s: int, now: float | None = None
) -> tuple[str, int]:
    """The board page's signed URL and its expiry (unix time)."""
    if not 1 <= lifetime_s <= MAX_LIFETIME_S:
        raise ValueError(f"expected a lifetime of 1 to {MAX_LIFETIME_S} s, got {lifetime_s}")
    expires = int(time.time() if now is None else now) + lifetime_s
    query = f"exp={expires}&sig={signer.sign(SUBJECT, expires)}"
    return f"{signer.public_url}/v1/board.html?{query}", expires


def check_link(
    signer: MediaSigner, expires: int, signature: str, *, now: float | None = None
) -> None:
    """Raise `InvalidSignature` for a forged link, `ExpiredSignature` for an old one."""
    expected = signer.sign(SUBJECT, expires).encode()
    if not hmac.compare_digest(expected, signature.encode()):
        raise InvalidSignature("the board link's signature is not valid")
    if expires < (time.time() if now is None else now):
        raise ExpiredSignature("the board link has expired; ask for a fresh one")

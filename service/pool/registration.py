"""Registering images: a folder under an allowed root, or an uploaded file.

Every file is checked where it really is: a symlink under an allowed root that leads out of
the roots is skipped (`path_not_allowed`), and serving an image checks its path again.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.errors import ImageDecodeError
from models.images import ImageInfo, inspect_image
from service.audit import record
from service.core.errors import InvalidImage, NotFound, PathNotAllowed, PathNotFound, ServiceError
from service.core.orm import Image

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SkippedFile:
    path: str
    code: str
    reason: str


@dataclass
class RegistrationReport:
    registered: int = 0
    already_known: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)


class InvalidPath(ServiceError):
    status_code, code = 422, "invalid_path"


MAX_PATH_CHARS = 4096


def resolve_allowed(path: str | Path, allowed_roots: Sequence[Path]) -> Path:
    """`path` made absolute with its symlinks resolved, if it exists under an allowed root.

    Raises InvalidPath (NUL bytes, too long, unresolvable), PathNotAllowed or PathNotFound.
    """
    text = str(path)
    if not text or "\x00" in text or len(text) > MAX_PATH_CHARS:
        raise InvalidPath(f"not a usable path ({len(text)} characters, NUL bytes refused)")
    try:
        resolved = Path(text).expanduser().resolve()
        inside = is_inside(resolved, allowed_roots)
        exists = resolved.exists()
    except (OSError, RuntimeError, ValueError) as err:  # a loop of links, a name too long
        raise InvalidPath(f"{text[:200]} cannot be resolved: {err}") from err
    if not inside:
        raise PathNotAllowed(
            f"{text[:200]} is outside the allowed roots",
            details={"allowed_roots": [str(r) for r in _roots(allowed_roots)]},
        )
    if not exists:
        raise PathNotFound(f"{text[:200]} does not exist")
    return resolved


def is_inside(resolved: Path, allowed_roots: Sequence[Path]) -> bool:
    """Whether an already resolved path is one of the roots or below one."""
    return any(resolved == root or resolved.is_relative_to(root) for root in _roots(allowed_roots))


def _roots(allowed_roots: Sequence[Path]) -> list[Path]:
    return [root.expanduser().resolve() for root in allowed_roots]


def servable_path(image: Image, allowed_roots: Sequence[Path], upload_dir: Path) -> Path:
    """The file to serve for `image`, checked again now: its link may have changed since."""
    try:
        return resolve_allowed(image.path, [*allowed_roots, upload_dir])
    except PathNotFound as err:
        raise NotFound(f"the file of image {image.id} is gone") from err


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


BATCH = 200  # files per write unit (and per audit entry)


@dataclass(frozen=True)
class _Checked:
    path: Path
    info: ImageInfo
    digest: str


def register_folder(
    session: Session,
    folder: Path,
    *,
    allowed_roots: Sequence[Path],
    max_pixels: int,
    progress: Progress | None = None,
) -> RegistrationReport:
    """Register every readable image below `folder`; anything else is skipped with its reason.

    Each batch's files are decoded and hashed first, with no transaction open; then the batch
    is written and committed in one short unit with one `image.registered` audit entry naming
    the images it added. The write lock is never held while files are read.
    """
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    under_folder = Image.path.startswith(f"{folder}{os.sep}", autoescape=True)
    known = set(session.scalars(select(Image.path).where(under_folder)))
    session.commit()  # end the read before the files are checked
    report = RegistrationReport()
    for start in range(0, len(files), BATCH):
        batch = files[start : start + BATCH]
        checked = [
            c for p in batch if (c := _check_one(p, known, allowed_roots, max_pixels, report))
        ]
        added = [_add_image(session, c.path, c.info, "folder", c.digest).id for c in checked]
        if added:
            after = {"registered": len(added), "image_ids": added}
            record(session, "image.registered", subject=("folder", str(folder)), after=after)
        session.commit()
        if progress is not None:
            progress(min(start + BATCH, len(files)), len(files))
    return report


def _check_one(
    path: Path,
    known: set[str],
    allowed_roots: Sequence[Path],
    max_pixels: int,
    report: RegistrationReport,
) -> _Checked | None:
    """The file decoded and hashed, or None (known already, or skipped with its reason)."""
    if str(path) in known:
        report.already_known += 1
        return None
    if not is_inside(path.resolve(), allowed_roots):
        reason = "a link to a file outside the allowed roots"
        report.skipped.append(SkippedFile(str(path), PathNotAllowed.code, reason))
        return None
    try:
        info = inspect_image(path, max_pixels=max_pixels)
    except ImageDecodeError as err:
        report.skipped.append(SkippedFile(str(path), err.code, err.reason))
        return None
    report.registered += 1
    return _Checked(path, info, sha256_of(path))


def _add_image(session: Session, path: Path, info: ImageInfo, source: str, digest: str) -> Image:
    image = Image(
        path=str(path), sha256=digest, width=info.width, height=info.height, source=source
    )
    session.add(image)
    session.flush()
    return image


def register_upload(
    session: Session, content: bytes, filename: str, upload_dir: Path, *, max_pixels: int
) -> Image:
    """Store an uploaded image under its content hash and register it (once per content)."""
    digest = hashlib.sha256(content).hexdigest()
    suffix = re.sub(r"[^a-z0-9]", "", Path(filename).suffix.lower())[:8] or "img"
    upload_dir.mkdir(parents=True, exist_ok=True)
    target = (upload_dir / f"{digest}.{suffix}").resolve()
    existing = session.scalar(select(Image).where(Image.path == str(target)))
    if existing is not None:
        return existing
    staging = target.with_name(target.name + ".part")
    staging.write_bytes(content)
    try:
        info = inspect_image(staging, max_pixels=max_pixels)
    except ImageDecodeError as err:
        staging.unlink(missing_ok=True)
        raise InvalidImage(f"{filename}: {err.reason}", details={"code": err.code}) from err
    staging.replace(target)
    image = _add_image(session, target, info, "upload", digest)
    record(session, "image.registered", subject=("image", image.id), after={"sha256": digest})
    return image


def retry_image(session: Session, image_id: int, *, max_pixels: int) -> Image:
    """Check an image marked unusable again; if it now decodes, it returns to the pool.

    Raises NotFound, or InvalidImage (with the new reason kept) when it still fails.
    """
    image = session.get(Image, image_id)
    if image is None:
        raise NotFound(f"image {image_id} does not exist")
    before = image.unusable_reason
    try:
        inspect_image(image.path, max_pixels=max_pixels)
    except ImageDecodeError as err:
        image.unusable_reason = f"{err.code}: {err.reason}"
        session.commit()
        raise InvalidImage(
            f"image {image_id} still fails: {err.reason}", details={"code": err.code}
        ) from err
    image.unusable_reason = None
    if before is not None:
        record(
            session,
            "image.retried",
            subject=("image", image.id),
            before={"unusable_reason": before},
            after={"unusable_reason": None},
        )
    session.commit()
    return image

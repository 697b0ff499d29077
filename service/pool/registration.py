"""Registering images: a folder under an allowed root, or an uploaded file."""

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
from service.core.errors import InvalidImage, PathNotAllowed, PathNotFound
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


def resolve_allowed(path: str | Path, allowed_roots: Sequence[Path]) -> Path:
    """`path` made absolute, or PathNotAllowed when it is not under an allowed root."""
    candidate = Path(path).expanduser()
    resolved = candidate.resolve()
    roots = [root.expanduser().resolve() for root in allowed_roots]
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        raise PathNotAllowed(
            f"{path} is outside the allowed roots",
            details={"allowed_roots": [str(r) for r in roots]},
        )
    if not resolved.exists():
        raise PathNotFound(f"{path} does not exist")
    return resolved


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def register_folder(
    session: Session, folder: Path, *, max_pixels: int, progress: Progress | None = None
) -> RegistrationReport:
    """Register every readable image below `folder`; anything else is skipped with its reason."""
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    under_folder = Image.path.startswith(f"{folder}{os.sep}", autoescape=True)
    known = dict(session.execute(select(Image.path, Image.id).where(under_folder)).tuples().all())
    report = RegistrationReport()
    for done, path in enumerate(files, start=1):
        if str(path) in known:
            report.already_known += 1
        else:
            _register_one(session, path, "folder", max_pixels=max_pixels, report=report)
        if done % 200 == 0 or done == len(files):
            session.commit()  # keep write transactions short; progress is written elsewhere
            if progress is not None:
                progress(done, len(files))
    session.commit()
    return report


def _register_one(
    session: Session, path: Path, source: str, *, max_pixels: int, report: RegistrationReport
) -> None:
    try:
        info = inspect_image(path, max_pixels=max_pixels)
    except ImageDecodeError as err:
        report.skipped.append(SkippedFile(str(path), err.code, err.reason))
        return
    _add_image(session, path, info, source, sha256_of(path))
    report.registered += 1


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
    return _add_image(session, target, info, "upload", digest)

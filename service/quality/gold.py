"""Gold tasks: the guide's gold images found in the gold folder and registered as gold.

A gold image is an `Image` with `source == "gold"` (so the pool, rounds' ordinary selection
and training leave it out); its expected label is a `GoldAnswer` row, which nothing sends to
Label Studio. Registering again is a no-op for images already known and updates answers
that a new guide version changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from guides import Guide
from models.errors import ImageDecodeError
from models.images import inspect_image
from service.audit import record
from service.context import ServiceContext
from service.core.errors import ServiceError
from service.core.orm import Image
from service.learning.gold import GOLD_SOURCE
from service.pool.registration import is_inside, sha256_of
from service.quality.tables import GoldAnswer


class GoldFolderMissing(ServiceError):
    status_code, code = 409, "gold_folder_missing"


@dataclass
class GoldRegistration:
    registered: int = 0
    known: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)  # reference, reason


def register_gold(session: Session, ctx: ServiceContext) -> GoldRegistration:
    """Register the guide's gold images from `quality.gold_dir` and store their answers."""
    folder = ctx.settings.quality.gold_dir
    if folder is None:
        raise GoldFolderMissing("quality.gold_dir is not set: gold tasks cannot be resolved")
    root = folder.expanduser().resolve()
    if not is_inside(root, ctx.settings.allowed_roots):
        raise GoldFolderMissing(f"the gold folder {root} is not under an allowed root")
    report = GoldRegistration()
    answers = {a.image_id: a for a in session.scalars(select(GoldAnswer))}
    for task in ctx.guide.gold_tasks:
        image, reason = _gold_image(session, root, task.image, ctx)
        if image is None:
            report.skipped.append({"reference": task.image, "reason": str(reason)})
            continue
        report.known += image.id in answers
        report.registered += image.id not in answers
        _store_answer(
            session, answers.get(image.id), image, task.image, task.expected_label, ctx.guide
        )
    record(
        session,
        "image.registered",
        subject=("gold", ctx.guide.version),
        after={"registered": report.registered, "known": report.known, "skipped": report.skipped},
    )
    session.commit()
    return report


def _gold_image(
    session: Session, root: Path, reference: str, ctx: ServiceContext
) -> tuple[Image | None, str | None]:
    if "://" in reference:
        return None, "gold images by URL are not fetched; put the file in the gold folder"
    path = (root / reference).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None, f"no file {reference} in the gold folder"
    found = session.scalar(select(Image).where(Image.path == str(path)))
    if found is not None:
        if found.source != GOLD_SOURCE:
            return None, "the file is registered as an ordinary pool image"
        return found, None
    try:
        info = inspect_image(path, max_pixels=ctx.settings.max_image_pixels)
    except ImageDecodeError as err:
        return None, err.reason
    image = Image(
        path=str(path),
        sha256=sha256_of(path),
        width=info.width,
        height=info.height,
        source=GOLD_SOURCE,
    )
    session.add(image)
    session.flush()
    return image, None


def _store_answer(
    session: Session,
    answer: GoldAnswer | None,
    image: Image,
    reference: str,
    label: str,
    guide: Guide,
) -> None:
    if answer is None:
        answer = GoldAnswer(image_id=image.id)
        session.add(answer)
    answer.expected_label, answer.reference = label, reference
    answer.guide_version, answer.guide_fingerprint = str(guide.version), guide.fingerprint()


def gold_answers(session: Session) -> dict[int, str]:
    """Expected label by gold image id."""
    rows = session.execute(select(GoldAnswer.image_id, GoldAnswer.expected_label)).tuples()
    return {image_id: label for image_id, label in rows}

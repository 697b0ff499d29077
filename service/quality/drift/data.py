"""What drift checks read: the reference a guide version fixes, and the data of a window.

The reference rule: the first drift check under a guide version (its fingerprint) fixes
`registered_until`; the reference is then a seeded uniform sample of the usable, non-gold
images registered up to that moment. Images labeled under the guide version are among them,
but the labeled images alone would be no reference: active learning picked them for being
uncertain, so they are not distributed like the pool. New images are those registered after.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from guides import Guide
from service.core.orm import Image, utcnow
from service.learning.gold import GOLD_SOURCE
from service.quality.drift.tables import DriftReference

REFERENCE_MAX = 2000  # reference images sampled per check
NEW_MAX = 5000  # newest images of a window checked

REFERENCE_RULE = (
    "a seeded uniform sample of at most {n_max} usable, non-gold images registered up to "
    "{until} (when the first drift check under guide {version} ({fingerprint}) fixed the "
    "reference); predictions are compared on the reference images the model was not trained "
    "on (unlabeled ones)"
)


def aware(moment: datetime) -> datetime:
    """`moment` in UTC (SQLite hands back naive datetimes)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def reference_for(session: Session, guide: Guide) -> tuple[DriftReference, bool]:
    """The guide version's reference, fixed now when it has none yet (flush only).

    Returns the row and whether it was fixed by this call.
    """
    row = session.get(DriftReference, guide.fingerprint())
    if row is not None:
        return row, False
    row = DriftReference(
        guide_fingerprint=guide.fingerprint(),
        guide_version=str(guide.version),
        registered_until=utcnow(),
    )
    session.add(row)
    session.flush()
    return row, True


def describe_reference(row: DriftReference) -> str:
    return REFERENCE_RULE.format(
        n_max=REFERENCE_MAX,
        until=aware(row.registered_until).isoformat(),
        version=row.guide_version,
        fingerprint=row.guide_fingerprint,
    )


@dataclass(frozen=True)
class Sample:
    images: list[Image]  # in sample order

    @property
    def ids(self) -> list[int]:
        return [image.id for image in self.images]


def _pool_images() -> Select[tuple[Image]]:
    """Usable, non-gold images."""
    return select(Image).where(Image.unusable_reason.is_(None), Image.source != GOLD_SOURCE)


def reference_sample(
    session: Session, row: DriftReference, *, exclude: Sequence[int] = ()
) -> Sample:
    """At most `REFERENCE_MAX` reference images, the same ones at every check (seeded)."""
    query = _pool_images().where(Image.registered_at <= row.registered_until).order_by(Image.id)
    skip = set(exclude)
    images = [image for image in session.scalars(query) if image.id not in skip]
    if len(images) > REFERENCE_MAX:
        seed = int(hashlib.sha256(row.guide_fingerprint.encode()).hexdigest()[:8], 16)
        chosen = np.random.default_rng(seed).choice(len(images), REFERENCE_MAX, replace=False)
        images = [images[i] for i in sorted(chosen)]
    return Sample(images)


def new_sample(session: Session, start: datetime, end: datetime) -> Sample:
    """The newest `NEW_MAX` usable, non-gold images registered in `(start, end]`."""
    query = (
        _pool_images()
        .where(Image.registered_at > start, Image.registered_at <= end)
        .order_by(Image.id.desc())
        .limit(NEW_MAX)
    )
    return Sample(list(reversed(list(session.scalars(query)))))


def labels_in_window(session: Session, start: datetime, end: datetime) -> list[str]:
    """Confirmed labels (seed or annotation) given in `(start, end]`, gold images left out."""
    query = select(Image.label).where(
        Image.label.is_not(None),
        Image.source != GOLD_SOURCE,
        Image.labeled_at > start,
        Image.labeled_at <= end,
    )
    return [str(label) for label in session.scalars(query)]

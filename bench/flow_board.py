"""The flow board over a pool of 100,000 images: how long `GET /v1/board` takes to compute.

A SQLite database (the default store) is filled in bulk: 100,000 images, 1,000 seed labels,
two pushed rounds of 10,000 tasks each (the guide's overlap plan: a tenth of the tasks get
two annotators), 12,000 answers from 8 annotators, and a stored agreement report. The board
is built cold (the first call parses the report and plans each round's overlap) and warm.

Run: `.venv/bin/python -m bench.flow_board` (writes bench/results/flow_board.json).
"""

from __future__ import annotations

import json
import platform
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from pydantic import SecretStr
from sqlalchemy import insert

from guides import example_guide_path, load_guide
from service.audit.tables import AuditEntry
from service.auth.signing import MediaSigner
from service.context import ServiceContext
from service.core.db import make_engine, session_factory
from service.core.orm import Annotation, Image, ModelVersion, Round, RoundItem, utcnow
from service.core.settings import Settings
from service.flow.board import build_board
from service.quality.run import compute_agreement
from service.quality.store import store_report
from service.studio.overlap import overlap_plan

POOL, SEEDS, ROUNDS, PER_ROUND, ANSWERS, ANNOTATORS = 100_000, 1_000, 2, 10_000, 12_000, 8
RESULT = Path(__file__).resolve().parent / "results" / "flow_board.json"


def fill(ctx: ServiceContext) -> None:
    """Bulk rows shaped as registration, seeding, pushes and intake leave them."""
    guide, now, rng = ctx.guide, utcnow(), np.random.default_rng(0)
    names = guide.label_names
    with ctx.sessions() as session:
        session.execute(
            insert(Image),
            [
                {
                    "path": f"/pool/{i:06d}.png",
                    "sha256": f"{i:064x}",
                    "width": 28,
                    "height": 28,
                    "source": "folder",
                    "registered_at": now - timedelta(days=3),
                    "label": names[i % 10] if i < SEEDS else None,
                    "label_source": "seed" if i < SEEDS else None,
                    "labeled_at": now - timedelta(days=3) if i < SEEDS else None,
                }
                for i in range(POOL)
            ],
        )
        session.add(
            ModelVersion(
                id="h-bench",
                backbone_id="bench",
                checkpoint_path="unused",
                n_train=SEEDS,
                class_names=names,
                metrics={},
                guide_fingerprint=guide.fingerprint(),
                labels_digest="0" * 64,
            )
        )
        tasks: list[tuple[int, int, int]] = []  # task, image, round
        for r in range(1, ROUNDS + 1):
            session.add(
                Round(
                    id=r,
                    status="pushed",
                    strategy="entropy",
                    k=PER_ROUND,
                    model_version="h-bench",
                    pool_size=POOL,
                    project_id=1,
                    created_at=now - timedelta(hours=30 - 10 * r),
                )
            )
            session.flush()
            session.add(
                AuditEntry(
                    at=now - timedelta(hours=30 - 10 * r),
                    actor="bench",
                    action="task.pushed",
                    subject_type="round",
                    subject_id=str(r),
                )
            )
            first = SEEDS + 1 + (r - 1) * PER_ROUND
            tasks += [(100_000 + i, i, r) for i in range(first, first + PER_ROUND)]
        session.execute(
            insert(RoundItem),
            [
                {
                    "round_id": r,
                    "image_id": image,
                    "rank": n % PER_ROUND + 1,
                    "score": 0.5,
                    "predicted_label": names[0],
                    "predicted_probability": 0.5,
                    "model_version": "h-bench",
                    "task_id": task,
                }
                for n, (task, image, r) in enumerate(tasks)
            ],
        )
        answers = []
        for r in range(1, ROUNDS + 1):
            ids = [t for t, _, rr in tasks if rr == r]
            plan = overlap_plan(ids, [False] * len(ids), guide.overlap, seed=r)
            answered = ids[: ANSWERS // ROUNDS]
            for task in answered:
                for who in range(plan.get(task, 1)):
                    at = now - timedelta(minutes=float(rng.uniform(0, 20 * 60)))
                    answers.append(
                        {
                            "studio_annotation_id": len(answers) + 1,
                            "project_id": 1,
                            "task_id": task,
                            "image_id": task - 100_000,
                            "label": names[int(rng.integers(0, 10)) if who else task % 10],
                            "status": "accepted",
                            "annotator": 100 + (task + who) % ANNOTATORS,
                            "guide_version": str(guide.version),
                            "guide_fingerprint": guide.fingerprint(),
                            "studio_created_at": at,
                            "studio_updated_at": at,
                            "deleted": False,
                            "synced_at": at,
                        }
                    )
        session.execute(insert(Annotation), answers)
        session.commit()
        store_report(session, "agreement", compute_agreement(session, ctx))
        session.commit()


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="flow-board-bench-"))
    settings = Settings(data_dir=root, public_url="http://127.0.0.1:8000")
    engine = make_engine(f"sqlite:///{root / 'board.db'}")
    guide = load_guide(example_guide_path("fashion-mnist"))
    signer = MediaSigner(SecretStr("s" * 32), public_url=settings.public_url, lifetime_s=3600)
    runtime = SimpleNamespace(backbone_id="bench")  # the report names no active model: none
    ctx = ServiceContext(settings, guide, engine, session_factory(engine), runtime, None, signer)  # type: ignore[arg-type]
    started = time.perf_counter()
    fill(ctx)
    print(f"filled in {time.perf_counter() - started:.1f} s")
    times = []
    for _ in range(6):
        started = time.perf_counter()
        with ctx.sessions() as session:
            board = build_board(session, ctx)
        times.append(time.perf_counter() - started)
    counts = {c.name: c.count for c in board.columns}
    warm = statistics.median(times[1:])
    print(f"board: cold {times[0]:.3f} s, warm median {warm:.3f} s; {counts}")
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(
        json.dumps(
            {
                "images": POOL,
                "tasks": ROUNDS * PER_ROUND,
                "annotations": ANSWERS,
                "database": "sqlite",
                "cold_s": round(times[0], 4),
                "warm_median_s": round(warm, 4),
                "counts": counts,
                "machine": platform.processor() or platform.machine(),
                "date": time.strftime("%Y-%m-%d"),
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()

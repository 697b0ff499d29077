"""Push benchmark: 20,000 tasks with predictions into a local Label Studio, three ways.

- the service's push path (`studio.push.push_round`: content-hash ledger, chunked imports
  recorded before and after, signed image URLs), over a round of 20,000 new images;
- a bare bulk import of the same payload (the same JSON per task, in import calls of the same
  chunk size) into another project, timed before and after the service's push: Label Studio's
  own ceiling;
- a per-task loop (one import call per task) over a few hundred tasks, its rate extrapolated.

Then a forced retry: a second round is pushed while one chunk's answer is lost (Label Studio
creates the tasks, the service never hears), and the first round is pushed again after being
marked cut off (status `pushing`, its items' task ids cleared). Duplicates are counted by the
content hash in Label Studio's task `meta`, over every task of the project. Every HTTP answer
is counted by status (an httpx transport on each client). The bench guide asks for no overlap:
Label Studio has no bulk call for a task's overlap, so the example guide's 10% overlap costs
one PATCH per overlapped task; that rate is measured and reported apart.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import insert, select, update
from studio_env import RESULTS, bench_context, start_label_studio, studio_settings

from guides.schema import OverlapPolicy
from labeling.gateway import LabelStudioGateway, build_label_config
from labeling.local_server import LocalLabelStudio, free_loopback_port
from labeling.studio_config import project_spec
from labeling.tasks import CONTENT_HASH_KEY, Suggestion, TaskDraft, task_payload
from service.context import ServiceContext
from service.core.orm import Image, ModelVersion, Round, RoundItem, utcnow
from service.studio.push import push_round

TASKS, RETRY_TASKS, PER_TASK, PATCHES, CHUNK = 20_000, 5_000, 300, 60, 1000


class Counting(httpx.BaseTransport):
    """Counts answers by status; `lose` = n drops the answer of the n-th import call."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.statuses: Counter[int] = Counter()
        self.imports, self.lose = 0, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        self.statuses[response.status_code] += 1
        if request.method == "POST" and request.url.path.endswith("/import"):
            self.imports += 1
            if self.imports == self.lose:
                response.read()
                raise httpx.ReadTimeout("answer lost on purpose", request=request)
        return response

    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


def bench_service(server: LocalLabelStudio, transport: Counting) -> ServiceContext:
    """The service's context against `server`, its guide asking for no overlap."""
    settings = studio_settings(
        server,
        RESULTS.parent / "cache" / "ls-push-service",
        public_url=f"http://127.0.0.1:{free_loopback_port()}",
        project_title=f"push bench {uuid.uuid4().hex[:6]}",
        reconcile_every_s=0,
        push_chunk_size=CHUNK,
    )
    ctx = bench_context(settings)
    ctx.runtime.load()  # as the service does at start-up, not during a push
    ctx.gateway.close()
    gateway = LabelStudioGateway(server.url, server.api_token, timeout_s=600, transport=transport)
    guide = ctx.guide.model_copy(update={"overlap": OverlapPolicy()})
    return dataclasses.replace(ctx, gateway=gateway, guide=guide)


def make_round(ctx: ServiceContext, count: int) -> int:
    """A selected round of `count` new images with distinct contents (rows made directly).

    Every round's suggestions come from one model version (made once), so no push finds
    waiting tasks of another version to refresh.
    """
    tag, now, version = uuid.uuid4().hex, utcnow(), "bench"
    with ctx.sessions() as session:
        rows = [
            {
                "path": f"/bench/{tag}/{i}.png",
                "sha256": f"{tag}{i:032x}",
                "width": 28,
                "height": 28,
                "source": "folder",
                "registered_at": now,
            }
            for i in range(count)
        ]
        session.execute(insert(Image), rows)
        ids = sorted(session.scalars(select(Image.id).where(Image.path.like(f"/bench/{tag}/%"))))
        session.merge(
            ModelVersion(
                id=version,
                backbone_id="bench",
                checkpoint_path="-",
                n_train=0,
                class_names=list(ctx.guide.label_names),
                metrics={},
                guide_fingerprint="bench",
                labels_digest="bench",
            )
        )
        round_ = Round(strategy="entropy", k=count, model_version=version, pool_size=count)
        session.add(round_)
        session.flush()
        labels = ctx.guide.label_names
        session.execute(
            insert(RoundItem),
            [
                {
                    "round_id": round_.id,
                    "image_id": image_id,
                    "rank": rank,
                    "score": 1.0 - rank / count,
                    "predicted_label": labels[rank % len(labels)],
                    "predicted_probability": 0.4,
                    "model_version": version,
                }
                for rank, image_id in enumerate(ids)
            ],
        )
        session.commit()
        return round_.id


def timed_push(ctx: ServiceContext, round_id: int) -> float:
    started = time.perf_counter()
    with ctx.sessions() as session:
        push_round(session, ctx, round_id)
    return time.perf_counter() - started


def same_payload(ctx: ServiceContext, round_id: int) -> list[dict[str, Any]]:
    """The import JSON the service sent for the round's tasks, rebuilt."""
    with ctx.sessions() as session:
        items = list(session.scalars(select(RoundItem).where(RoundItem.round_id == round_id)))
        hashes = dict(session.execute(select(Image.id, Image.sha256)).all())
    return [
        task_payload(
            TaskDraft(
                image_id=item.image_id,
                image_url=ctx.media.url(item.image_id),
                suggestion=Suggestion(
                    item.predicted_label, item.predicted_probability, item.model_version
                ),
                meta={
                    "round": round_id,
                    "rank": item.rank,
                    "uncertainty": round(item.score, 6),
                    CONTENT_HASH_KEY: hashes[item.image_id],
                },
            )
        )
        for item in items
    ]


def raw_project(http: httpx.Client, ctx: ServiceContext, title: str) -> int:
    spec = project_spec(ctx.guide, title=title)
    body = {"title": title, "label_config": build_label_config(spec)}
    return int(http.post("/api/projects/", json=body).raise_for_status().json()["id"])


def raw_import(http: httpx.Client, project_id: int, payload: list[dict[str, Any]]) -> float:
    """Seconds a bare bulk import of `payload` takes, in calls of `CHUNK` tasks."""
    started = time.perf_counter()
    for start in range(0, len(payload), CHUNK):
        chunk = payload[start : start + CHUNK]
        response = http.post(f"/api/projects/{project_id}/import", json=chunk)
        response.raise_for_status()
    return time.perf_counter() - started


def per_task(http: httpx.Client, project_id: int, payload: list[dict[str, Any]]) -> float:
    """Tasks per second of one import call per task (each with its prediction)."""
    started = time.perf_counter()
    for task in payload:
        http.post(f"/api/projects/{project_id}/import", json=[task]).raise_for_status()
    return len(payload) / (time.perf_counter() - started)


def overlap_patches(http: httpx.Client, project_id: int) -> float:
    """PATCHes per second setting one task's overlap, as the overlap policy does per task."""
    params = {"project": project_id, "page_size": PATCHES, "fields": "task_only"}
    tasks = http.get("/api/tasks/", params=params).raise_for_status().json()["tasks"]
    started = time.perf_counter()
    for task in tasks:
        body = {"overlap": 2, "is_labeled": False}
        http.patch(f"/api/tasks/{task['id']}/", json=body).raise_for_status()
    return len(tasks) / (time.perf_counter() - started)


def hashes_in_studio(http: httpx.Client, project_id: int) -> Counter[str]:
    """Tasks per content hash over every task of the project (read page by page)."""
    per_hash: Counter[str] = Counter()
    for page in range(1, 1_000):
        params = {"project": project_id, "page": page, "page_size": 1000, "fields": "task_only"}
        response = http.get("/api/tasks/", params=params)
        if response.status_code == 404:
            break
        batch = response.raise_for_status().json()["tasks"]
        per_hash.update(str(t["meta"].get(CONTENT_HASH_KEY)) for t in batch)
        if len(batch) < 1000:
            break
    return per_hash


def forced_retries(ctx: ServiceContext, transport: Counting, first_round: int) -> dict[str, Any]:
    """A lost answer mid-push, then a pushed round marked cut off and pushed again."""
    second = make_round(ctx, RETRY_TASKS)
    transport.lose = transport.imports + 2  # the second chunk's answer
    lost_s = timed_push(ctx, second)
    with ctx.sessions() as session:
        session.execute(update(Round).where(Round.id == first_round).values(status="pushing"))
        session.execute(
            update(RoundItem).where(RoundItem.round_id == first_round).values(task_id=None)
        )
        session.commit()
    imports_before = transport.imports
    again_s = timed_push(ctx, first_round)
    return {
        "lost_answer_round_tasks": RETRY_TASKS,
        "lost_answer_push_s": round(lost_s, 2),
        "repush_after_cut_off_s": round(again_s, 2),
        "imports_during_repush": transport.imports - imports_before,
    }


def main() -> None:
    load_before = os.getloadavg()
    server = start_label_studio("ls-push-label-studio")
    transport, raw_transport = Counting(), Counting()
    headers = {"Authorization": f"Token {server.api_token}"}
    http = httpx.Client(base_url=server.url, headers=headers, timeout=600, transport=raw_transport)
    try:
        ctx = bench_service(server, transport)
        round_id = make_round(ctx, TASKS)
        payload = same_payload(ctx, round_id)
        raw_id = raw_project(http, ctx, f"push bench raw {uuid.uuid4().hex[:6]}")
        raw_s = raw_import(http, raw_id, payload[: TASKS // 2])
        print(f"raw import (first half): {TASKS // 2 / raw_s:.0f} tasks/s", flush=True)
        push_s = timed_push(ctx, round_id)
        print(f"service push: {TASKS / push_s:.0f} tasks/s", flush=True)
        raw_s += raw_import(http, raw_id, payload[TASKS // 2 :])
        raw_rate = TASKS / raw_s
        print(f"raw import: {raw_rate:.0f} tasks/s", flush=True)
        loop_id = raw_project(http, ctx, f"push bench loop {uuid.uuid4().hex[:6]}")
        loop_rate = per_task(http, loop_id, payload[:PER_TASK])
        patch_rate = overlap_patches(http, raw_id)
        retry = forced_retries(ctx, transport, round_id)
        with ctx.sessions() as session:
            project_id = int(session.get(Round, round_id).project_id)  # type: ignore[union-attr]
        per_hash = hashes_in_studio(http, project_id)
        result = summary(push_s, raw_rate, loop_rate, patch_rate, retry, per_hash, transport)
        result["server_errors"] += raw_transport.server_errors()
        result["load_average"] = {"before": load_before, "after": os.getloadavg()}
        print(json.dumps(result, indent=2), flush=True)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "ls_push.json").write_text(json.dumps(result, indent=2) + "\n")
    finally:
        http.close()
        server.stop()


def summary(
    push_s: float,
    raw_rate: float,
    loop_rate: float,
    patch_rate: float,
    retry: dict[str, Any],
    per_hash: Counter[str],
    transport: Counting,
) -> dict[str, Any]:
    rate = TASKS / push_s
    expected = TASKS + RETRY_TASKS
    return {
        "tasks": TASKS,
        "chunk_size": CHUNK,
        "seconds": round(push_s, 2),
        "tasks_per_s": round(rate, 1),
        "raw_import_tasks_per_s": round(raw_rate, 1),
        "fraction_of_raw_import": round(rate / raw_rate, 3),
        "per_task_tasks_per_s": round(loop_rate, 2),
        "per_task_tasks": PER_TASK,
        "per_task_kind": "one import call per task, with its prediction",
        "speedup_vs_per_task": round(rate / loop_rate, 1),
        "server_errors": transport.server_errors(),
        "answers_by_status": {str(k): v for k, v in sorted(transport.statuses.items())},
        "forced_retry": retry,
        "project_tasks": sum(per_hash.values()),
        "expected_project_tasks": expected,
        "duplicates_after_retry": sum(n - 1 for n in per_hash.values() if n > 1),
        "overlap_patch_per_s": round(patch_rate, 2),
        "example_guide_overlap_s_per_20k": round(0.1 * TASKS / patch_rate, 1),
        "machine": "2-core AMD EPYC CPU, no GPU",
        "platform": platform.machine(),
        "date": datetime.now(UTC).date().isoformat(),
    }


if __name__ == "__main__":
    main()

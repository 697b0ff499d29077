"""The service and Label Studio behind `load.py --with-jobs` and `soak.py`.

A real Label Studio (from the cached template) and `activelabel serve` as a subprocess on a
fresh SQLite database, embedding at 64x64 pixels so that a small CPU keeps up with the pool.
`start_stack` registers 500 Fashion-MNIST PNGs, stores 10 seed labels per class, trains and
pushes a first round; `drain` waits for the jobs to end and `job_report` counts them.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from studio_env import CACHE, ServiceProcess, start_label_studio, studio_settings

from labeling.local_server import LocalLabelStudio, free_loopback_port
from models.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist, write_pngs
from service.auth.keys import create_key
from service.core.db import make_engine, session_factory
from service.core.settings import Settings
from service.studio.webhooks import webhook_secret

SEED_IMAGES, SEED_PER_CLASS, POOL_IMAGES, IMAGE_SIZE = 500, 10, 5000, 64
FIRST_ROUND = 200
IMAGES = CACHE / "mixed-images"
REPOSITORY = Path(__file__).resolve().parents[1]
LOCK_ERROR = re.compile(r"database is locked|database busy", re.IGNORECASE)
RETRIED = re.compile(r"database busy \(.*\); retrying")  # the line of a write tried again
SKIPPED = re.compile(r"not recorded: the database is busy")  # a best-effort write left out
UNHANDLED = re.compile(r'"message": "unhandled error in ')  # the service answered 500
FINISHED = ("succeeded", "failed", "cancelled")


@dataclass
class Stack:
    """Label Studio, the service and what the drivers need to call both."""

    studio: LocalLabelStudio
    service: ServiceProcess
    settings: Settings
    headers: dict[str, str]
    secret: str
    project_id: int = 0
    image_ids: list[int] = field(default_factory=list)  # seed-folder images left unlabeled
    job_ids: list[str] = field(default_factory=list)  # jobs the drivers were answered with

    def api(self, timeout_s: float = 120) -> httpx.Client:
        return httpx.Client(base_url=self.service.url, headers=self.headers, timeout=timeout_s)

    def log_counts(self) -> dict[str, int]:
        """Lock errors, busy writes retried or skipped, 500 answers in the service's log (lines)."""
        lines = self.service.log_path.read_text(errors="replace").splitlines()
        locks = [line for line in lines if LOCK_ERROR.search(line)]
        retried = sum(1 for line in locks if RETRIED.search(line))
        return {
            "lock_errors_logged": len(locks) - retried,
            "lock_retries_logged": retried,  # a busy write tried again, not an error
            "busy_skips_logged": sum(1 for line in lines if SKIPPED.search(line)),
            "server_errors_logged": sum(1 for line in lines if UNHANDLED.search(line)),
        }

    def close(self) -> None:
        self.service.stop()
        self.studio.stop()


def start_stack(name: str) -> Stack:
    """Label Studio and the service started, the seed pool registered, trained and pushed."""
    studio = start_label_studio(f"{name}-label-studio")
    try:
        port = free_loopback_port()
        settings = studio_settings(
            studio,
            CACHE / f"{name}-service",
            public_url=f"http://127.0.0.1:{port}",
            project_title=f"{name} {uuid.uuid4().hex[:6]}",
            reconcile_every_s=0,  # the drivers ask for reconciliation themselves
        )
        settings.data_dir.mkdir(parents=True)
        engine = make_engine(settings.resolved_database_url)
        with session_factory(engine)() as session:
            token = create_key(session, name).token.get_secret_value()
        engine.dispose()
        service = ServiceProcess(settings, port, settings.data_dir / "service.log")
        service.env["ACTIVELABEL_MODEL__IMAGE_SIZE"] = str(IMAGE_SIZE)
        service.env["ACTIVELABEL_ALLOWED_ROOTS"] = json.dumps([str(IMAGES.resolve())])
        service.env["PYTHONPATH"] = str(REPOSITORY)  # this checkout's packages
        service.start()
        headers = {"Authorization": f"Bearer {token}"}
        stack = Stack(studio, service, settings, headers, webhook_secret(settings))
        seed(stack)
    except BaseException:
        studio.stop()
        raise
    return stack


def write_images() -> tuple[Path, Path]:
    """The seed folder (test split) and the 5,000-image pool folder (train split), cached."""
    test, _ = load_fashion_mnist("test")
    train, _ = load_fashion_mnist("train")
    seed_dir, pool_dir = IMAGES / "seed", IMAGES / "pool"
    write_pngs(test[:SEED_IMAGES], seed_dir, names=[f"{i:05d}" for i in range(SEED_IMAGES)])
    write_pngs(train[:POOL_IMAGES], pool_dir, names=[f"{i:05d}" for i in range(POOL_IMAGES)])
    return seed_dir.resolve(), pool_dir.resolve()


def seed(stack: Stack) -> None:
    """Register the seed folder, store 10 labels per class, train, push a first round."""
    seed_dir, _ = write_images()
    _, labels = load_fashion_mnist("test")
    with stack.api(600) as api:
        registered = wait_job(
            api, call(api, "POST", "/v1/images/register", json={"folder": str(seed_dir)})
        )
        ids: dict[str, int] = {}
        page = get_json(api, "/v1/images", {"limit": 1000})
        ids.update({Path(item["path"]).stem: item["id"] for item in page["items"]})
        per_class: dict[int, int] = {}
        seeds = []
        for i, label in enumerate(int(x) for x in labels[:SEED_IMAGES]):
            if per_class.setdefault(label, 0) < SEED_PER_CLASS:
                per_class[label] += 1
                seeds.append({"image_id": ids[f"{i:05d}"], "label": FASHION_MNIST_CLASSES[label]})
        call(api, "POST", "/v1/labels", json={"labels": seeds, "source": "seed"})
        trained = wait_job(api, call(api, "POST", "/v1/models/train"))
        first = {"k": FIRST_ROUND, "retrain": False}
        pushed = wait_job(api, call(api, "POST", "/v1/rounds", json=first))
        stack.job_ids += [registered, trained, pushed]
        stack.image_ids = sorted(set(ids.values()) - {s["image_id"] for s in seeds})
        rounds = get_json(api, "/v1/rounds")["items"]
        stack.project_id = int(rounds[0]["project_id"])


def call(api: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    """The bench's own call (not a counted request), its JSON; 5xx or no answer is retried."""
    for _ in range(60):
        try:
            response = api.request(method, path, **kwargs)
            if response.status_code < 500:
                return response.raise_for_status().json()
        except httpx.TransportError:
            pass  # the service restarting
        time.sleep(1.0)
    raise RuntimeError(f"{method} {path} answered no JSON in 60 tries")


def get_json(api: httpx.Client, path: str, params: dict[str, Any] | None = None) -> Any:
    return call(api, "GET", path, params=params)


def wait_job(api: httpx.Client, accepted: dict[str, Any], timeout_s: float = 900) -> str:
    """Wait for the job of a 202 answer's JSON to succeed; returns its id."""
    job_id = str(accepted["job_id"])
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = get_json(api, f"/v1/jobs/{job_id}")
        if job["status"] in FINISHED:
            if job["status"] != "succeeded":
                raise RuntimeError(f"setup job {job['kind']} ended {job['status']}: {job['error']}")
            return job_id
        time.sleep(0.3)
    raise RuntimeError(f"setup job {job_id} did not finish in {timeout_s:.0f}s")


def drain(stack: Stack, timeout_s: float) -> dict[str, int]:
    """Wait until no job is queued or running (bounded); returns the jobs counted by status."""
    deadline = time.monotonic() + timeout_s
    with stack.api() as api:
        while True:
            jobs = list_jobs(api)
            active = sum(job["status"] not in FINISHED for job in jobs)
            if active == 0 or time.monotonic() > deadline:
                return status_counts(jobs)
            time.sleep(2.0)


def list_jobs(api: httpx.Client) -> list[dict[str, Any]]:
    """Every job the service holds, oldest first (paged, bounded)."""
    jobs: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    for _ in range(1000):
        page = get_json(api, "/v1/jobs", params)
        jobs += page["items"]
        if page["next_cursor"] is None:
            return jobs
        params["cursor"] = page["next_cursor"]
    raise RuntimeError("too many pages of jobs")


def status_counts(jobs: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job["status"]] = counts.get(job["status"], 0) + 1
    return counts


def job_report(api: httpx.Client) -> dict[str, Any]:
    """Every job by kind and status; unfinished ones and failures without an error code."""
    jobs = list_jobs(api)
    by_kind: dict[str, dict[str, int]] = {}
    for job in jobs:
        by_kind.setdefault(job["kind"], {}).setdefault(job["status"], 0)
        by_kind[job["kind"]][job["status"]] += 1
    failed = [job for job in jobs if job["status"] == "failed"]
    return {
        "jobs": len(jobs),
        "jobs_by_status": status_counts(jobs),
        "jobs_by_kind": by_kind,
        "jobs_unfinished": sum(job["status"] not in FINISHED for job in jobs),
        "jobs_failed_without_code": sum(not (job["error"] or {}).get("code") for job in failed),
        "failure_codes": sorted({(job["error"] or {}).get("code", "") for job in failed}),
    }

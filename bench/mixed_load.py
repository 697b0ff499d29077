"""The work that runs beside the API clients in `load.py --with-jobs` and in `soak.py`.

A real Label Studio and the service as a subprocess on a fresh SQLite database. Before the
window: 500 Fashion-MNIST PNGs registered, 10 seed labels per class, a model trained and a
first round pushed. During the window, every driver bounded by the deadline:
- the registration of a 5,000-image folder (and the drift report it triggers);
- a reconciliation every 10 s; a retrain and a round every 30 s;
- annotations created in Label Studio on pushed tasks, each then delivered to the webhook as
  an ANNOTATION_CREATED event with the shared secret, 20 per second (Label Studio delivers
  its own copy too: the service must store each annotation once).
The service embeds at 64x64 pixels so that a small CPU keeps up with the pool.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from studio_env import CACHE, ServiceProcess, start_label_studio, studio_settings
from tally import Tally, timed

from labeling.errors import LabelingError
from labeling.gateway import LabelStudioGateway
from labeling.local_server import LocalLabelStudio, free_loopback_port
from labeling.tasks import prediction_result
from models.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist, write_pngs
from service.auth.keys import create_key
from service.core.db import make_engine, session_factory
from service.core.settings import Settings
from service.studio.webhooks import SECRET_HEADER, WEBHOOK_PATH, webhook_secret

SEED_IMAGES, SEED_PER_CLASS, POOL_IMAGES, IMAGE_SIZE = 500, 10, 5000, 64
FIRST_ROUND, ROUND_K = 200, 50
RECONCILE_EVERY_S, ROUND_EVERY_S = 10.0, 30.0
DELIVERIES_PER_S, DELIVERY_THREADS = 20.0, 12
IMAGES = CACHE / "mixed-images"
REPOSITORY = Path(__file__).resolve().parents[1]
LOCK_ERROR = re.compile(r"database is locked|database busy", re.IGNORECASE)
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
        """Lock errors and 500 answers in the service's log (every run of it), by line."""
        lines = self.service.log_path.read_text(errors="replace").splitlines()
        return {
            "lock_errors_logged": sum(1 for line in lines if LOCK_ERROR.search(line)),
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


class Drivers:
    """The jobs and deliveries of the window, each in its own thread, until `stop()`."""

    def __init__(self, stack: Stack, deadline: float, *, seed: int = 0) -> None:
        self.stack, self.deadline, self.seed = stack, deadline, seed
        self.stopped = threading.Event()
        self.tallies: list[Tally] = []
        self.delivered: set[int] = set()  # Label Studio ids of annotations created and sent
        self.tasks: list[dict[str, Any]] = []  # pushed tasks known so far (id, data, meta)
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        _, pool_dir = write_images()
        targets: list[tuple[Any, tuple[Any, ...]]] = [
            (self._once, ("register", "/v1/images/register", {"folder": str(pool_dir)})),
            (self._every, (RECONCILE_EVERY_S, [("reconcile", "/v1/annotations/reconcile", None)])),
            (
                self._every,
                (
                    ROUND_EVERY_S,
                    [
                        ("train", "/v1/models/train", None),
                        ("round", "/v1/rounds", {"k": ROUND_K, "retrain": False}),
                    ],
                ),
            ),
            (self._refresh_tasks, ()),
        ]
        targets += [(self._deliver, (n,)) for n in range(DELIVERY_THREADS)]
        for function, args in targets:
            thread = threading.Thread(target=function, args=args, daemon=True)
            self.threads.append(thread)
            thread.start()

    def stop(self) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(timeout=300)

    def _running(self) -> bool:
        return not self.stopped.is_set() and time.monotonic() < self.deadline

    def _tally(self) -> Tally:
        tally = Tally()
        with self.lock:
            self.tallies.append(tally)
        return tally

    def _enqueue(self, api: httpx.Client, tally: Tally, kind: str, path: str, body: Any) -> bool:
        """Ask for a job; True when it was accepted (its id is kept)."""
        response = timed(tally, kind, 202, lambda: api.post(path, json=body))
        if response is None or response.status_code != 202:
            return False
        with self.lock:
            self.stack.job_ids.append(str(response.json()["job_id"]))
        return True

    def _once(self, kind: str, path: str, body: Any) -> None:
        """One job request, repeated only until it is accepted (the service may be down)."""
        tally = self._tally()
        with self.stack.api() as api:
            while self._running() and not self._enqueue(api, tally, kind, path, body):
                self.stopped.wait(2.0)

    def _every(self, every_s: float, calls: list[tuple[str, str, Any]]) -> None:
        tally = self._tally()
        with self.stack.api() as api:
            while self._running():
                for kind, path, body in calls:
                    self._enqueue(api, tally, kind, path, body)
                self.stopped.wait(every_s)

    def _refresh_tasks(self) -> None:
        """Keep the list of pushed tasks current (new ones only, read from Label Studio)."""
        gateway = LabelStudioGateway(self.stack.studio.url, self.stack.studio.api_token)
        last = 0
        try:
            while self._running():
                try:
                    fresh = gateway.tasks_after(self.stack.project_id, last)
                except LabelingError:  # Label Studio may be down for a while: try again later
                    fresh = []
                rows = [{"id": t.task_id, "image_id": t.image_id, "meta": t.meta} for t in fresh]
                with self.lock:
                    self.tasks += rows
                last = max([last, *(t.task_id for t in fresh)])
                self.stopped.wait(5.0)
        finally:
            gateway.close()

    def _deliver(self, number: int) -> None:
        """Create annotations in Label Studio and deliver each to the webhook, paced."""
        rng = random.Random(self.seed * 1000 + number)
        tally, interval = self._tally(), DELIVERY_THREADS / DELIVERIES_PER_S
        studio = httpx.Client(
            base_url=self.stack.studio.url,
            headers={"Authorization": f"Token {self.stack.studio.api_token}"},
            timeout=60,
        )
        next_at = time.monotonic()
        with studio, self.stack.api(60) as api:
            while self._running():
                self.stopped.wait(max(0.0, next_at - time.monotonic()))
                next_at = max(next_at + interval, time.monotonic() - 1.0)
                with self.lock:
                    task = rng.choice(self.tasks) if self.tasks else None
                if task is not None:
                    self._deliver_one(studio, api, tally, task, rng)

    def _deliver_one(
        self,
        studio: httpx.Client,
        api: httpx.Client,
        tally: Tally,
        task: dict[str, Any],
        rng: random.Random,
    ) -> None:
        body = {"result": prediction_result(rng.choice(FASHION_MNIST_CLASSES)), "lead_time": 2.5}
        created = timed(
            tally,
            "studio",
            201,
            lambda: studio.post(f"/api/tasks/{task['id']}/annotations/", json=body),
        )
        if created is None or created.status_code != 201:
            return  # Label Studio down, or the task withdrawn: nothing was created
        annotation = created.json()
        with self.lock:
            self.delivered.add(int(annotation["id"]))
        event = {
            "action": "ANNOTATION_CREATED",
            "annotation": annotation,
            "task": {
                "id": task["id"],
                "data": {"image_id": task["image_id"]},
                "meta": task["meta"],
            },
            "project": {
                "id": self.stack.project_id,
                "title": self.stack.settings.label_studio.project_title,
            },
        }
        timed(
            tally,
            "webhook",
            202,
            lambda: api.post(WEBHOOK_PATH, json=event, headers={SECRET_HEADER: self.stack.secret}),
        )


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

"""Fault scenarios (b) and (c): pushing rounds to Label Studio through a crash and a race.

(b) `kill -9` Label Studio while the service pushes a 2,000-image round, start it again on
    the same data directory and port, let the round job retry (or re-push the round once its
    attempts are spent): every image of the round has exactly one task.
(c) Two threads re-push a round again and again while its round job runs: no duplicate task.

Both use one service subprocess with 3,200 real Fashion-MNIST PNGs registered, 200 of them
seed-labeled; the first round trains the head. The service embeds at 64x64 pixels
(`ACTIVELABEL_MODEL__IMAGE_SIZE=64`) so that 3,200 images embed quickly on a small CPU: the
push is under test here, not the embedding.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from studio_env import CACHE, ServiceProcess, bench_context, studio_settings

from labeling.local_server import LocalLabelStudio, free_loopback_port
from models.datasets import load_fashion_mnist, write_pngs
from service.auth.keys import create_key

SEED_PER_CLASS, ROUND_B, ROUND_C = 20, 2000, 1000
IMAGES = 10 * SEED_PER_CLASS + ROUND_B + ROUND_C
IMAGE_SIZE = 64
FOLDER = CACHE / "faults-images"
REPOSITORY = Path(__file__).resolve().parents[1]


class PushBench:
    """The service (a subprocess) with the pool registered and seed labels stored."""

    def __init__(self, server: LocalLabelStudio) -> None:
        port = free_loopback_port()
        self.server, self.title = server, f"faults push {uuid.uuid4().hex[:6]}"
        data_dir = CACHE / "faults-push-service"
        settings = studio_settings(
            server,
            data_dir,
            public_url=f"http://127.0.0.1:{port}",
            project_title=self.title,
            reconcile_every_s=0,
        )
        ctx = bench_context(settings)
        with ctx.sessions() as session:
            key = create_key(session, "faults push").token.get_secret_value()
        self.service = ServiceProcess(settings, port, data_dir / "service.log")
        self.service.env["ACTIVELABEL_MODEL__IMAGE_SIZE"] = str(IMAGE_SIZE)
        self.service.env["ACTIVELABEL_ALLOWED_ROOTS"] = json.dumps([str(FOLDER.resolve())])
        self.service.env["PYTHONPATH"] = str(REPOSITORY)  # this checkout's packages, all of them
        self.service.start()
        self.api = httpx.Client(
            base_url=self.service.url, headers={"Authorization": f"Bearer {key}"}, timeout=120
        )
        self.studio = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Token {server.api_token}"}, timeout=300
        )
        self.server_errors = 0  # 5xx answers to reads, each retried
        self.setup_s = _seed_pool(self)

    def close(self) -> None:
        self.api.close()
        self.studio.close()
        self.service.stop()

    def get(self, path: str, **params: Any) -> Any:
        """The JSON of a read of the service; a 5xx answer is counted and retried."""
        for _ in range(60):
            response = self.api.get(path, params=params)
            if response.status_code < 500:
                return response.raise_for_status().json()
            self.server_errors += 1
            time.sleep(1.0)
        raise RuntimeError(f"GET {path} kept answering {response.status_code}")

    def wait(self, accepted: dict[str, Any], *, timeout_s: float = 1800) -> dict[str, Any]:
        """The job behind a 202 answer (`status_url`), once it has finished."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.get(accepted["status_url"])
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return dict(job)
            time.sleep(0.5)
        raise RuntimeError(f"job {accepted['job_id']} did not finish in {timeout_s:.0f}s")

    def round_ids(self) -> list[int]:
        ids: list[int] = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            page = self.get("/v1/rounds", **params)
            ids += [r["id"] for r in page["items"]]
            if page["next_cursor"] is None:
                return ids
            params["cursor"] = page["next_cursor"]

    def project_id(self) -> int | None:
        """The service's Label Studio project, once the first push has created it."""
        found = self.studio.get("/api/projects/", params={"title": self.title, "page_size": 100})
        body = found.raise_for_status().json()
        projects = body["results"] if isinstance(body, dict) else body
        ids = [p["id"] for p in projects if p["title"] == self.title]
        return int(ids[0]) if ids else None

    def task_count(self, project_id: int) -> int:
        project = self.studio.get(f"/api/projects/{project_id}/").raise_for_status().json()
        return int(project["task_number"])

    def tasks(self, project_id: int) -> list[dict[str, Any]]:
        """Every task of the project, read from Label Studio's tasks API (not the gateway)."""
        tasks: list[dict[str, Any]] = []
        for page in range(1, 10_000):
            params = {"project": project_id, "page": page, "page_size": 1000, "fields": "all"}
            response = self.studio.get("/api/tasks/", params=params)
            if response.status_code == 404:  # past the last page
                return tasks
            body = response.raise_for_status().json()
            batch = body["tasks"] if isinstance(body, dict) else body
            tasks += batch
            if len(batch) < 1000:
                return tasks
        raise RuntimeError("too many pages of tasks")


def _seed_pool(bench: PushBench) -> float:
    """Write and register the PNGs, store seed labels; returns the seconds it took."""
    started = time.monotonic()
    images, labels = load_fashion_mnist("train")
    folder = FOLDER.resolve()
    write_pngs(images[:IMAGES], folder, names=[f"{i:05d}.png" for i in range(IMAGES)])
    registering = bench.api.post("/v1/images/register", json={"folder": str(folder)})
    job = bench.wait(registering.raise_for_status().json())
    if job["status"] != "succeeded":
        raise RuntimeError(f"registration failed: {job['error']}")
    ids: dict[str, int] = {}
    params: dict[str, Any] = {"limit": 1000}
    while True:
        page = bench.get("/v1/images", **params)
        ids.update({item["path"]: item["id"] for item in page["items"]})
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    names = [label["name"] for label in bench.get("/v1/guide")["labels"]]
    counts: Counter[int] = Counter()
    seeds = []
    for position, label in enumerate(int(x) for x in labels[:IMAGES]):
        if counts[label] < SEED_PER_CLASS:
            counts[label] += 1
            image_id = ids[str(folder / f"{position:05d}.png")]
            seeds.append({"image_id": image_id, "label": names[label]})
    bench.api.post("/v1/labels", json={"labels": seeds, "source": "seed"}).raise_for_status()
    return time.monotonic() - started


_BENCHES: dict[Path, PushBench] = {}


def push_bench(server: LocalLabelStudio, stack: ExitStack) -> PushBench:
    """One `PushBench` per Label Studio, shared by (b) and (c), closed with `stack`."""
    if server.data_dir not in _BENCHES:
        bench = _BENCHES[server.data_dir] = PushBench(server)
        stack.callback(bench.close)
        stack.callback(_BENCHES.pop, server.data_dir)
    return _BENCHES[server.data_dir]


def scenario_b(server: LocalLabelStudio, stack: ExitStack) -> dict[str, Any]:
    """Kill -9 Label Studio mid-push of a 2,000-image round; restart; one task per image."""
    bench = push_bench(server, stack)
    before = set(bench.round_ids())
    started = time.monotonic()
    accepted = bench.api.post("/v1/rounds", json={"k": ROUND_B}).raise_for_status().json()
    at_kill = _kill_mid_push(bench, accepted)
    time.sleep(1.0)
    restart = time.monotonic()
    server.start(timeout_s=300)
    restart_s = time.monotonic() - restart
    round_job = bench.wait(accepted)
    (round_id,) = set(bench.round_ids()) - before
    repush_job = None
    if round_job["status"] != "succeeded":  # its attempts were spent while Label Studio was down
        repush = bench.api.post(f"/v1/rounds/{round_id}/push").raise_for_status().json()
        repush_job = bench.wait(repush)
    result = _check_round(bench, round_id, ROUND_B)
    result.update(
        round_job={k: round_job.get(k) for k in ("status", "attempts", "error")},
        repush_job=None if repush_job is None else {k: repush_job.get(k) for k in ("status",)},
        tasks_in_studio_at_kill=at_kill,
        studio_restart_s=round(restart_s, 1),
        total_s=round(time.monotonic() - started, 1),
        setup_s=round(bench.setup_s, 1),
        image_size=IMAGE_SIZE,
        service_5xx_on_reads=bench.server_errors,
    )
    result["passed"] = result["passed"] and (repush_job or round_job)["status"] == "succeeded"
    return result


def _kill_mid_push(bench: PushBench, accepted: dict[str, Any]) -> int:
    """Wait until the project holds some of the round's tasks, then SIGKILL Label Studio.

    Tasks arrive in chunks of 1,000, so the kill lands while the next chunk is on its way
    (or its answer is). Returns how many tasks Label Studio had committed at the kill.
    """
    while True:
        project_id = bench.project_id()  # created by the push, after the selection
        if project_id is None and bench.get(accepted["status_url"])["status"] != "running":
            raise RuntimeError("the round job stopped before its push began")
        count = bench.task_count(project_id) if project_id is not None else 0
        if count > 0:
            bench.server.kill()
            return count
        time.sleep(0.2)


def scenario_c(server: LocalLabelStudio, stack: ExitStack) -> dict[str, Any]:
    """Two threads re-push a round while its round job runs; no duplicate task."""
    bench = push_bench(server, stack)
    round_id = max(bench.round_ids(), default=0) + 1  # the id the new round will get
    body = {"k": ROUND_C, "retrain": False}
    accepted = bench.api.post("/v1/rounds", json=body).raise_for_status().json()
    stop = threading.Event()
    answers: list[tuple[int, str | None]] = []
    threads = [
        threading.Thread(target=_repush_loop, args=(bench, round_id, stop, answers))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    round_job = bench.wait(accepted)
    time.sleep(5.0)  # keep re-pushing the pushed round for a while
    stop.set()
    for thread in threads:
        thread.join()
    jobs = {job_id for _, job_id in answers if job_id}
    finished = [bench.wait({"job_id": j, "status_url": f"/v1/jobs/{j}"}) for j in sorted(jobs)]
    result = _check_round(bench, round_id, ROUND_C)
    result.update(
        round_job={k: round_job.get(k) for k in ("status", "attempts", "error")},
        repush_requests=len(answers),
        repush_accepted=sum(status == 202 for status, _ in answers),
        repush_not_found_yet=sum(status == 404 for status, _ in answers),
        repush_jobs=len(jobs),
        repush_jobs_succeeded=sum(j["status"] == "succeeded" for j in finished),
        repush_5xx=sum(status >= 500 for status, _ in answers),
        service_5xx_on_reads=bench.server_errors,
    )
    result["passed"] = (
        result["passed"]
        and round_job["status"] == "succeeded"
        and result["repush_jobs"] > 0
        and result["repush_jobs_succeeded"] == result["repush_jobs"]
        and all(status in (202, 404) for status, _ in answers)
    )
    return result


def _repush_loop(
    bench: PushBench, round_id: int, stop: threading.Event, answers: list[tuple[int, str | None]]
) -> None:
    """`POST /v1/rounds/{id}/push` until told to stop (404 until the round is selected)."""
    while not stop.is_set():
        response = bench.api.post(f"/v1/rounds/{round_id}/push")
        job_id = response.json().get("job_id") if response.status_code == 202 else None
        answers.append((response.status_code, job_id))
        time.sleep(0.05)


def _check_round(bench: PushBench, round_id: int, k: int) -> dict[str, Any]:
    """Tasks per image of the round, counted on Label Studio's own tasks API."""
    round_ = bench.get(f"/v1/rounds/{round_id}")
    project_id = int(round_["project_id"])
    tasks = bench.tasks(project_id)
    mine = {item["image_id"]: item["task_id"] for item in round_["items"]}
    per_image = Counter(int(t["data"]["image_id"]) for t in tasks)
    image_of = {int(t["id"]): int(t["data"]["image_id"]) for t in tasks}
    counts = [per_image[i] for i in mine]
    result = {
        "round_images": len(mine),
        "round_status": round_["status"],
        "project_tasks": len(tasks),
        "images_without_task": sum(n == 0 for n in counts),
        "duplicate_tasks": sum(max(n - 1, 0) for n in counts),
        "max_tasks_per_image": max(counts, default=0),
        "duplicate_tasks_in_project": sum(n - 1 for n in per_image.values()),
        "items_pointing_elsewhere": sum(image_of.get(t or -1) != i for i, t in mine.items()),
        "tasks_without_prediction": sum(
            not t.get("total_predictions") for t in tasks if int(t["data"]["image_id"]) in mine
        ),
    }
    result["passed"] = (
        round_["status"] == "pushed"
        and len(mine) == k
        and result["images_without_task"] == 0
        and result["max_tasks_per_image"] == 1
        and result["duplicate_tasks_in_project"] == 0
        and result["items_pointing_elsewhere"] == 0
    )
    return result

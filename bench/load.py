"""Load: 32 clients on loopback for 60 s against a real service process, counting every error.

The service runs as `activelabel serve` on a fresh SQLite database with 300 Fashion-MNIST
PNGs registered and a model trained on 60 seed labels (Label Studio is not needed: webhook
deliveries are sent as Label Studio sends them, with the shared secret). Each client loops
over a weighted mix of predictions by ids, job status, image pages and webhook deliveries;
any answer other than the expected status, or any exception, is an error. As a floor,
`GET /health` is timed alone first (one client), the cheapest request the service answers.
`--with-jobs` runs the clients while the service's jobs run beside them (`load_jobs.py`).
Writes `bench/results/load.json` (each mode keeps the other's fields).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from studio_env import CACHE, RESULTS, ServiceProcess
from tally import Tally, merge, percentiles, timed

from labeling.local_server import free_loopback_port
from models.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist, write_pngs
from service.auth.keys import create_key
from service.core.db import make_engine, session_factory
from service.core.settings import LabelStudioSettings, Settings
from service.studio.webhooks import SECRET_HEADER

POOL, SEEDS, PREDICT_BATCH = 300, 60, 8
# kind -> (weight, expected status)
MIX = {"predict": (3, 200), "job": (2, 200), "images": (3, 200), "webhook": (2, 202)}
WEIGHTS = {kind: weight for kind, (weight, _) in MIX.items()}
MACHINE = "2-core AMD EPYC CPU, no GPU"


@dataclass(frozen=True)
class Target:
    url: str
    headers: dict[str, str]
    image_ids: list[int]
    job_ids: list[str]
    secret: str


def prepare(root: Path, port: int) -> tuple[ServiceProcess, Target]:
    """Write the pool, start the service, register the pool, seed labels and train."""
    images, labels = load_fashion_mnist("test")
    folder = root / "pool" / "fashion"
    write_pngs(images[:POOL], folder, names=[f"{i:05d}.png" for i in range(POOL)])
    secret = "load-webhook-secret"
    studio = LabelStudioSettings(
        url="http://127.0.0.1:9", api_key=SecretStr("0" * 40), webhook_secret=SecretStr(secret)
    )
    settings = Settings(
        data_dir=root / "service", public_url=f"http://127.0.0.1:{port}", label_studio=studio
    )
    engine = make_engine(settings.resolved_database_url)
    with session_factory(engine)() as session:
        token = create_key(session, "load").token.get_secret_value()
    engine.dispose()
    service = ServiceProcess(settings, port, root / "service.log")
    service.env["ACTIVELABEL_ALLOWED_ROOTS"] = json.dumps([str(root / "pool")])
    service.env["ACTIVELABEL_LABEL_STUDIO__RECONCILE_EVERY_S"] = "0"
    service.env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])  # this checkout's code
    try:
        service.start()
    except RuntimeError:
        print((root / "service.log").read_text()[-3000:])
        raise
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=service.url, headers=headers, timeout=600) as client:
        register = _finish(client, client.post("/v1/images/register", json={"folder": str(folder)}))
        page = client.get("/v1/images", params={"limit": 1000}).json()["items"]
        ids = {Path(item["path"]).name: item["id"] for item in page}
        seeds = [
            {"image_id": ids[f"{i:05d}.png"], "label": FASHION_MNIST_CLASSES[int(labels[i])]}
            for i in range(SEEDS)
        ]
        assert client.post("/v1/labels", json={"labels": seeds}).status_code == 200
        train = _finish(client, client.post("/v1/models/train"))
    unlabeled = [ids[f"{i:05d}.png"] for i in range(SEEDS, POOL)]
    return service, Target(service.url, headers, unlabeled, [register, train], secret)


def _finish(client: httpx.Client, accepted: httpx.Response) -> str:
    assert accepted.status_code == 202, accepted.text
    job_id = str(accepted.json()["job_id"])
    for _ in range(6000):
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] == "succeeded":
            return job_id
        assert job["status"] in ("queued", "running"), job
        time.sleep(0.1)
    raise RuntimeError(f"job {job_id} did not finish")


def delivery(annotation_id: int, image_id: int, label: str) -> dict[str, Any]:
    """An ANNOTATION_CREATED webhook body as Label Studio 1.x sends it (unused fields cut)."""
    task = 100_000 + image_id
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {
        "action": "ANNOTATION_CREATED",
        "annotation": {
            "id": annotation_id,
            "result": [
                {
                    "id": f"r{annotation_id}",
                    "from_name": "label",
                    "to_name": "image",
                    "type": "choices",
                    "origin": "manual",
                    "value": {"choices": [label]},
                }
            ],
            "was_cancelled": False,
            "ground_truth": False,
            "created_at": now,
            "updated_at": now,
            "lead_time": 3.2,
            "task": task,
            "project": 1,
            "completed_by": 1 + annotation_id % 4,
            "parent_prediction": None,
        },
        "task": {"id": task, "data": {"image": f"/v1/media/{image_id}", "image_id": image_id}},
        "project": {"id": 1, "title": "activelabel"},
    }


def client_loop(
    number: int, target: Target, deadline: float, tally: Tally, mix: dict[str, int] = WEIGHTS
) -> None:
    """One client: weighted random requests of `mix` until the deadline (bounded by it)."""
    rng = random.Random(number)
    kinds, weights = list(mix), list(mix.values())
    cursor: list[str | None] = [None]
    sent = 0
    with httpx.Client(base_url=target.url, headers=target.headers, timeout=120) as client:
        while time.monotonic() < deadline:
            kind = rng.choices(kinds, weights)[0]
            sent += 1
            send = _request(client, kind, target, rng, number * 1_000_000 + sent, cursor)
            if timed(tally, kind, MIX[kind][1], send) is None:
                time.sleep(0.2)  # no answer (the service restarting): do not spin


def _request(
    client: httpx.Client,
    kind: str,
    target: Target,
    rng: random.Random,
    annotation_id: int,
    cursor: list[str | None],
) -> Callable[[], httpx.Response]:
    """The request of one `kind`; an image page moves the client's `cursor` on."""
    if kind == "predict":
        body = {"image_ids": rng.sample(target.image_ids, PREDICT_BATCH)}
        return lambda: client.post("/v1/predictions", json=body)
    if kind == "job":
        return lambda: client.get(f"/v1/jobs/{rng.choice(target.job_ids)}")
    if kind == "images":

        def page() -> httpx.Response:
            params = {"limit": 50, **({"cursor": cursor[0]} if cursor[0] else {})}
            response = client.get("/v1/images", params=params)
            cursor[0] = response.json().get("next_cursor") if response.is_success else None
            return response

        return page
    event = delivery(annotation_id, rng.choice(target.image_ids), rng.choice(FASHION_MNIST_CLASSES))
    headers = {SECRET_HEADER: target.secret}
    return lambda: client.post("/v1/webhooks/label-studio", json=event, headers=headers)


def health_floor(url: str, seconds: float) -> list[float]:
    """Latencies (ms) of `GET /health` from one client for `seconds`."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=60) as client:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            client.get("/health").raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def run(clients: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="activelabel-load-") as tmp:
        service, target = prepare(Path(tmp), free_loopback_port())
        try:
            floor = percentiles(health_floor(target.url, 5))
            tallies = [Tally() for _ in range(clients)]
            deadline = time.monotonic() + seconds
            threads = [
                threading.Thread(target=client_loop, args=(n, target, deadline, tallies[n]))
                for n in range(clients)
            ]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=seconds + 300)
            elapsed = time.monotonic() - started
        finally:
            service.stop()
            CACHE.mkdir(parents=True, exist_ok=True)  # the service's log, for a look at errors
            shutil.copy(Path(tmp) / "service.log", CACHE / "load-service.log")
    return summary(tallies, clients, seconds, elapsed, floor)


def summary(
    tallies: list[Tally], clients: int, seconds: float, elapsed: float, floor: dict[str, float]
) -> dict[str, Any]:
    totals = merge(tallies)
    overall = percentiles(totals.answered)
    return {
        "clients": clients,
        "seconds": seconds,
        "elapsed_s": round(elapsed, 1),
        "requests": totals.requests,
        "errors": sum(totals.errors.values()),
        "p50_ms": overall["p50_ms"],
        "p99_ms": overall["p99_ms"],
        "requests_per_s": round(overall["count"] / elapsed, 1),
        "per_kind": totals.per_kind,
        "error_kinds": dict(totals.errors),
        "error_samples": totals.samples,
        "health_floor_one_client": floor,
        "p50_over_health_floor": round(overall["p50_ms"] / max(floor["p50_ms"], 1e-9), 1),
        "pool_images": POOL,
        "seed_labels": SEEDS,
        "predict_batch": PREDICT_BATCH,
        "machine": MACHINE,
        "python": platform.python_version(),
        "date": datetime.now(UTC).date().isoformat(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=None, help="default 60 (120 with jobs)")
    parser.add_argument(
        "--with-jobs", action="store_true", help="with the service's jobs running (load_jobs.py)"
    )
    args = parser.parse_args()
    path = RESULTS / "load.json"
    if args.with_jobs:
        from load_jobs import passed, run_with_jobs

        result = run_with_jobs(args.clients, args.seconds or 120.0)
        previous = json.loads(path.read_text()) if path.exists() else {}
        RESULTS.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**previous, **result}, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        for goal, ok in passed(result):
            print(f"{'PASS' if ok else 'FAIL'}: {goal}")
        return
    result = run(args.clients, args.seconds or 60.0)
    kept = json.loads(path.read_text()) if path.exists() else {}
    kept = {k: v for k, v in kept.items() if k.startswith("with_jobs") or k == "lock_errors_logged"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**result, **kept}, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "per_kind"}, indent=2))
    for kind, figures in result["per_kind"].items():
        print(f"{kind:8s} {figures}")
    print(f"p50 is {result['p50_over_health_floor']}x the one-client /health floor")


if __name__ == "__main__":
    main()

"""The work that runs beside the API clients in `load.py --with-jobs` and in `soak.py`.

During the window, every driver in its own thread and bounded by the deadline:
- the registration of a 5,000-image folder (and the drift report it triggers);
- a reconciliation every 10 s; a retrain and a round every 30 s;
- annotations created in Label Studio on pushed tasks, each then delivered to the webhook as
  an ANNOTATION_CREATED event with the shared secret, 20 per second (Label Studio delivers
  its own copy too: the service must store each annotation once).
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import httpx
from mixed_stack import Stack, write_images
from tally import Tally, timed

from labeling.errors import LabelingError
from labeling.gateway import LabelStudioGateway
from labeling.tasks import prediction_result
from models.datasets import FASHION_MNIST_CLASSES
from service.studio.webhooks import SECRET_HEADER, WEBHOOK_PATH

ROUND_K, RECONCILE_EVERY_S, ROUND_EVERY_S = 50, 10.0, 30.0
DELIVERIES_PER_S, DELIVERY_THREADS = 20.0, 12


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

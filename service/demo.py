"""`activelabel demo`: a whole round on real images, a real Label Studio and a real model."""

from __future__ import annotations

import re
import secrets
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from guides import Guide
from labeling.local_server import LocalLabelStudio, free_loopback_port, new_api_token
from models.datasets import load_fashion_mnist, write_pngs
from service.api.app import create_app
from service.api.serving import start_in_thread
from service.auth.keys import rotate_keys
from service.auth.roles import Role
from service.core.settings import AnnotatorSettings, Settings
from service.studio.annotators import provision_annotators

console = Console()
# A gold task the demo can resolve: a Fashion-MNIST test image by its index in the split.
FASHION_TEST_IMAGE = re.compile(r"test/(\d{5})\.png")
# The demo's keys, by name: each run revokes the previous run's and issues new ones.
DEMO_KEY_ROLES = {"demo admin": Role.admin, "demo pipeline": Role.pipeline}


@dataclass(frozen=True)
class DemoKeys:
    """The tokens of this run's keys: `admin` for admin-only routes, `pipeline` for the rest."""

    admin: str
    pipeline: str


@dataclass(frozen=True)
class DemoOptions:
    images: int = 3000
    k: int = 20
    seed_per_class: int = 5
    data_dir: Path = Path(".demo")
    port: int = 8000
    label_studio_port: int = 8080
    wait: bool = True


def port_or_free(port: int) -> int:
    """`port` when it is free on 127.0.0.1, else any free port."""
    if port:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return port
    return free_loopback_port()


def materialize_pool(root: Path, count: int) -> tuple[Path, list[int]]:
    """Write the first `count` Fashion-MNIST training images as PNGs; returns folder and labels."""
    images, labels = load_fashion_mnist("train")
    folder = root / "pool"
    with console.status(f"writing {count} Fashion-MNIST images as PNG files"):
        write_pngs(images[:count], folder, names=[f"{i:05d}.png" for i in range(count)])
    return folder, [int(x) for x in labels[:count]]


def materialize_gold(folder: Path, guide: Guide) -> int:
    """Write the Fashion-MNIST test images the guide's gold tasks name (`test/NNNNN.png`)."""
    wanted = [task.image for task in guide.gold_tasks if FASHION_TEST_IMAGE.fullmatch(task.image)]
    if not wanted:
        return 0
    images, _ = load_fashion_mnist("test")
    indices = [int(Path(reference).stem) for reference in wanted]
    write_pngs(images[indices], folder / "test", names=[Path(r).name for r in wanted])
    return len(wanted)


def demo_annotators(settings: Settings) -> list[AnnotatorSettings]:
    """The configured annotators, or two demo logins with fresh passwords."""
    if settings.label_studio.annotators:
        return list(settings.label_studio.annotators)
    return [
        AnnotatorSettings(
            email=f"annotator{n}@example.com", password=SecretStr(secrets.token_urlsafe(9))
        )
        for n in (1, 2)
    ]


def start_label_studio(options: DemoOptions, executable: Path) -> LocalLabelStudio:
    """Start (or restart) the demo's Label Studio; its admin token is kept beside its data."""
    data_dir = (options.data_dir / "label-studio").resolve()
    token_file = data_dir / "activelabel-token"
    data_dir.mkdir(parents=True, exist_ok=True)
    if not token_file.exists():
        token_file.write_text(new_api_token())
    server = LocalLabelStudio(
        executable=executable,
        data_dir=data_dir,
        api_token=token_file.read_text().strip(),
        port=port_or_free(options.label_studio_port),
    )
    with console.status("starting Label Studio") as status:
        server.start(
            on_wait=lambda s: status.update(
                f"starting Label Studio on {server.url} "
                f"({s:.0f}s; the first start migrates its database)"
            )
        )
    console.print(f"Label Studio is up at {server.url}", soft_wrap=True)
    return server


def follow_job(client: httpx.Client, accepted: dict[str, Any], title: str) -> dict[str, Any]:
    """Show a job's progress until it ends; returns its result or raises with its error."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[message]}"),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(title, total=100, message="")
        while True:
            job = client.get(accepted["status_url"]).json()
            bar.update(task, completed=job["percent"], message=job["message"])
            if job["status"] in ("succeeded", "failed"):
                break
            time.sleep(0.3)
    if job["status"] == "failed":
        raise RuntimeError(f"{title} failed: {job['error']['code']}: {job['error']['message']}")
    return dict(job["result"] or {})


def seed_labels(labels: list[int], per_class: int, class_names: list[str]) -> dict[int, str]:
    """The first `per_class` pool positions of each class, with their true label names."""
    chosen: dict[int, str] = {}
    counts = [0] * len(class_names)
    for position, label in enumerate(labels):
        if counts[label] < per_class:
            counts[label] += 1
            chosen[position] = class_names[label]
    return chosen


def drive_round(
    client: httpx.Client,
    admin: httpx.Client,
    folder: Path,
    labels: list[int],
    options: DemoOptions,
    class_names: list[str],
) -> dict[str, Any]:
    """Register the pool and the gold images, seed labels, run one round; returns the round.

    `client` sends the pipeline key; `admin` the admin key, for the gold images (admin only).
    """
    registered = follow_job(
        client, _post(client, "/v1/images/register", {"folder": str(folder)}), "registering images"
    )
    console.print(
        f"registered {registered['registered']} new images "
        f"({registered['already_known']} already known, {len(registered['skipped'])} skipped)"
    )
    gold = _post(admin, "/v1/gold/register", {})
    console.print(
        f"registered {gold['registered']} gold images ({gold['known']} already known); "
        "rounds mix them in among ordinary tasks"
    )
    ids_by_path = _image_ids_by_path(client)
    seeds = seed_labels(labels, options.seed_per_class, class_names)
    body = [
        {"image_id": ids_by_path[str(folder / f"{p:05d}.png")], "label": name}
        for p, name in seeds.items()
    ]
    seeded = _post(client, "/v1/labels", {"labels": body, "source": "seed"})
    console.print(
        f"seeded the model with {seeded['imported']} known labels "
        f"({len(seeded['kept_annotated'])} kept as annotators labeled them)"
    )
    result = follow_job(client, _post(client, "/v1/rounds", {"k": options.k}), "running a round")
    return dict(client.get(f"/v1/rounds/{result['round_id']}").raise_for_status().json())


def first_agreement_report(client: httpx.Client) -> str:
    """Run an agreement report now (before any annotation); returns its HTML page's URL."""
    result = follow_job(client, _post(client, "/v1/reports/agreement", {}), "agreement report")
    return str(result["report_url"])


def _client(service_url: str, token: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=service_url, timeout=60, headers=headers)


def _post(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    if response.status_code >= 400:
        raise RuntimeError(f"POST {path} failed: {response.text}")
    return dict(response.json())


def _image_ids_by_path(client: httpx.Client) -> dict[str, int]:
    found: dict[str, int] = {}
    params: dict[str, Any] = {"limit": 1000}
    while True:
        page = client.get("/v1/images", params=params).raise_for_status().json()
        found.update({item["path"]: item["id"] for item in page["items"]})
        if page["next_cursor"] is None:
            return found
        params["cursor"] = page["next_cursor"]


def demo_keys(app: FastAPI) -> DemoKeys:
    """This run's admin and pipeline keys, in the running service's database.

    The keys of an earlier run (same names) are revoked in the same transaction, so a rerun
    rotates them: there is always one live key of each.
    """
    with app.state.context.sessions() as session:
        admin, pipeline = rotate_keys(session, DEMO_KEY_ROLES)
    return DemoKeys(
        admin=admin.token.get_secret_value(), pipeline=pipeline.token.get_secret_value()
    )


def print_summary(
    round_: dict[str, Any], studio: LocalLabelStudio, service_url: str, keys: DemoKeys
) -> None:
    table = Table(title=f"round {round_['id']}: {len(round_['items'])} tasks in rank order")
    for column in ("rank", "task", "suggested label", "p", "uncertainty"):
        table.add_column(column)
    for item in round_["items"]:
        table.add_row(
            str(item["rank"]),
            str(item["task_id"]),
            item["predicted_label"],
            f"{item['predicted_probability']:.2f}",
            f"{item['score']:.3f}",
        )
    console.print(table)
    first_task = round_["items"][0]["task_id"] if round_["items"] else None
    embedded = (
        f"embedded {round_['embedded']} new ones at {round_['embedding_rate']:.1f} images/s"
        if round_["embedded"]
        else "their embeddings were already stored"
    )
    console.print(f"scored {round_['pool_size']} unlabeled images; {embedded}", soft_wrap=True)
    console.print(f"model version: {round_['model_version']}", soft_wrap=True)
    console.print(f"service:       {service_url}  (API docs at {service_url}/docs)", soft_wrap=True)
    console.print(f"admin key:     {keys.admin}  (role admin)", soft_wrap=True)
    console.print(f"pipeline key:  {keys.pipeline}  (role pipeline)", soft_wrap=True)
    console.print(
        "               a rerun of the demo revokes these and prints new ones", soft_wrap=True
    )
    console.print(
        f"try:           curl -H 'Authorization: Bearer {keys.pipeline}' {service_url}/v1/rounds",
        soft_wrap=True,
    )
    console.print(f"Label Studio:  {studio.url}", soft_wrap=True)
    console.print(f"login:         {studio.username} / {studio.password}", soft_wrap=True)
    console.print(f"project:       {round_['project_url']}", soft_wrap=True)
    if first_task is not None:
        console.print(f"first task:    {round_['project_url']}?task={first_task}", soft_wrap=True)
    console.print(f"annotate:      {round_['project_url']}?labeling=1", soft_wrap=True)
    console.print(
        "Annotators: log in, open 'annotate' (Label All Tasks); each image comes with the "
        "model's label pre-selected and the guide's instructions: confirm or correct, "
        "then Submit.",
        soft_wrap=True,
    )


def print_quality(annotators: list[AnnotatorSettings], api_key: str, report_url: str) -> None:
    """The annotator logins and the first agreement report (it needs the pipeline key)."""
    for n, annotator in enumerate(annotators, start=1):
        login = f"{annotator.email} / {annotator.password.get_secret_value()}"
        console.print(f"annotator {n}:   {login}", soft_wrap=True)
    console.print(
        "Each annotator logs in with their own login; some tasks go to both of them and "
        "some are gold tasks with a known answer: the agreement report compares them.",
        soft_wrap=True,
    )
    console.print(
        f"get it with:   curl -H 'Authorization: Bearer {api_key}' {report_url} -o agreement.html"
        " (`activelabel report agreement --html FILE` runs a fresh one)",
        soft_wrap=True,
    )
    console.print(f"agreement report: {report_url}", soft_wrap=True)


def run_demo(options: DemoOptions, settings: Settings) -> None:
    root = options.data_dir.resolve()
    folder, labels = materialize_pool(root / "images", options.images)
    studio = start_label_studio(options, settings.label_studio.executable)
    server: uvicorn.Server | None = None
    try:
        port = port_or_free(options.port)
        service_url = f"http://127.0.0.1:{port}"
        configured = settings.model_copy(
            update={
                "data_dir": root / "service",
                "allowed_roots": [root / "images"],
                "public_url": service_url,
                "label_studio": settings.label_studio.model_copy(
                    update={
                        "url": studio.url,
                        "api_key": SecretStr(studio.api_token),
                        "annotators": demo_annotators(settings),
                    }
                ),
                "quality": settings.quality.model_copy(update={"gold_dir": root / "images/gold"}),
            }
        )
        app = create_app(configured)
        with console.status("loading the model and starting the service"):
            server, _ = start_in_thread(app, port)
        context = app.state.context
        materialize_gold(root / "images/gold", context.guide)
        with console.status("creating the annotator logins in Label Studio"):
            provision_annotators(context, studio.set_password)
        keys = demo_keys(app)
        with (
            _client(service_url, keys.pipeline) as client,
            _client(service_url, keys.admin) as admin,
        ):
            class_names = [label["name"] for label in client.get("/v1/guide").json()["labels"]]
            round_ = drive_round(client, admin, folder, labels, options, class_names)
            report_url = first_agreement_report(client)
            board = client.post("/v1/board/link", params={"lifetime_s": 7 * 86_400})
        print_summary(round_, studio, service_url, keys)
        print_quality(configured.label_studio.annotators, keys.pipeline, report_url)
        console.print(f"flow board:    {board.raise_for_status().json()['url']}", soft_wrap=True)
        if options.wait:
            console.print("ready: press Ctrl-C to stop the service and Label Studio")
            _wait_for_interrupt()
    finally:
        if server is not None:
            server.should_exit = True
        studio.stop()
        console.print("stopped the service and Label Studio")


def _wait_for_interrupt() -> None:
    """Block until SIGINT (Ctrl-C) or SIGTERM, even where the shell started us ignoring SIGINT."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass

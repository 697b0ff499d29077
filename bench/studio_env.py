"""Shared by the intake benchmarks: a local Label Studio started from a migrated template.

The first run migrates a fresh Label Studio database into `bench/cache/` (a minute or more);
later runs copy it and start in seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from pydantic import SecretStr

from guides import example_guide_path, load_guide
from labeling.gateway import LabelStudioGateway
from labeling.local_server import LocalLabelStudio, copy_data_dir
from service.auth.signing import media_signer
from service.context import ServiceContext
from service.core.db import make_engine, session_factory
from service.core.settings import LabelStudioSettings, Settings, get_settings
from service.learning.runtime import ModelRuntime
from service.studio.webhooks import webhook_secret

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / "cache"
RESULTS = ROOT / "results"
TEMPLATE = CACHE / "label-studio-template"
TEMPLATE_TOKEN = TEMPLATE / "api-token"


def start_label_studio(name: str) -> LocalLabelStudio:
    """A fresh Label Studio in `bench/cache/<name>` on a free loopback port, started."""
    executable = get_settings().label_studio.executable
    if not TEMPLATE_TOKEN.exists():
        shutil.rmtree(TEMPLATE, ignore_errors=True)
        template = LocalLabelStudio(executable=executable, data_dir=TEMPLATE)
        template.start(timeout_s=600)
        template.stop()
        TEMPLATE_TOKEN.write_text(template.api_token)
    data_dir = CACHE / name
    copy_data_dir(TEMPLATE, data_dir)
    server = LocalLabelStudio(
        executable=executable, data_dir=data_dir, api_token=TEMPLATE_TOKEN.read_text().strip()
    )
    server.start(timeout_s=300)
    return server


def studio_settings(
    server: LocalLabelStudio, data_dir: Path, *, public_url: str, **label_studio: object
) -> Settings:
    """Service settings against `server`, with their own (emptied) data directory."""
    shutil.rmtree(data_dir, ignore_errors=True)
    studio = LabelStudioSettings(
        url=server.url, api_key=SecretStr(server.api_token), **label_studio
    )  # type: ignore[arg-type]
    return Settings(data_dir=data_dir, public_url=public_url, label_studio=studio)


def bench_context(settings: Settings) -> ServiceContext:
    """What intake use cases need, without loading the image model (intake never runs it)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    return ServiceContext(
        settings=settings,
        guide=load_guide(settings.guide_path or example_guide_path("fashion-mnist")),
        engine=engine,
        sessions=session_factory(engine),
        runtime=ModelRuntime(
            settings.model,
            max_pixels=settings.max_image_pixels,
            embedding_dir=settings.embedding_dir,
        ),
        gateway=LabelStudioGateway(
            settings.label_studio.url,
            settings.label_studio.api_key.get_secret_value(),
            timeout_s=600,
        ),
        media=media_signer(settings),
    )


class ServiceProcess:
    """`activelabel serve` as a child process, so that it can be killed with SIGKILL."""

    def __init__(self, settings: Settings, port: int, log_path: Path) -> None:
        self.port, self.log_path = port, log_path
        studio = settings.label_studio
        self.env = {
            **os.environ,
            "ACTIVELABEL_DATA_DIR": str(settings.data_dir),
            "ACTIVELABEL_PUBLIC_URL": settings.public_url,
            "ACTIVELABEL_LABEL_STUDIO__URL": studio.url,
            "ACTIVELABEL_LABEL_STUDIO__API_KEY": studio.api_key.get_secret_value(),
            "ACTIVELABEL_LABEL_STUDIO__PROJECT_TITLE": studio.project_title,
            "ACTIVELABEL_LABEL_STUDIO__WEBHOOK_SECRET": webhook_secret(settings),
            "ACTIVELABEL_LABEL_STUDIO__RECONCILE_EVERY_S": str(studio.reconcile_every_s),
            "ACTIVELABEL_MODEL__DEVICE": "cpu",
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout_s: float = 300) -> float:
        """Start and wait for `/health`; returns the seconds it took."""
        started = time.monotonic()
        executable = Path(sys.executable).with_name("activelabel")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(executable), "serve", "--port", str(self.port), "--log-level", "warning"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        while time.monotonic() - started < timeout_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited during start-up; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the service did not answer /health in {timeout_s:.0f}s")

    def kill(self) -> None:
        """SIGKILL, no chance to clean up: what a crash or an OOM kill does."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

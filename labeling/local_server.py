"""Run a real Label Studio server on a loopback port, headless and offline.

Used by `activelabel demo` and by the integration tests. Label Studio lives in its
own virtual environment; this module only starts the process and talks HTTP to it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from labeling.errors import LabelStudioUnavailable

# Variables a parent shell may carry that Label Studio reads as fallbacks.
_INHERITED_FALLBACKS = ("USERNAME", "PASSWORD", "PORT", "HOST")


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_api_token() -> str:
    """40 hex characters, the shape of a Label Studio legacy API token."""
    return secrets.token_hex(20)


@dataclass
class LocalLabelStudio:
    """A Label Studio process bound to 127.0.0.1, with its own data directory.

    The admin user and its legacy API token are created on the first start of a
    fresh data directory; later starts reuse them.
    """

    executable: Path
    data_dir: Path
    username: str = "admin@example.com"
    password: str = "activelabel-admin"
    api_token: str = field(default_factory=new_api_token)
    port: int = 0
    host: str = "127.0.0.1"
    log_path: Path | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _INHERITED_FALLBACKS}
        env.update(
            LABEL_STUDIO_BASE_DATA_DIR=str(self.data_dir),
            DJANGO_DB="sqlite",
            LABEL_STUDIO_USERNAME=self.username,
            LABEL_STUDIO_PASSWORD=self.password,
            LABEL_STUDIO_USER_TOKEN=self.api_token,
            LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
            LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
            SENTRY_DSN="",
            FRONTEND_SENTRY_DSN="",
            LATEST_VERSION_CHECK="false",
            COLLECT_ANALYTICS="false",
            SSRF_PROTECTION_ENABLED="false",
            ML_BLOCK_LOCAL_IP="false",
        )
        return env

    def start(
        self,
        *,
        timeout_s: float = 180.0,
        on_wait: Callable[[float], None] | None = None,
    ) -> str:
        """Start the server and wait until `/health` answers UP; returns its URL."""
        if not self.executable.exists():
            raise LabelStudioUnavailable(
                f"label-studio executable not found at {self.executable}; run `make setup`"
            )
        if self._process is not None:
            return self.url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_loopback_port()
        log_path = self.log_path or self.data_dir / "label-studio.log"
        with open(log_path, "ab") as log:
            self._process = subprocess.Popen(
                [
                    str(self.executable.resolve()),
                    "start",
                    "--no-browser",
                    "--internal-host",
                    self.host,
                    "--port",
                    str(self.port),
                ],
                cwd=self.data_dir.resolve(),
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_healthy(timeout_s, on_wait, log_path)
        return self.url

    def set_password(self, username: str, password: str, *, timeout_s: float = 120.0) -> None:
        """Give an existing user a password (`label-studio reset_password`, same data dir)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [
                str(self.executable.resolve()),
                "reset_password",
                # `--opt=value`: a value that starts with "-" must not read as an option.
                f"--username={username}",
                f"--password={password}",
            ],
            cwd=self.data_dir.resolve(),
            env=self.environment(),
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).decode(errors="replace")[-1000:]
            raise LabelStudioUnavailable(f"reset_password for {username} failed:\n{tail}")

    def _wait_healthy(
        self, timeout_s: float, on_wait: Callable[[float], None] | None, log_path: Path
    ) -> None:
        started = time.monotonic()
        while True:
            elapsed = time.monotonic() - started
            assert self._process is not None
            if self._process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                self._process = None
                raise LabelStudioUnavailable(f"Label Studio exited during start-up:\n{tail}")
            if is_healthy(self.url):
                return
            if elapsed > timeout_s:
                self.stop()
                raise LabelStudioUnavailable(
                    f"Label Studio did not answer /health within {timeout_s:.0f}s (log: {log_path})"
                )
            if on_wait is not None:
                on_wait(elapsed)
            time.sleep(0.5)

    def stop(self, *, timeout_s: float = 15.0) -> None:
        """Stop the server and every process it started."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout_s)
        except ProcessLookupError:
            pass

    def kill(self, *, timeout_s: float = 15.0) -> None:
        """SIGKILL the server and every process it started, as a crash would.

        Nothing is cleaned up; `start` again serves the same data directory on the same port.
        """
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout_s)

    def __enter__(self) -> LocalLabelStudio:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def is_healthy(url: str, *, timeout_s: float = 2.0) -> bool:
    """True when a Label Studio at `url` answers `/health` with status UP."""
    try:
        response = httpx.get(f"{url.rstrip('/')}/health", timeout=timeout_s)
        return response.status_code == 200 and response.json().get("status") == "UP"
    except (httpx.HTTPError, ValueError):
        return False


def copy_data_dir(template: Path, destination: Path) -> None:
    """Copy an already-migrated data directory: a warm start takes seconds, not a minute."""
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(template, destination, ignore=shutil.ignore_patterns("*.log"))

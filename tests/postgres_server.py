"""A throwaway PostgreSQL server on a loopback port, for running the service on PostgreSQL."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg

from labeling.local_server import free_loopback_port


def _binary(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        raise FileNotFoundError(f"{name} not found: install Debian's postgresql (make setup)")
    return found[-1]


def _as_server_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class PostgresServer:
    data_dir: Path
    port: int = 0

    def start(self) -> None:
        self.port = self.port or free_loopback_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.data_dir.parent, "postgres", "postgres")
            shutil.chown(self.data_dir, "postgres", "postgres")
        subprocess.run(
            _as_server_user([_binary("initdb"), "-D", str(self.data_dir), "-U", "activelabel",
                             "--auth=trust", "--no-sync", "-E", "UTF8"]),
            check=True, capture_output=True,
        )  # fmt: skip
        options = f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            _as_server_user([_binary("pg_ctl"), "-D", str(self.data_dir), "-o", options,
                             "-l", str(self.data_dir / "server.log"), "-w", "start"]),
            check=True, capture_output=True,
        )  # fmt: skip

    def stop(self) -> None:
        subprocess.run(
            _as_server_user([_binary("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "stop"]),
            check=False, capture_output=True,
        )  # fmt: skip

    def new_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        admin = f"host=127.0.0.1 port={self.port} user=activelabel dbname=postgres"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://activelabel@127.0.0.1:{self.port}/{name}"

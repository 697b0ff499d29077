"""The service's configuration: one settings object, read from ACTIVELABEL_* variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AnnotatorSettings(BaseModel):
    """One annotator account the service sets up in Label Studio."""

    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    password: SecretStr


class LabelStudioSettings(BaseModel):
    """Where Label Studio runs and how the service reaches it."""

    url: str = "http://127.0.0.1:8080"
    api_key: SecretStr = SecretStr("")
    project_title: str = "activelabel"
    timeout_s: float = Field(default=60.0, gt=0)
    executable: Path = Path(".venv-ls/bin/label-studio")
    # Sent by Label Studio in a header with every webhook; generated into the data dir when unset.
    webhook_secret: SecretStr | None = None
    webhook_max_bytes: int = Field(default=2**20, ge=1024)
    reconcile_every_s: float = Field(default=300.0, ge=0)  # 0: only on demand
    reconcile_overlap_s: float = Field(default=5.0, ge=0)  # re-read before the watermark
    push_chunk_size: int = Field(default=1000, ge=1, le=10_000)  # tasks per import call
    # How long one push keeps retrying while Label Studio is slow or down; then the job retries.
    push_max_wait_s: float = Field(default=120.0, gt=0)
    annotators: list[AnnotatorSettings] = Field(default_factory=list)


class ModelSettings(BaseModel):
    """The image model: backbone, input size, device and batching."""

    architecture: str = "efficientnet_lite0"
    weights: str | None = None
    image_size: int = Field(default=224, ge=32, le=1024)
    device: str = "auto"
    # auto: ONNX Runtime fp32 on the CPU (eager bf16/fp32 without it), bf16 on CUDA;
    # int8: the CPU's opt-in fastest path, its embeddings kept apart (backbone id "+int8r7").
    precision: Literal["auto", "fp32", "bf16", "int8"] = "auto"
    # auto: JPEGs decoded on the GPU on CUDA, on the CPU elsewhere; cpu: the CPU decoder anyway.
    decoder: Literal["auto", "device", "cpu"] = "auto"
    batch_size: int | None = Field(default=None, ge=1, le=4096)  # None: 256 on CUDA, else 64
    num_workers: int = Field(default=0, ge=0, le=64)
    train_epochs: int = Field(default=300, ge=1, le=10_000)
    min_labels_to_train: int = Field(default=10, ge=2)


class AuthSettings(BaseModel):
    """API keys, signed media URLs and which browser origins may call the service."""

    media_signing_secret: SecretStr | None = None  # generated into the data dir when unset
    # A signed media URL must outlive the task that shows it; refreshed suggestions re-sign.
    media_url_lifetime_s: int = Field(default=180 * 86_400, ge=60)
    cors_origins: list[str] | None = None  # None: the Label Studio URL's origin only


class QualitySettings(BaseModel):
    """Gold tasks, quality reports, drift checks and where failed checks are announced."""

    gold_dir: Path | None = None  # the guide's gold task paths are relative to this folder
    gold_share: float = Field(default=0.1, ge=0.0, le=0.5)  # of each round's tasks
    consensus: Literal["majority", "dawid_skene"] = "majority"
    drift_sync_max_images: int = Field(default=256, ge=1)  # larger batches run as a job
    drift_permutations: int = Field(default=500, ge=19, le=10_000)
    drift_max_checks: int = Field(default=100, ge=1)  # alpha spending over this many checks
    drift_after_ingestion: bool = True  # a drift report job after each registration
    agreement_every_s: float = Field(default=0.0, ge=0)  # 0: agreement reports on demand only
    notify_url: str | None = None  # Slack-compatible incoming webhook
    notify_timeout_s: float = Field(default=10.0, gt=0)


class MlBackendSettings(BaseModel):
    """Label Studio's ML backend protocol: where images of tasks made in Label Studio come from."""

    # `host` or `host:port` entries; None: the Label Studio URL's and the public URL's hosts.
    allowed_hosts: list[str] | None = None
    fetch_timeout_s: float = Field(default=10.0, gt=0, le=120)
    fetch_max_bytes: int = Field(default=20 * 2**20, gt=0)
    fetch_threads: int = Field(default=8, ge=1, le=64)
    max_redirects: int = Field(default=3, ge=0, le=10)
    # How long one /predict call may work: Label Studio waits 100 s (its ML_TIMEOUT_PREDICT)
    # by default. Tasks left when it is spent answer `over_budget`; Label Studio asks again.
    predict_budget_s: float = Field(default=60.0, gt=0, le=3600)
    predict_batch_size: int = Field(default=128, ge=1, le=4096)  # images embedded per batch
    embedding_cache_size: int = Field(default=10_000, ge=0)  # fetched images' embeddings kept


class Settings(BaseSettings):
    """Everything the service reads from its environment (prefix ACTIVELABEL_, nesting `__`)."""

    model_config = SettingsConfigDict(
        env_prefix="ACTIVELABEL_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Path("activelabel-data")
    database_url: str | None = None
    # How long a SQLite writer waits for another one before giving up.
    database_busy_timeout_s: float = Field(default=30.0, ge=0, le=600)
    guide_path: Path | None = None
    allowed_roots: list[Path] = Field(default_factory=list)
    public_url: str = "http://127.0.0.1:8000"
    max_upload_bytes: int = Field(default=20 * 2**20, gt=0)
    # Whole request bodies, refused while they arrive: JSON and other bodies, then multipart.
    max_body_bytes: int = Field(default=8 * 2**20, gt=0)
    max_multipart_bytes: int = Field(default=64 * 2**20, gt=0)
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    label_studio: LabelStudioSettings = Field(default_factory=LabelStudioSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    ml_backend: MlBackendSettings = Field(default_factory=MlBackendSettings)

    @property
    def resolved_database_url(self) -> str:
        """The configured database URL, or a SQLite file in the data directory."""
        return self.database_url or f"sqlite:///{self.data_dir / 'activelabel.db'}"

    @property
    def cors_origins(self) -> list[str]:
        """Origins whose browsers may call the service: configured, else Label Studio's."""
        if self.auth.cors_origins is not None:
            return list(self.auth.cors_origins)
        parts = urlsplit(self.label_studio.url)
        return [f"{parts.scheme}://{parts.netloc}"]

    @property
    def checkpoint_dir(self) -> Path:
        return self.data_dir / "checkpoints"

    @property
    def upload_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def embedding_dir(self) -> Path:
        """Where the memory-mapped embedding stores live, one folder per backbone."""
        return self.data_dir / "embeddings"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()

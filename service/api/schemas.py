"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# A row id the database can hold (64-bit): larger ones are refused as invalid, on every backend.
RowId = Annotated[int, Field(ge=1, le=2**63 - 1)]


class RegisterFolderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folder: str = Field(description="a folder under one of the allowed roots")


class JobAccepted(BaseModel):
    job_id: str
    status_url: str


class JobStatus(BaseModel):
    id: str
    kind: str
    scope: str = Field(description="what the job holds while it runs: one running job per scope")
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: float
    percent: int
    message: str
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, str] | None = Field(description="`code` and `message` of a failed job")
    attempts: int
    max_attempts: int
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ImageOut(BaseModel):
    id: int
    path: str
    width: int
    height: int
    source: str
    label: str | None
    label_source: str | None
    unusable_reason: str | None
    media_url: str = Field(description="a signed, expiring URL of the image file")


class ImageCounts(BaseModel):
    total: int
    labeled: int
    unusable: int


class KnownLabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image_id: RowId
    label: str


class ImportLabelsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    labels: list[KnownLabelIn] = Field(min_length=1, max_length=100_000)
    source: Literal["seed", "import"] = "seed"


class ImportLabelsResponse(BaseModel):
    imported: int
    kept_annotated: list[int] = Field(
        description="images whose label came from annotators and was therefore kept"
    )


class RoundRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k: int = Field(default=20, ge=1, le=10_000)
    strategy: str | None = Field(
        default=None,
        max_length=64,
        description="a batch-selection strategy (GET /v1/rounds/strategies); null: the"
        " guide's `selection.strategy`, else the service's default",
    )
    class_balanced: bool | None = Field(
        default=None,
        description="re-pick the batch toward the classes with the fewest labels so far;"
        " null: the guide's `selection.class_balanced`",
    )
    retrain: bool = True
    seed: int | None = Field(
        default=None, ge=0, le=2**31 - 1, description="the strategy's seed; null: a random one"
    )
    replace_waiting: bool = Field(
        default=False,
        description="withdraw the untouched tasks of earlier rounds first, so that their"
        " images are ranked anew and annotators are served this round's order",
    )


class StrategiesOut(BaseModel):
    available: list[str]
    default: str


class RoundItemOut(BaseModel):
    image_id: int
    rank: int
    score: float
    predicted_label: str
    predicted_probability: float
    model_version: str
    task_id: int | None
    withdrawn: bool = Field(description="its task was taken out of the annotators' queue")


class RoundOut(BaseModel):
    id: int
    status: str
    strategy: str
    k: int
    seed: int | None = Field(description="the strategy's seed: same inputs, same batch")
    class_balanced: bool = Field(description="re-picked toward rarely labeled classes")
    model_version: str
    pool_size: int
    embedded: int
    embedding_rate: float
    project_id: int | None
    project_url: str | None
    created_at: datetime
    items: list[RoundItemOut]


class ModelEvaluationOut(BaseModel):
    """How a version did on labels it did not train on, and its calibration."""

    method: str = Field(description="k-fold cross-validation or a held-out share")
    n_labels: int = Field(description="labels the version was trained on")
    n_evaluated: int = Field(description="out-of-sample predictions behind the figures")
    accuracy: float
    per_class_recall: dict[str, float | None] = Field(
        description="class -> recall; null when no label of it was evaluated"
    )
    ece: float = Field(description="expected calibration error before calibration (15 bins)")
    calibrated_ece: float = Field(description="ECE after temperature scaling, out of sample")
    temperature: float = Field(description="the temperature the version predicts with")


class ModelVersionOut(BaseModel):
    id: str = Field(description="content hash of backbone, classes and weights")
    backbone_id: str
    n_train: int = Field(description="confirmed labels it was trained on")
    class_names: list[str]
    metrics: dict[str, float] = Field(
        description="training figures on the confirmed labels; `pseudo_labels`: pool images"
        " a semi-supervised head also learned from"
    )
    head: str = Field(
        description="`supervised` (confirmed labels only) or `semi_supervised` (plus pool"
        " pseudo-labels); its evaluation counts confirmed held-out labels only"
    )
    evaluation: ModelEvaluationOut | None = Field(
        description="out-of-sample evaluation; null when too few labels to evaluate"
    )
    created_at: datetime
    active: bool = Field(description="whether this version serves predictions and rounds")


class ActivationOut(BaseModel):
    model: ModelVersionOut
    refresh_job: JobAccepted | None = Field(
        description="the job refreshing waiting tasks' suggestions; null when nothing changed"
    )


class PredictByIdsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image_ids: list[RowId] = Field(min_length=1, max_length=1000)


class PredictionOut(BaseModel):
    image_id: int | None = Field(description="the registered image, or null for an upload")
    filename: str | None = Field(description="the uploaded file's name, or null for an id")
    label: str
    probabilities: dict[str, float] = Field(description="class -> probability, summing to 1")
    uncertainty: float = Field(description="the default strategy's score: higher, less sure")
    model_version: str


class PredictionsOut(BaseModel):
    model_version: str
    strategy: str
    items: list[PredictionOut]


class ConfirmedLabelOut(BaseModel):
    image_id: int
    path: str
    label: str
    source: str
    labeled_at: datetime | None


class AnnotationProblemOut(BaseModel):
    annotation_id: int
    task_id: int
    code: str
    message: str


class SyncOut(BaseModel):
    project_id: int
    tasks_seen: int
    new: int
    updated: int
    unchanged: int
    cancelled: int
    labeled_images: int
    problems: list[AnnotationProblemOut]


class ModelPathOut(BaseModel):
    """How images are embedded: as planned at start-up, then as the last run went."""

    backbone_id: str = Field(description="the embeddings' backbone (`+int8` for int8 ones)")
    device: str = Field(description="torch device: `cpu`, `cuda`, `cuda:N` or `mps`")
    device_name: str | None = Field(description="the GPU's name on CUDA, else null")
    precision: Literal["fp32", "bf16", "int8"] = Field(
        description="numeric precision of the backbone's forward pass"
    )
    runtime: Literal["torch", "onnxruntime"] = Field(
        description="`onnxruntime`: the exported backbone (the CPU's default), else eager torch"
    )
    decoder: Literal["device", "cpu"] = Field(
        description="`device`: JPEGs decoded on the device (the default on CUDA), else on the CPU"
    )
    batch_size: int = Field(description="images per batch")


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    database: bool
    label_studio: bool
    backbone_id: str
    guide: str
    model_version: str | None
    model: ModelPathOut = Field(description="the device and precision images are embedded with")

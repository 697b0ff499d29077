"""The labeling guide as typed, immutable pydantic models.

Field rules live on the fields; rules that span fields (unique names and hotkeys, gold
labels, class priors) live in :mod:`guides.checks` and run after field validation.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import PurePosixPath
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from guides.checks import (
    MAX_NAME_LENGTH,
    GuideConflicts,
    coerce_hotkey,
    cross_field_problems,
)

_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True)

Text = Annotated[str, StringConstraints(strip_whitespace=True)]
NonEmptyText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


def _single_line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("must be a single line")
    return value


def _one_key(value: str) -> str:
    if len(value) != 1 or not value.isprintable() or value.isspace():
        raise ValueError(f"must be exactly one printable, non-space character, got {value!r}")
    return value


_DRIVE = re.compile(r"^[A-Za-z]:")


def _image_reference(value: str) -> str:
    if "://" in value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"URL must be http(s) with a host, got {value!r}")
        return value
    if "\\" in value:
        raise ValueError("use forward slashes in image paths")
    path = PurePosixPath(value)
    if path.is_absolute() or _DRIVE.match(value):
        raise ValueError("must be a path relative to the image pool root, not an absolute path")
    if ".." in path.parts:
        raise ValueError("must stay inside the image pool ('..' is not allowed)")
    return value


LabelName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME_LENGTH),
    AfterValidator(_single_line),
]
Hotkey = Annotated[str, BeforeValidator(coerce_hotkey), AfterValidator(_one_key)]
ImageReference = Annotated[NonEmptyText, AfterValidator(_image_reference)]
Prior = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class LabelDefinition(BaseModel):
    """One class annotators can choose; ``definition`` is what decides membership."""

    model_config = _CONFIG

    name: LabelName
    definition: NonEmptyText
    examples: list[NonEmptyText] = []
    hotkey: Hotkey | None = None


class GoldTask(BaseModel):
    """An image whose correct label is known, used to measure annotator accuracy.

    ``image`` is a path relative to the image pool root (``test/00042.png``) or an
    http(s) URL.
    """

    model_config = _CONFIG

    image: ImageReference
    expected_label: NonEmptyText
    note: Text = ""


class QualityThresholds(BaseModel):
    """Limits the quality checks compare against."""

    model_config = _CONFIG

    min_agreement: Fraction = 0.6
    """Lowest acceptable chance-corrected agreement between annotators (kappa/alpha)."""
    min_model_agreement: Fraction = 0.5
    """Lowest acceptable share of annotations that agree with the model's prediction."""
    min_gold_accuracy: Fraction = 0.8
    """Lowest acceptable accuracy of an annotator on gold tasks."""
    drift_significance: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.05
    """p-value below which a drift test reports a shift."""


class OverlapPolicy(BaseModel):
    """How many tasks are labeled by several annotators, to measure agreement."""

    model_config = _CONFIG

    annotators_per_task: Annotated[int, Field(ge=1, le=20)] = 1
    share_of_tasks: Fraction = 0.0

    @model_validator(mode="after")
    def _overlap_needs_two(self) -> Self:
        if self.share_of_tasks > 0 and self.annotators_per_task == 1:
            raise ValueError(
                f"share_of_tasks is {self.share_of_tasks:g} but annotators_per_task is 1; "
                "overlapping tasks need at least 2 annotators"
            )
        return self


class FlowPolicy(BaseModel):
    """Limits of the labeling flow, shown on the flow board."""

    model_config = _CONFIG

    wip_per_annotator: Annotated[int, Field(ge=1, le=100_000)] | None = None
    """Most open tasks per active annotator; None: no limit."""


class SelectionPolicy(BaseModel):
    """How rounds choose images when a request does not say."""

    model_config = _CONFIG

    strategy: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    """A batch-selection strategy name (the service lists them); None: the service's default,
    the one its label-efficiency benchmark chose."""
    class_balanced: bool = False
    """Re-pick each batch toward the classes with the fewest labels so far."""


class TrainingPolicy(BaseModel):
    """How the model is trained on the confirmed labels."""

    model_config = _CONFIG

    head: Literal["supervised", "semi_supervised"] = "semi_supervised"
    """`supervised`: a softmax head on the confirmed labels alone. `semi_supervised` (the
    default, chosen by the label-efficiency benchmark): the same head trained on the confirmed
    labels plus pseudo-labels spread over the pool's kNN graph of embeddings."""


class Guide(BaseModel):
    """A versioned labeling guide: labels, rules, gold tasks, priors and quality limits.

    The order of ``labels`` is the model's class index order.
    """

    model_config = _CONFIG

    name: NonEmptyText
    version: NonEmptyText
    description: Text = ""
    labels: Annotated[list[LabelDefinition], Field(min_length=2)]
    rules: Text = ""
    gold_tasks: list[GoldTask] = []
    class_priors: dict[str, Prior] | None = None
    thresholds: QualityThresholds = QualityThresholds()
    overlap: OverlapPolicy = OverlapPolicy()
    flow: FlowPolicy = FlowPolicy()
    selection: SelectionPolicy = SelectionPolicy()
    training: TrainingPolicy = TrainingPolicy()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = cross_field_problems(self.model_dump())
        if problems:
            raise GuideConflicts(problems)
        return self

    @property
    def label_names(self) -> list[str]:
        """Label names in declared order, which is the model's class index order."""
        return [label.name for label in self.labels]

    def label_index(self, name: str) -> int:
        """Class index of ``name``; raises ``KeyError`` for a name the guide lacks."""
        names = self.label_names
        try:
            return names.index(name)
        except ValueError:
            known = ", ".join(map(repr, names))
            raise KeyError(
                f"unknown label {name!r} in guide {self.name!r}; known: {known}"
            ) from None

    def has_label(self, name: str) -> bool:
        """Whether ``name`` is exactly one of the label names."""
        return name in self.label_names

    def prior_vector(self) -> list[float] | None:
        """Class priors as a list in label order, shape ``(n_classes,)``; None when unset."""
        if self.class_priors is None:
            return None
        return [self.class_priors[name] for name in self.label_names]

    def fingerprint(self) -> str:
        """First 12 hex digits of the SHA-256 of the canonical JSON of the whole guide.

        A `flow`, `selection` or `training` left at its defaults is left out, so guides
        written before they existed keep their fingerprint.
        """
        document = self.model_dump(mode="json")
        defaults = (
            ("flow", FlowPolicy()),
            ("selection", SelectionPolicy()),
            ("training", TrainingPolicy()),
        )
        for name, default in defaults:
            if getattr(self, name) == default:
                del document[name]
        canonical = json.dumps(
            document,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]

    def instructions_markdown(self) -> str:
        """Markdown for annotators: description, one section per label, then the rules."""
        parts = [f"# {self.name} (version {self.version})"]
        if self.description:
            parts.append(self.description)
        parts.append("## Labels")
        for label in self.labels:
            parts.append(_label_section(label))
        if self.rules:
            parts.extend(["## Rules", self.rules])
        return "\n\n".join(parts) + "\n"


def _label_section(label: LabelDefinition) -> str:
    lines = [f"### {label.name}", ""]
    if label.hotkey is not None:
        key = "`` ` ``" if label.hotkey == "`" else f"`{label.hotkey}`"
        lines += [f"Hotkey: {key}", ""]
    lines.append(label.definition)
    if label.examples:
        lines += ["", "Examples:", "", *(f"- {example}" for example in label.examples)]
    return "\n".join(lines)

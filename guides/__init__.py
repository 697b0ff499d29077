"""The labeling guide: labels, rules, gold tasks, class priors and quality thresholds.

Load one with :func:`load_guide`; every problem in it is reported at once as a
:class:`GuideError`.
"""

from guides.errors import GuideError, GuideProblem
from guides.loader import example_guide_path, load_guide, parse_guide
from guides.schema import (
    FlowPolicy,
    GoldTask,
    Guide,
    LabelDefinition,
    OverlapPolicy,
    QualityThresholds,
    TrainingPolicy,
)

__all__ = [
    "FlowPolicy",
    "GoldTask",
    "Guide",
    "GuideError",
    "GuideProblem",
    "LabelDefinition",
    "OverlapPolicy",
    "QualityThresholds",
    "TrainingPolicy",
    "example_guide_path",
    "load_guide",
    "parse_guide",
]

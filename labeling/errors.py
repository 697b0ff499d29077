"""Errors of the labeling package; each carries a stable machine-readable code."""

from __future__ import annotations


class LabelingError(Exception):
    """Base of every labeling error."""

    code = "labeling_error"


class LabelStudioUnavailable(LabelingError):
    """Label Studio cannot be reached, is not healthy, or timed out."""

    code = "label_studio_unavailable"


class LabelStudioRejected(LabelingError):
    """Label Studio answered, but refused the request (4xx)."""

    code = "label_studio_rejected"

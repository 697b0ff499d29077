"""The drift report as an HTML page: checks, p-values over time, projection, labels, novelty."""

from __future__ import annotations

from html import escape
from typing import Any

import numpy as np

from service.quality import plots
from service.quality.html import image, page, table

P_FLOOR = 1e-6  # p-values and levels of 0 drawn here on the log scale


def drift_html(body: dict[str, Any]) -> str:
    """The page of a stored drift report body (schema `DriftReport`)."""
    checks = body["checks"]
    overview = table(
        [
            "check",
            "status",
            "p-value",
            "level",
            "drifted",
            "n reference",
            "n new",
            "check #",
            "control or reason",
        ],
        [
            [
                c["check"],
                c["status"],
                c["p_value"],
                c["level"],
                _drifted(c),
                c["n_reference"],
                c["n_new"],
                c["sequence_check"],
                c["reason"] or c["control"],
            ]
            for c in checks
        ],
        classes=["flagged" if c["drifted"] else "" for c in checks],
    )
    components = table(
        ["check", "test", "p-value"],
        [[c["check"], name, p] for c in checks for name, p in c["components"].items()],
    )
    sections = [
        "<h2>Reference</h2>",
        f"<p>{escape(body['reference_rule'])}</p>",
        "<h2>Checks</h2>",
        overview,
        "<h3>Tests inside each check</h3>",
        components,
        "<h2>Plots</h2>",
        f"<div class='plots'>{''.join(_figures(body))}</div>",
    ]
    sections += _novel(body) + _annotators(body)
    return page(f"Drift report: {body['guide_name']}", body, sections)


def _drifted(check: dict[str, Any]) -> str:
    """yes or no for a check that ran; a skipped one had no data and found nothing either way."""
    if check["status"] != "ran":
        return "n/a (no data)"
    return "yes" if check["drifted"] else "no"


def _figures(body: dict[str, Any]) -> list[str]:
    figures = [image(_p_values(body["history"]), "p-values over time")]
    projection = body.get("projection")
    if projection:
        figures.append(
            image(
                plots.projection(
                    np.asarray(projection["reference"], dtype=float).reshape(-1, 2),
                    np.asarray(projection["new"], dtype=float).reshape(-1, 2),
                ),
                "2-D projection of reference and new embeddings",
            )
        )
    counts = body.get("label_counts")
    if counts:
        figures.append(
            image(
                plots.label_histogram(counts["labels"], counts["observed"], counts["priors"]),
                "label histogram against priors",
            )
        )
    return figures


def _p_values(history: list[dict[str, Any]]) -> str:
    """One line per check over the reports; the dashed line is the images check's level."""
    times = [str(point["created_at"]) for point in history]
    names = sorted({name for point in history for name in point["p_values"]})
    series = {
        name: [max(_or_nan(point["p_values"].get(name)), P_FLOOR) for point in history]
        for name in names
    }
    levels = [
        max(min((v for v in point["levels"].values() if v is not None), default=P_FLOOR), P_FLOOR)
        for point in history
    ]
    return plots.p_values(times, series, levels)


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _novel(body: dict[str, Any]) -> list[str]:
    novel = body["novel_images"]
    if not novel:
        return ["<h2>New kinds of images</h2>", "<p>None: no image is far from the reference.</p>"]
    rows = [[n["image_id"], n["name"], n["distance"], n["p_value"]] for n in novel[:200]]
    return [
        "<h2>New kinds of images</h2>",
        f"<p>{len(novel)} images unlike anything in the reference, most novel first.</p>",
        table(["image id", "name", "distance to nearest reference", "conformal p"], rows),
    ]


def _annotators(body: dict[str, Any]) -> list[str]:
    people = body["annotators"]
    if not people:
        return []
    rows = [
        [
            a["annotator"],
            a["n_labels"],
            a["p_value"],
            a["adjusted_p_value"],
            "yes" if a["drifted"] else "no",
        ]
        for a in people
    ]
    return [
        "<h2>Annotators</h2>",
        table(
            ["annotator", "labels", "p-value", "Holm p-value", "drifted"],
            rows,
            classes=["flagged" if a["drifted"] else "" for a in people],
        ),
    ]

"""Reports as HTML pages with their plots inline (one self-contained file)."""

from __future__ import annotations

from html import escape
from importlib.resources import files
from string import Template
from typing import Any

import numpy as np

from service.quality import plots
from service.quality.verdicts import checks_of, label, verdict_of

TEMPLATE = Template(files("service.quality").joinpath("templates/report.html").read_text())
VERDICT_CLASS = {"passed": "pass", "failed": "fail", "undecided": "undecided", "no_data": "nodata"}


def table(headers: list[str], rows: list[list[Any]], *, classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{classes[i]}"' if classes and classes[i] else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{escape(_cell(v))}</td>" for v in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def image(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{escape(alt)}">'


def page(title: str, body: dict[str, Any], sections: list[str]) -> str:
    """The page around `sections`: verdict, versions, window, sample sizes, false alarms."""
    window = body["window"]
    meta = [
        ("guide", f"{body['guide_name']} v{body['guide_version']} ({body['guide_fingerprint']})"),
        ("model version", body.get("model_version") or "none active"),
        ("data window", f"{window.get('start') or 'n/a'} to {window.get('end') or 'n/a'}"),
        ("sample sizes", ", ".join(f"{k}: {v}" for k, v in body["sample_sizes"].items())),
        ("created", body["created_at"]),
        ("schema", body["schema_version"]),
    ]
    verdict, reason = verdict_of(body)
    if reason:
        meta.insert(0, ("why " + label(verdict), reason))
    rows = "".join(
        f"<tr><th class='l'>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in meta
    )
    return TEMPLATE.substitute(
        title=escape(title),
        verdict=escape(label(verdict)),
        verdict_class=VERDICT_CLASS.get(verdict, "undecided"),
        meta=rows,
        false_alarms=escape(body["false_alarm_control"]),
        sections="\n".join(sections),
    )


def agreement_html(body: dict[str, Any]) -> str:
    """The agreement report: statistics, annotators, plots, decisions."""
    labels = body["labels"]
    stats = body["stats"]
    overview = table(
        ["percent agreement", "Krippendorff alpha", "Fleiss kappa", "Cohen kappa (mean)"],
        [
            [
                stats["percent_agreement"],
                stats["krippendorff_alpha"],
                stats["fleiss_kappa"],
                stats["cohen_mean"],
            ]
        ],
    )
    people = body["annotators"]
    annotators = table(
        [
            "annotator",
            "answers",
            "gold accuracy",
            "gold n",
            "agreement with consensus",
            "suggestions kept",
            "wrong suggestions kept",
            "flagged",
        ],
        [
            [
                p["annotator"],
                p["answers"],
                p["gold_accuracy"],
                p["gold_attempted"],
                p["consensus_agreement"],
                f"{p['suggestions_accepted']}/{p['suggestions_shown']}",
                f"{p['wrong_suggestions_accepted']}/{p['wrong_suggestions_shown']}",
                "yes" if p["flagged"] else "no",
            ]
            for p in people
        ],
        classes=["flagged" if p["flagged"] else "" for p in people],
    )
    confusion = (
        np.sum([np.asarray(p["confusion"]) for p in people], axis=0)
        if people
        else np.zeros((len(labels),) * 2)
    )
    priors = [body["priors"][n] for n in labels] if body.get("priors") else None
    versions = body["acceptance_by_version"]
    figures = [
        image(
            plots.label_histogram(labels, [body["label_counts"][n] for n in labels], priors),
            "label histogram against priors",
        ),
        image(
            plots.heatmap(confusion, labels, "all annotators: consensus vs given"),
            "confusion heatmap",
        ),
        image(
            plots.rate_bars(
                [v["key"] for v in versions],
                [v["rate"] for v in versions],
                "suggestions kept, by model version",
            ),
            "acceptance by model version",
        ),
    ]
    decisions = [d for d in body["decisions"] if d["scope"] != "task" or d["verdict"] == "fail"]
    decided = table(
        ["scope", "subject", "check", "verdict", "value", "threshold", "n", "action or reason"],
        [
            [
                d["scope"],
                d["subject"],
                d["check"],
                label(d["verdict"]),
                d["value"],
                d["threshold"],
                d["sample_size"],
                d["action"] or d.get("reason"),
            ]
            for d in decisions
        ],
    )
    checks = checks_of(body)
    summary = table(
        ["check", "verdict", "reason"],
        [[c.check, label(c.verdict), c.reason] for c in checks],
        classes=["failed" if c.verdict == "fail" else "" for c in checks],
    )
    sections = [
        "<h2>Checks</h2>",
        summary if checks else "",
        "<h2>Agreement</h2>",
        _no_overlap_yet(body),
        overview,
        "<h2>Annotators</h2>",
        annotators,
        "<h2>Plots</h2>",
        f"<div class='plots'>{''.join(figures)}</div>",
        "<h2>Decisions</h2>",
        decided,
    ]
    return page(f"Agreement report: {body['guide_name']}", body, sections)


def _no_overlap_yet(body: dict[str, Any]) -> str:
    """A sentence in place of undefined statistics while no task has two answers."""
    if body["stats"]["alpha_units"] > 0:
        return ""
    answers = body["sample_sizes"].get("answers", 0)
    return (
        "<p><b>No overlapping annotations yet</b>: agreement needs tasks answered by two "
        f"annotators or more ({answers} answers so far). The figures below fill in as "
        "annotators submit.</p>"
    )

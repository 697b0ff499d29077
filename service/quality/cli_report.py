"""`activelabel report agreement|drift`: run a report through the service API and summarise it.

Enqueues the report job, follows it with a progress bar, then prints a readable summary (or
the report's JSON) and writes its HTML page when asked. Talks HTTP only: the service may run
anywhere the URL reaches.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import typer

from service.quality.verdicts import checks_of, label, verdict_of

POLL_S = 0.3


class ReportFailed(Exception):
    """The service refused the request or the job failed; the message says why."""


def run_report(
    kind: str,
    *,
    api_url: str,
    api_key: str,
    html: Path | None,
    as_json: bool,
    timeout_s: float,
) -> dict[str, Any] | None:
    """Run the `kind` report job and print the outcome; the report body, or None when none."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=api_url.rstrip("/"), headers=headers, timeout=30.0) as client:
        started = _ok(client.post(f"/v1/reports/{kind}"))
        job = follow(client, started["status_url"], timeout_s=timeout_s)
        result = job.get("result") or {}
        if not result.get("report_id"):
            typer.echo(f"no {kind} report was stored:")
            for reason in result.get("skipped", []):
                typer.echo(f"  - {reason}")
            return None
        report = _ok(client.get(f"/v1/reports/{result['report_id']}"))
        if html is not None:
            page = client.get(f"/v1/reports/{result['report_id']}.html")
            _ok(page, as_json=False)
            html.write_text(page.text, encoding="utf-8")
    typer.echo(json.dumps(report, indent=2) if as_json else summary(report))
    if html is not None and not as_json:
        typer.echo(f"HTML written to {html}")
    return report


def follow(client: httpx.Client, status_url: str, *, timeout_s: float) -> dict[str, Any]:
    """Poll the job, drawing its progress, until it ends; `ReportFailed` unless it succeeded."""
    deadline = time.monotonic() + timeout_s
    shown = 0
    with typer.progressbar(length=100, label="report", file=None) as bar:
        while True:
            job = _ok(client.get(status_url))
            percent = int(round(100 * float(job.get("progress", 0.0))))
            bar.update(max(0, percent - shown))
            shown = max(shown, percent)
            if job["status"] in ("succeeded", "failed", "cancelled"):
                break
            if time.monotonic() > deadline:
                raise ReportFailed(f"job {job['id']} still {job['status']} after {timeout_s:.0f} s")
            time.sleep(POLL_S)
        bar.update(100 - shown)
    if job["status"] != "succeeded":
        error = job.get("error") or {}
        raise ReportFailed(f"job {job['status']}: {error.get('code')} {error.get('message')}")
    return job


def _ok(response: httpx.Response, *, as_json: bool = True) -> Any:
    if response.is_success:
        return response.json() if as_json else response.text
    try:
        error = response.json()["error"]
        reason = f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        reason = response.text[:200]
    raise ReportFailed(f"{response.request.method} {response.request.url.path}: {reason}")


def summary(report: dict[str, Any]) -> str:
    """Plain-text lines: verdict, versions, window, sample sizes, then the report's findings."""
    window = report["window"]
    verdict, reason = verdict_of(report)
    lines = [f"{report['kind']} report {report['id']}: {label(verdict).upper()}"]
    if reason:
        lines.append(f"why:           {reason}")
    lines += [
        f"guide:         {report['guide_name']} v{report['guide_version']}",
        f"model version: {report.get('model_version') or 'none active'}",
        f"data window:   {window.get('start') or 'n/a'} to {window.get('end') or 'n/a'}",
        "sample sizes:  " + ", ".join(f"{k} {v}" for k, v in report["sample_sizes"].items()),
    ]
    lines += _drift_lines(report) if report["kind"] == "drift" else _agreement_lines(report)
    lines.append(f"false alarms:  {report['false_alarm_control']}")
    return "\n".join(lines)


def _drift_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for c in report["checks"]:
        if c["status"] != "ran":
            lines.append(f"  {c['check']:<12} no data: {c['reason']}")
            continue
        verdict = "DRIFT" if c["drifted"] else "ok"
        lines.append(
            f"  {c['check']:<12} {verdict:<5} p = {c['p_value']:.3g}, level {c['level']:.3g} "
            f"(check {c['sequence_check']}; n_ref {c['n_reference']}, n_new {c['n_new']})"
        )
    if report["novel_images"]:
        names = [str(n["name"] or n["image_id"]) for n in report["novel_images"][:10]]
        lines.append(f"  novel images: {len(report['novel_images'])} ({', '.join(names)})")
    return lines


def _agreement_lines(report: dict[str, Any]) -> list[str]:
    stats = report["stats"]
    lines = [
        f"  Krippendorff alpha {_num(stats['krippendorff_alpha'])}, Fleiss kappa "
        f"{_num(stats['fleiss_kappa'])}, percent agreement {_num(stats['percent_agreement'])}"
    ]
    lines += [
        f"  {c.check:<16} {label(c.verdict)}" + (f": {c.reason}" if c.reason else "")
        for c in checks_of(report)
    ]
    flagged = [str(a["annotator"]) for a in report["annotators"] if a["flagged"]]
    lines.append(f"  flagged annotators: {', '.join(flagged) or 'none'}")
    failed = [d for d in report["decisions"] if d["verdict"] == "fail" and d["scope"] != "task"]
    lines += [f"  failed: {d['scope']} {d['subject']} {d['check']}" for d in failed]
    return lines


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"

"""Counting requests for the load and soak benchmarks: latencies per kind, errors, samples."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import numpy as np


@dataclass
class Tally:
    """One thread's observations: latencies (ms) per kind, errors and a few samples."""

    latencies: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)


def timed(
    tally: Tally, kind: str, expected: int, send: Callable[[], httpx.Response]
) -> httpx.Response | None:
    """Send one request and count it; None when it got no answer (the error is counted)."""
    started = time.perf_counter()
    try:
        response = send()
    except httpx.HTTPError as err:
        tally.errors[f"{kind}: {type(err).__name__}"] += 1
        return None
    tally.latencies[kind].append((time.perf_counter() - started) * 1000)
    if response.status_code != expected:
        tally.errors[f"{kind}: {response.status_code}"] += 1
        if len(tally.samples) < 5:
            tally.samples.append(f"{kind} {response.status_code} {response.text[:200]}")
    return response


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0, "p50_ms": 0.0, "p99_ms": 0.0}
    p50, p99 = np.percentile(values, [50, 99])
    return {"count": len(values), "p50_ms": round(float(p50), 1), "p99_ms": round(float(p99), 1)}


@dataclass(frozen=True)
class Totals:
    """Tallies merged: every answered latency, errors by kind, samples, per-kind figures."""

    answered: list[float]
    errors: Counter[str]
    samples: list[str]
    per_kind: dict[str, dict[str, float]]

    @property
    def requests(self) -> int:
        """Answered requests plus those that got no answer at all."""
        return len(self.answered) + self.unanswered

    @property
    def unanswered(self) -> int:
        return sum(n for key, n in self.errors.items() if not key.rsplit(": ", 1)[-1].isdigit())

    @property
    def server_errors(self) -> int:
        return sum(n for key, n in self.errors.items() if key.rsplit(": ", 1)[-1][:1] == "5")


def merge(
    tallies: list[Tally], *, only: set[str] | None = None, exclude: frozenset[str] = frozenset()
) -> Totals:
    """The tallies' figures together, of the kinds in `only` (default: all) not in `exclude`."""
    seen = {k for t in tallies for k in t.latencies} | {_kind(e) for t in tallies for e in t.errors}
    kinds = sorted(k for k in seen if (only is None or k in only) and k not in exclude)
    per_kind = {
        k: percentiles([ms for t in tallies for ms in t.latencies.get(k, [])]) for k in kinds
    }
    errors: Counter[str] = Counter()
    for tally in tallies:
        errors.update({key: n for key, n in tally.errors.items() if _kind(key) in kinds})
    return Totals(
        answered=[ms for t in tallies for k in kinds for ms in t.latencies.get(k, [])],
        errors=errors,
        samples=[s for t in tallies for s in t.samples if s.split(" ", 1)[0] in kinds][:10],
        per_kind=per_kind,
    )


def _kind(error_key: str) -> str:
    return error_key.split(": ", 1)[0]

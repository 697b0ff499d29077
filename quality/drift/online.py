"""Repeated drift checks without a growing false-alarm rate: alpha spending.

Testing every batch at ``alpha`` raises a false alarm in about ``1 - (1 - alpha)^t`` of
``t`` checks when nothing drifts. Alpha spending gives check ``t`` the level ``alpha_t`` with
``sum_t alpha_t <= alpha``, so by the union bound the chance of *ever* raising a false alarm
stays at most ``alpha`` (family-wise error over all checks), whatever the dependence between
checks (they share one reference, so they are dependent).

- No horizon: ``alpha_t = alpha * 6 / (pi^2 t^2)`` (sums to ``alpha`` over infinitely many
  checks; the first check gets ``0.61 alpha``).
- A horizon ``H`` (for example 52 weekly checks per guide version): ``alpha_t = alpha / H``
  for ``t <= H`` and 0 afterwards; start a new policy with a new reference.

The policy is a frozen value: ``apply`` returns the re-judged result and the next policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TypeVar

from quality.drift._checks import check_alpha
from quality.drift.results import DriftResult

R = TypeVar("R", bound=DriftResult)


@dataclass(frozen=True)
class AlphaSpending:
    """Family-wise control over a sequence of checks; ``checks`` made so far, ``spent`` level."""

    alpha: float = 0.05
    horizon: int | None = None
    checks: int = 0
    spent: float = 0.0

    def __post_init__(self) -> None:
        check_alpha(self.alpha)
        if self.horizon is not None and self.horizon < 1:
            raise ValueError(f"expected a horizon of at least 1 check, got {self.horizon}")
        if self.checks < 0:
            raise ValueError(f"expected checks >= 0, got {self.checks}")

    def level(self, check: int) -> float:
        """The significance level of check number ``check`` (1-based)."""
        if check < 1:
            raise ValueError(f"expected a check number >= 1, got {check}")
        if self.horizon is not None:
            return self.alpha / self.horizon if check <= self.horizon else 0.0
        return self.alpha * 6.0 / (math.pi**2 * check**2)

    @property
    def next_level(self) -> float:
        """The level the next check is held to."""
        return self.level(self.checks + 1)

    def describe(self, check: int) -> str:
        """One sentence for reports: which control, which check, which level."""
        sequence = (
            f"alpha/{self.horizon} per check for {self.horizon} checks"
            if self.horizon is not None
            else "alpha_t = alpha * 6 / (pi^2 t^2)"
        )
        return (
            f"alpha spending ({sequence}, alpha = {self.alpha:g}; the chance of any false "
            f"alarm over all checks is at most alpha): check {check} at level "
            f"{self.level(check):.3g}"
        )

    def apply(self, result: R) -> tuple[R, AlphaSpending]:
        """``result`` judged at the next level, and the policy after this check."""
        check = self.checks + 1
        level = self.level(check)
        judged = replace(
            result,
            threshold=level,
            drifted=result.p_value <= level,
            control=f"{result.control}; then {self.describe(check)}",
        )
        return judged, replace(self, checks=check, spent=self.spent + level)

"""Helpers of bench/al_curve.py: the shared fast head, statistics, plots and the baal worker."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from scipy import optimize, stats

from models.head import TrainedHead, head_version

WEIGHT_DECAY = 1e-3  # train_head's default
BOOTSTRAP = 5000
ALPHA = 0.05
BAAL_VERSION = "2.1.0"


class LinearHead:
    """Softmax regression on features standardised with the pool's statistics.

    Minimises ``mean cross-entropy + WEIGHT_DECAY / 2 * |W|^2`` with L-BFGS, starting from
    the previous fit: consecutive rounds differ by 20 labels, so few iterations are needed.
    """

    def __init__(self, pool_x: np.ndarray, n_classes: int) -> None:
        self.mean = pool_x.mean(axis=0)
        spread = pool_x.std(axis=0)
        self.std = np.maximum(spread, 0.1 * max(float(np.median(spread)), 1e-12))
        self.n_classes = n_classes
        self.params = np.zeros(n_classes * (pool_x.shape[1] + 1))

    def _split(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = self.mean.shape[0]
        return params[: self.n_classes * d].reshape(self.n_classes, d), params[-self.n_classes :]

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        weight_decay: float = WEIGHT_DECAY,
        sample_weight: np.ndarray | None = None,
    ) -> None:
        """Fit to ``x, y``; ``sample_weight`` makes the cross-entropy a weighted mean."""
        z = (x - self.mean) / self.std
        onehot = np.eye(self.n_classes)[y]
        if sample_weight is None:
            share = np.full(len(y), 1.0 / len(y))
        else:
            share = np.asarray(sample_weight, dtype=np.float64) / np.sum(sample_weight)

        def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = self._split(params)
            logits = z @ w.T + b
            logits -= logits.max(axis=1, keepdims=True)
            log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            loss = -(share @ (onehot * log_p).sum(axis=1)) + 0.5 * weight_decay * (w * w).sum()
            delta = (np.exp(log_p) - onehot) * share[:, None]
            grad_w = delta.T @ z + weight_decay * w
            return loss, np.concatenate([grad_w.ravel(), delta.sum(axis=0)])

        found = optimize.minimize(
            objective, self.params, jac=True, method="L-BFGS-B", options={"maxiter": 500}
        )
        self.params = found.x

    def logits(self, x: np.ndarray) -> np.ndarray:
        w, b = self._split(self.params)
        return ((x - self.mean) / self.std) @ w.T + b

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float((self.logits(x).argmax(axis=1) == y).mean())

    def as_trained_head(self) -> TrainedHead:
        """The same head as a :class:`TrainedHead` acting on raw features."""
        w, b = self._split(self.params)
        weight = w / self.std
        state = {
            "weight": torch.from_numpy(weight).float(),
            "bias": torch.from_numpy(b - weight @ self.mean).float(),
        }
        names = [str(c) for c in range(self.n_classes)]
        return TrainedHead(
            state=state,
            class_names=names,
            backbone_id="bench",
            embedding_dim=len(self.mean),
            version=head_version("bench", names, state),
            n_train=0,
            metrics={},
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )


def labels_to_target(
    curve: list[float] | np.ndarray, budgets: list[int], target: float
) -> int | None:
    """The first budget at which ``curve`` reaches ``target``; None if it never does."""
    for budget, accuracy in zip(budgets, curve, strict=True):
        if accuracy >= target:
            return budget
    return None


def _bootstrap_ratio(numerator: np.ndarray, denominator: np.ndarray, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    draws = rng.integers(len(numerator), size=(BOOTSTRAP, len(numerator)))
    ratios = numerator[draws].mean(axis=1) / denominator[draws].mean(axis=1)
    return [float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))]


def paired_summary(
    curves: dict[str, np.ndarray],
    budgets: list[int],
    target: float,
    default: str,
    known: dict[str, list[int | None]],
    cap: int | None = None,
) -> dict[str, object]:
    """Labels-to-target per method, ratios with bootstrap CIs, and per-budget paired tests.

    A run that never reaches the target counts as one batch past the last budget, or past
    ``cap`` when runs went on beyond the curves (censored); that understates the labels it
    needs, and how many were censored is reported. ``known`` gives labels-to-target measured
    past the curves (random's longer run, the other methods' extension).
    """
    step = budgets[1] - budgets[0] if len(budgets) > 1 else 0
    cap = (budgets[-1] if cap is None else cap) + step
    needed = {}
    per_method = {}
    for method, runs in curves.items():
        reached = known.get(method) or [labels_to_target(run, budgets, target) for run in runs]
        needed[method] = np.array([cap if r is None else r for r in reached], dtype=float)
        per_method[method] = {
            "mean": float(needed[method].mean()),
            "median": float(np.median(needed[method])),
            "per_seed": reached,
            "censored": sum(r is None for r in reached),
        }
    out: dict[str, object] = {"labels_to_target": per_method}
    for rival, key in (("random", "ratio_vs_random"), ("baal_bald", "ratio_vs_baal")):
        if rival in needed and default in needed:
            out[key] = float(needed[rival].mean() / needed[default].mean())
            out[f"{key}_ci"] = _bootstrap_ratio(needed[rival], needed[default])
    if "random" in curves and default in curves:
        p_values = []
        for column in range(len(budgets)):
            diff = curves[default][:, column] - curves["random"][:, column]
            worse = stats.ttest_1samp(diff, 0.0, alternative="less").pvalue if diff.any() else 1.0
            p_values.append(float(1.0 if np.isnan(worse) else worse))
        out["p_worse_than_random"] = p_values
        out["never_worse_than_random"] = bool(min(p_values) >= ALPHA)
    return out


def plot_curves(report: dict, path: Path) -> None:
    """Mean accuracy against labels for each method, with the target, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)
    budgets = report["budgets"]
    for method, curve in report["mean_curves"].items():
        width = 2.5 if method in ("random", report.get("default", "")) else 1.2
        ax.plot(budgets, curve, label=method, linewidth=width)
    ax.axhline(report["target_accuracy"], color="black", linestyle="--", label="target")
    ax.set(
        xlabel="labels", ylabel="held-out accuracy", title=f"{report['data_set']}: mean of seeds"
    )
    ax.set_ylim(
        max(0.0, report["target_accuracy"] - 0.35), min(1.0, report["target_accuracy"] + 0.1)
    )
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


class BaalWorker:
    """baal's BALD heuristic in a persistent process of the baal virtual environment."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.directory = tempfile.TemporaryDirectory()

    @classmethod
    def start(cls, root: Path) -> tuple[BaalWorker | None, str]:
        """Install baal into ``bench/.venv-baal`` if needed and start the worker."""
        venv = root / "bench" / ".venv-baal"
        python = venv / "bin" / "python"
        try:
            if not _has_baal(python):
                _install_baal(venv, python)
            process = subprocess.Popen(
                [str(python), str(root / "bench" / "baal_bald.py")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError("the baal worker did not start")
        except (OSError, RuntimeError, subprocess.SubprocessError) as err:
            return None, f"baal unavailable: {err}"
        note = f"baal {BAAL_VERSION} BALD heuristic on the same posterior samples and candidates"
        return cls(process), note

    def rank(self, members: np.ndarray, k: int) -> np.ndarray:
        path = Path(self.directory.name) / "members.npy"
        np.save(path, members.astype(np.float32))
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{path} {k}\n")
        self.process.stdin.flush()
        return np.array([int(i) for i in self.process.stdout.readline().split()], dtype=np.int64)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.directory.cleanup()


def _has_baal(python: Path) -> bool:
    if not python.exists():
        return False
    check = subprocess.run([str(python), "-c", "import baal"], capture_output=True)
    return check.returncode == 0


def _install_baal(venv: Path, python: Path) -> None:
    """A venv that sees this interpreter's packages (torch included) through a .pth file."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "project-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    print(f"installing baal {BAAL_VERSION} into {venv.name} (once)", file=sys.stderr)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"baal=={BAAL_VERSION}"],
        check=True,
        timeout=1800,
    )

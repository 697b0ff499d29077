"""Benchmark: calibration, power and speed of the drift checks on Fashion-MNIST embeddings.

Uses the cached EfficientNet-Lite0 embeddings of the first 12,000 Fashion-MNIST training
images (`bench/fashion_features.py`). Eight classes play the guide's classes; Trouser and Bag
play the classes the guide does not have and never enter a reference. The first 2,000 guide
images train a logistic-regression head (for prediction drift) and fit the 64-d PCA that MMD
and the KS screen run on (passed as ``components``, so no PCA is fitted per run); the rest
form the pool the runs draw from.

* Calibration: ``--null-runs`` runs, each with a 2,000-image reference and a disjoint
  500-image batch drawn from the guide-class pool; every test's false-alarm rate at
  alpha = 0.05 and a KS test of its p-values against the uniform law. The label test holds
  each batch's labels against the pool's class shares; a batch is drawn without replacement
  from that finite pool, so the test gets the pool's size (finite-population correction).
* Power: ``--power-runs`` runs per shift, 500 new against 2,000 reference images: Gaussian
  blur (kernel 5, sigma 1.5, on the 28x28 images) on 20% of the batch; two classes making up
  half the batch; 20% of the batch from the unseen classes; only 5% from them. The image
  verdict is weighted Sidak-Holm (``IMAGE_WEIGHTS``); the equal-weight verdict is kept beside it
  (under the ``images_equal_holm`` keys).
  Every run's p-values go to ``bench/cache/drift-run-p-values.json``.
* Speed: the MMD permutation test on 5,000 vs 5,000 embeddings (64-d PCA, 100 permutations)
  against alibi-detect's ``MMDDrift(backend="pytorch")`` in its own venv
  (``bench/.venv-alibi``, made by ``make bench-references``), timed in the same run.

Writes ``bench/results/drift.json`` and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fashion_features import CACHE_DIR, embed_uint8, fashion_embeddings  # noqa: E402

from models.datasets import load_fashion_mnist  # noqa: E402
from quality.drift import (  # noqa: E402
    IMAGE_WEIGHTS,
    annotator_drift,
    image_drift,
    mmd_test,
    prediction_drift,
    prior_drift,
)
from quality.drift.combine import sidak_holm  # noqa: E402

HELD_OUT = (1, 8)  # Trouser, Bag: the classes the guide does not have
N_REF, N_NEW, ALPHA = 2000, 500, 0.05
ALIBI_PYTHON = ROOT / "bench" / ".venv-alibi" / "bin" / "python"
RESULTS = ROOT / "bench" / "results" / "drift.json"
RUN_P_VALUES = CACHE_DIR / "drift-run-p-values.json"  # every run's p-values, by shift and test


def blurred_embeddings(indices: np.ndarray) -> np.ndarray:
    """Embeddings of Gaussian-blurred (kernel 5, sigma 1.5) train images, cached."""
    from torchvision.transforms import v2

    path = CACHE_DIR / f"drift-blur-{len(indices)}-{int(indices.sum())}.npz"
    if path.exists():
        return np.load(path)["x"]
    images = load_fashion_mnist("train")[0][indices]
    blur = v2.GaussianBlur(kernel_size=5, sigma=1.5)
    blurred = blur(torch.from_numpy(images)[:, None]).squeeze(1).numpy()
    vectors = embed_uint8(blurred)
    np.savez(path, x=vectors)
    return vectors


class Data:
    """The pool, the head's probabilities and the index sets the runs draw from."""

    def __init__(self, n_blur: int) -> None:
        self.x, self.y = fashion_embeddings("train", 12000)
        guide = np.flatnonzero(~np.isin(self.y, HELD_OUT))
        self.unseen = np.flatnonzero(np.isin(self.y, HELD_OUT))
        train, rest = guide[:2000], guide[2000:]
        self.blur_source, self.pool = rest[:n_blur], rest[n_blur:]
        self.blurred = blurred_embeddings(self.blur_source)
        head = LogisticRegression(max_iter=1000).fit(self.x[train], self.y[train])
        self.classes = head.classes_
        self.probs = head.predict_proba(self.x)
        self.pca = PCA(n_components=64, random_state=0).fit(self.x[train])
        counts = np.array([np.sum(self.y[self.pool] == c) for c in self.classes])
        self.priors = counts / counts.sum()  # the guide's priors: the pool's class shares


def run_checks(
    data: Data,
    ref: np.ndarray,
    new_x: np.ndarray,
    new_idx: np.ndarray,
    seed: int,
    n_permutations: int,
) -> dict[str, float]:
    """p-values of every check for one run; ``new_idx`` indexes the labels/probs of the batch."""
    images = image_drift(
        data.x[ref],
        new_x,
        alpha=ALPHA,
        n_permutations=n_permutations,
        components=data.pca.components_,  # fitted on held-out images, not per run
        seed=seed,
        device="cpu",
    )
    preds = prediction_drift(data.probs[ref], data.probs[new_idx], alpha=ALPHA)
    labels = data.y[new_idx]
    counts = np.array([np.sum(labels == c) for c in data.classes])
    unknown = int(np.isin(labels, HELD_OUT).sum())
    label = prior_drift(
        counts,
        data.priors,
        alpha=ALPHA,
        unknown={"unseen": unknown},
        population_size=len(data.pool),
    )
    who = np.random.default_rng(seed).integers(0, 5, size=len(labels))
    kept = ~np.isin(labels, HELD_OUT)
    annotators = annotator_drift(
        np.searchsorted(data.classes, labels[kept]),
        who[kept],
        n_classes=len(data.classes),
        alpha=ALPHA,
    )
    raw = [images.mmd.p_value, images.ks_screen.p_value, images.novelty.p_value]
    return {
        "images": images.p_value,
        "images_equal_holm": float(sidak_holm(raw).min()),  # the verdict with equal weights
        "mmd": images.mmd.p_value,
        "ks_screen": images.ks_screen.p_value,
        "novelty": images.novelty.p_value,
        "novelty_listed": float(len(images.novelty.novel_indices)),
        "predictions": preds.p_value,
        "predicted_classes": preds.classes.p_value,
        "confidence": preds.confidence.p_value,
        "labels": label.p_value,
        "annotators": annotators.p_value,
    }


SHIFTS = ("blur_20pct", "prior_two_classes_half", "unseen_classes", "unseen_5pct")
_DATA: Data | None = None  # set before the worker pool forks, read by the workers


def null_batch(data: Data, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    idx = rng.permutation(data.pool)
    return idx[:N_REF], idx[N_REF : N_REF + N_NEW]


def shifted_batch(
    data: Data, shift: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference indices, new embeddings ``(500, D)`` and the new images' indices."""
    ref, new = null_batch(data, rng)
    rest = np.setdiff1d(data.pool, ref)
    if shift == "blur_20pct":
        pick = rng.choice(len(data.blur_source), N_NEW // 5, replace=False)
        keep = new[: N_NEW - len(pick)]
        new_x = np.concatenate([data.x[keep], data.blurred[pick]])
        return ref, new_x, np.concatenate([keep, data.blur_source[pick]])
    if shift == "prior_two_classes_half":
        two = rng.choice(data.classes, 2, replace=False)
        heavy = rng.choice(rest[np.isin(data.y[rest], two)], N_NEW // 2, replace=False)
        light = rng.choice(rest[~np.isin(data.y[rest], two)], N_NEW - N_NEW // 2, replace=False)
        new = np.concatenate([heavy, light])
    elif shift != "none":
        n_unseen = N_NEW // 5 if shift == "unseen_classes" else N_NEW // 20
        odd = rng.choice(data.unseen, n_unseen, replace=False)
        new = np.concatenate([new[: N_NEW - n_unseen], odd])
    return ref, data.x[new], new


def one_run(job: tuple[str, int, int]) -> tuple[str, dict[str, float]]:
    """Every check's p-value for run ``run`` of ``shift`` (``"none"``: a null run)."""
    shift, run, n_permutations = job
    assert _DATA is not None
    torch.set_num_threads(1)
    rng = np.random.default_rng([(("none",) + SHIFTS).index(shift), run])
    ref, new_x, new_idx = shifted_batch(_DATA, shift, rng)
    with threadpool_limits(1):
        return shift, run_checks(_DATA, ref, new_x, new_idx, run, n_permutations)


def run_all(data: Data, null_runs: int, power_runs: int, n_permutations: int, workers: int):
    """p-values of the null runs by test, and the detection rate of each test by shift."""
    global _DATA
    _DATA = data
    jobs = [("none", run, n_permutations) for run in range(null_runs)]
    jobs += [(shift, run, n_permutations) for shift in SHIFTS for run in range(power_runs)]
    runs: dict[str, list[dict[str, float]]] = {shift: [] for shift in ("none",) + SHIFTS}
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for done, (shift, p_values) in enumerate(pool.imap(one_run, jobs), 1):
            runs[shift].append(p_values)
            if done % 100 == 0:
                print(f"  {done}/{len(jobs)} runs", file=sys.stderr, flush=True)
    RUN_P_VALUES.write_text(json.dumps(runs))
    null = {name: [run[name] for run in runs["none"]] for name in runs["none"][0]}
    rates = {
        shift: {
            name: float(np.mean([run[name] <= ALPHA for run in runs[shift]]))
            for name in runs[shift][0]
            if name != "novelty_listed"
        }
        for shift in SHIFTS
    }
    return null, rates


ALIBI_SCRIPT = """
import json, sys, time
import numpy as np
from alibi_detect.cd import MMDDrift
data = np.load(sys.argv[1])
x, y = data["x"], data["y"]
start = time.perf_counter()
detector = MMDDrift(x, backend="pytorch", p_val=0.05, n_permutations=100, device="cpu")
built = time.perf_counter()
prediction = detector.predict(y)
done = time.perf_counter()
print(json.dumps({"init_seconds": built - start, "predict_seconds": done - built,
                  "p_value": float(prediction["data"]["p_val"])}))
"""


def speed(data: Data) -> dict[str, object]:
    """Ours against alibi-detect on 5,000 vs 5,000 64-d embeddings, 100 permutations."""
    rng = np.random.default_rng(2)
    idx = rng.permutation(np.concatenate([data.pool, data.unseen]))[:10_000]
    z = data.pca.transform(data.x[idx]).astype(np.float32)
    x, y = z[:5000], z[5000:]
    mmd_test(x[:500], y[:500], n_permutations=10, device="cpu")  # warm-up
    start = time.perf_counter()
    ours = mmd_test(x, y, n_permutations=100, seed=0, device="cpu")
    mmd_seconds = time.perf_counter() - start
    out: dict[str, object] = {"mmd_seconds": mmd_seconds, "mmd_p_value": ours.p_value}
    if not ALIBI_PYTHON.exists():
        return out | _loop_reference(x, y, mmd_seconds)
    path = CACHE_DIR / "drift-speed-5000x2-64d.npz"
    np.savez(path, x=x, y=y)
    done = subprocess.run(
        [str(ALIBI_PYTHON), "-c", ALIBI_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    alibi = json.loads(done.stdout.strip().splitlines()[-1])
    return out | {
        "reference": "alibi-detect MMDDrift(backend='pytorch', n_permutations=100), predict()",
        "reference_seconds": alibi["predict_seconds"],
        "reference_init_seconds": alibi["init_seconds"],
        "reference_p_value": alibi["p_value"],
        "speedup_vs_reference": alibi["predict_seconds"] / mmd_seconds,
    }


def _loop_reference(x: np.ndarray, y: np.ndarray, mmd_seconds: float) -> dict[str, object]:
    """Fallback reference: the same test with one kernel-sum pass per permutation."""
    from quality.drift.mmd import gaussian_kernel, median_bandwidth, random_permutations

    start = time.perf_counter()
    pooled = torch.from_numpy(np.concatenate([x, y]))
    kernel = gaussian_kernel(pooled, median_bandwidth(pooled, generator=torch.Generator()))
    for perm in random_permutations(len(pooled), 100, seed=1):
        a, b = perm[: len(x)], perm[len(x) :]
        kernel[a][:, a].sum(), kernel[b][:, b].sum(), kernel[a][:, b].sum()
    seconds = time.perf_counter() - start
    return {
        "reference": "per-permutation loop (alibi-detect not installed)",
        "reference_seconds": seconds,
        "speedup_vs_reference": seconds / mmd_seconds,
    }


def summarise(p_values: dict[str, list[float]], shifts: dict[str, dict[str, float]]) -> dict:
    tests = [name for name in p_values if name != "novelty_listed"]
    far = {name: float(np.mean(np.array(p_values[name]) <= ALPHA)) for name in tests}
    uniform = {name: float(stats.kstest(p_values[name], "uniform").pvalue) for name in tests}
    detector = {
        "blur_20pct": "images",
        "prior_two_classes_half": "images",
        "unseen_classes": "images",
        "unseen_5pct": "images",
    }
    return {
        "false_alarm_rate": far,
        "uniformity_p": uniform,
        "novelty_any_image_listed_rate": float(np.mean(np.array(p_values["novelty_listed"]) > 0)),
        "power": {shift: shifts[shift][detector[shift]] for shift in shifts},
        "power_verdict": "images: weighted sidak-holm over "
        + ", ".join(f"{name} {share:g}" for name, share in IMAGE_WEIGHTS.items()),
        "image_weights": dict(IMAGE_WEIGHTS),
        "power_equal_holm": {shift: shifts[shift]["images_equal_holm"] for shift in shifts},
        "power_by_test": shifts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--null-runs", type=int, default=500)
    parser.add_argument("--power-runs", type=int, default=100)
    parser.add_argument("--permutations", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--part",
        choices=("all", "runs", "speed"),
        default="all",
        help="run only the calibration and power runs, or only the speed test, and update "
        "those fields of an existing results file",
    )
    args = parser.parse_args()
    data = Data(n_blur=200)
    result: dict[str, object] = {}
    if args.part in ("all", "runs"):  # forks workers: before any multi-threaded torch work
        start = time.perf_counter()
        p_values, shifts = run_all(
            data, args.null_runs, args.power_runs, args.permutations, args.workers
        )
        result |= summarise(p_values, shifts) | {
            "null_runs": args.null_runs,
            "power_runs": args.power_runs,
            "mmd_permutations_in_runs": args.permutations,
            "runs_seconds": time.perf_counter() - start,
        }
        for key in ("false_alarm_rate", "uniformity_p", "power"):
            print(key, json.dumps(result[key]))
    if args.part in ("all", "speed"):
        result |= speed(data)
        print(
            f"MMD 5000 vs 5000: ours {result['mmd_seconds']:.2f} s, reference "
            f"{result['reference_seconds']:.2f} s ({result['reference']}): "
            f"{result['speedup_vs_reference']:.1f}x",
            flush=True,
        )
    result |= {
        "alpha": ALPHA,
        "n_reference": N_REF,
        "n_new": N_NEW,
        "held_out_classes": ["Trouser", "Bag"],
        "machine": "2-core AMD EPYC CPU, no GPU",
        "date": date.today().isoformat(),
        "torch": torch.__version__,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if args.part != "all" and RESULTS.exists():  # read at the end: parts may run side by side
        result = json.loads(RESULTS.read_text()) | result
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

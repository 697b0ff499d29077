"""Maximum mean discrepancy with a Gaussian kernel and a batched permutation test.

The pooled kernel matrix ``K: (N, N)`` of ``N = m + n`` points is computed once. A
permutation assigns ``m`` of the pooled points to the reference side; with ``a: (N,)`` its 0/1
indicator and ``t = K 1`` the row sums, the unbiased MMD^2 needs only ``a'Ka`` and ``a't``:

    S_xx = a'Ka - m,   S_xy = a't - a'Ka,   S_yy = 1'K1 - 2 a't + a'Ka - n
    MMD^2 = S_xx / (m (m-1)) + S_yy / (n (n-1)) - 2 S_xy / (m n)

(the Gaussian kernel has a unit diagonal). A chunk of permutations is a 0/1 matrix
``A: (P, N)``, so one matmul ``A @ K`` gives every ``a'Ka`` of the chunk at once.
"""

from __future__ import annotations

import numpy as np
import torch

from quality.drift._checks import check_alpha, embedding_pair, resolve_device
from quality.drift.results import MMDResult

_CHUNK_ELEMENTS = 1 << 24
"""Entries of ``A @ K`` computed at once: 64 MB in float32."""


def median_bandwidth(
    pooled: torch.Tensor, *, generator: torch.Generator, max_points: int = 1024
) -> float:
    """Median Euclidean distance between distinct points of ``pooled: (N, D)``.

    Computed on at most ``max_points`` points drawn with ``generator`` (all when ``N`` is
    smaller). Falls back to the median of the positive distances when most are zero, and to 1
    when all are (the kernel is then constant and MMD^2 is 0).
    """
    n = pooled.shape[0]
    if n > max_points:
        pooled = pooled[torch.randperm(n, generator=generator)[:max_points].to(pooled.device)]
    points = pooled.to(torch.float64)
    distances = torch.pdist(points)
    positive = distances[distances > 0]
    if positive.numel() == 0:
        return 1.0
    median = float(distances.median())
    return median if median > 0 else float(positive.median())


def gaussian_kernel(pooled: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """``exp(-|z_i - z_j|^2 / (2 bandwidth^2))`` for ``pooled: (N, D)``, shape ``(N, N)``.

    One matmul of augmented rows gives the exponent ``z_i.z_j / s^2 - h_i - h_j`` with
    ``h = |z|^2 / (2 s^2)``, then one in-place ``exp``: two passes over one ``(N, N)`` buffer
    of ``pooled``'s dtype and device.
    """
    if not bandwidth > 0:
        raise ValueError(f"expected a positive bandwidth, got {bandwidth!r}")
    scaled = pooled / bandwidth
    half_norms = (scaled * scaled).sum(dim=1, keepdim=True) / 2
    ones = torch.ones_like(half_norms)
    left = torch.cat([scaled, -half_norms, ones], dim=1)
    right = torch.cat([scaled, ones, -half_norms], dim=1)
    kernel = (left @ right.T).clamp_(max=0.0).exp_()
    kernel.fill_diagonal_(1.0)
    return kernel


def permutation_statistics(
    kernel: torch.Tensor, n_reference: int, permutations: torch.Tensor
) -> torch.Tensor:
    """Unbiased MMD^2 for each row of ``permutations: (P, N)`` (pooled indices), ``(P,)``.

    The first ``n_reference`` indices of a row form the reference side, the rest the new
    side. ``kernel: (N, N)`` is a pooled Gaussian kernel matrix (unit diagonal). Rows are
    processed in chunks, each with one matmul; sums are accumulated in float64.
    """
    n_total = kernel.shape[0]
    m, n = n_reference, n_total - n_reference
    if not (2 <= m and 2 <= n) or permutations.ndim != 2 or permutations.shape[1] != n_total:
        raise ValueError(
            f"expected permutations (P, {n_total}) and 2 <= n_reference <= {n_total - 2}, "
            f"got {tuple(permutations.shape)} and {n_reference}"
        )
    row_sums = kernel.sum(dim=1, dtype=torch.float64)
    total = float(row_sums.sum())
    chunk = max(1, _CHUNK_ELEMENTS // n_total)
    out = []
    for start in range(0, permutations.shape[0], chunk):
        rows = permutations[start : start + chunk].to(kernel.device)
        select = torch.zeros(rows.shape[0], n_total, dtype=kernel.dtype, device=kernel.device)
        select.scatter_(1, rows[:, :m], 1.0)
        aka = ((select @ kernel).to(torch.float64) * select).sum(dim=1)
        at = select.to(torch.float64) @ row_sums
        s_xx = aka - m
        s_xy = at - aka
        s_yy = total - 2.0 * at + aka - n
        out.append(s_xx / (m * (m - 1)) + s_yy / (n * (n - 1)) - 2.0 * s_xy / (m * n))
    return torch.cat(out).cpu()


def random_permutations(n_total: int, n_permutations: int, *, seed: int) -> torch.Tensor:
    """``(n_permutations, n_total)`` uniformly random permutations of ``range(n_total)``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n_permutations, n_total, generator=generator).argsort(dim=1)


def mmd_test(
    reference: np.ndarray,
    new: np.ndarray,
    *,
    alpha: float = 0.05,
    n_permutations: int = 1000,
    seed: int = 0,
    bandwidth: float | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> MMDResult:
    """Permutation test of ``reference: (m, D)`` against ``new: (n, D)`` by unbiased MMD^2.

    The bandwidth defaults to the median heuristic on the pooled sample. The p-value is
    ``(k + 1) / (n_permutations + 1)`` with ``k`` the permutations whose MMD^2 is at least
    the observed one; the observed split is computed in the same batch as the permutations.
    Runs on CUDA when present unless ``device`` says otherwise; seeded by ``seed``.
    """
    x, y = embedding_pair(reference, new)
    alpha = check_alpha(alpha)
    if n_permutations < 1:
        raise ValueError(f"expected n_permutations >= 1, got {n_permutations}")
    where = resolve_device(device)
    pooled = torch.from_numpy(np.concatenate([x, y])).to(device=where, dtype=dtype)
    generator = torch.Generator().manual_seed(seed)
    sigma = median_bandwidth(pooled, generator=generator) if bandwidth is None else bandwidth
    kernel = gaussian_kernel(pooled, sigma)
    n_total = pooled.shape[0]
    identity = torch.arange(n_total)[None, :]
    rows = torch.cat([identity, random_permutations(n_total, n_permutations, seed=seed + 1)])
    stats = permutation_statistics(kernel, x.shape[0], rows)
    observed, null = float(stats[0]), stats[1:]
    p_value = (int((null >= observed).sum()) + 1) / (n_permutations + 1)
    return MMDResult(
        test="mmd",
        statistic=observed,
        p_value=p_value,
        threshold=alpha,
        drifted=p_value <= alpha,
        n_reference=x.shape[0],
        n_new=y.shape[0],
        bandwidth=sigma,
        n_permutations=n_permutations,
        device=str(where),
    )

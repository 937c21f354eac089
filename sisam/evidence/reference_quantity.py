"""Plain-Python twin of ``quantity_kernels.place_in_context``, for tests: the contexts
are a dict key -> (N, {bin: declarations}); returns (q, used, n_used, n_full) as lists."""

from __future__ import annotations

import numpy as np


def place_in_context(
    context_keys: np.ndarray,
    bins: np.ndarray,
    valid: np.ndarray,
    contexts: dict[int, tuple[float, dict[int, float]]],
    loo: int,
    s: float,
) -> tuple[list[float], list[int], list[float], list[float]]:
    out: tuple[list, ...] = ([], [], [], [])
    n_levels = context_keys.shape[1]
    for i in range(context_keys.shape[0]):
        q, used, n_used, n_full = 0.5, -1, 0.0, 0.0
        for level in range(n_levels) if valid[i] else ():
            found = contexts.get(int(context_keys[i, level]))
            if found is None:
                continue
            n, histogram = found
            n_w = max(0.0, n - loo)
            if level == n_levels - 1:
                n_full = n_w
            if n_w <= 0.0:
                continue
            b = int(bins[i])
            below = sum(count for other, count in histogram.items() if other < b)
            at = max(0.0, histogram.get(b, 0.0) - loo)
            f = min(1.0, (below + 0.5 * at) / n_w)
            q = f if used < 0 else (n_w * f + s * q) / (n_w + s)
            used, n_used = level, n_w
        for j, x in enumerate((q, used, n_used, n_full)):
            out[j].append(x)
    return out

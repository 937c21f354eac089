"""Plain-Python twin of ``context_kernels.value_in_context``, for tests: same arguments
except that the counts are a dict key -> (N, top1, top2, mode); returns the kernel's
outputs as a tuple of lists, one entry per item."""

from __future__ import annotations

import math

import numpy as np

from sisam.evidence.context_kernels import LO_CLAMP


def _log_odds(k: float, n: float, s: float, lo_prior: float) -> float:
    lp = min(LO_CLAMP, max(-LO_CLAMP, lo_prior))
    t = math.exp(-abs(lp))
    u, v = (1.0, t) if lp >= 0.0 else (t, 1.0)
    return math.log((k * (1.0 + t) + s * u) / ((n - k) * (1.0 + t) + s * v))


def value_in_context(
    keys: np.ndarray,
    value_shape: np.ndarray,
    context_shape: np.ndarray,
    parents: np.ndarray,
    n_parents: np.ndarray,
    table: dict[int, tuple[float, float, float, int]],
    codes: np.ndarray,
    loo: int,
    s: float,
    d: float,
) -> tuple[list[float], list[int], list[float], list[float], list[float], list[bool]]:
    out: tuple[list, ...] = ([], [], [], [], [], [])
    n_shapes = len(value_shape)
    for i in range(keys.shape[0]):
        lo: list[float] = [0.0] * n_shapes
        used, n_used, nv_used, modal = 0, 0.0, 0.0, False
        for c in range(n_shapes):
            context = table.get(int(keys[i, context_shape[c]]))
            value = table.get(int(keys[i, value_shape[c]]))
            n_w = max(0.0, (context[0] if context else 0.0) - loo)
            n_wv = min(n_w, max(0.0, (value[0] if value else 0.0) - loo))
            if c == 0:
                lo[0] = math.log((n_wv + 0.5) / (n_w - n_wv + 0.5))
            else:
                total = sum(lo[int(parents[c, j])] - lo[0] for j in range(int(n_parents[c])))
                lo_prior = lo[0] + min(1.0, d / int(n_parents[c])) * total
                lo[c] = _log_odds(n_wv, n_w, s, lo_prior) if n_w > 0.0 else lo_prior
            if n_w > 0.0:
                _, top1, top2, mode = context
                best_other = top2 if mode == int(codes[i]) else top1
                used, n_used, nv_used = c, n_w, n_wv
                modal = n_wv > 0.0 and n_wv >= best_other
        full = table.get(int(keys[i, context_shape[-1]]))
        for j, x in enumerate((lo[-1], used, n_used, nv_used, max(0.0, full[0] - loo) if full else 0.0, modal)):
            out[j].append(x)
    return out

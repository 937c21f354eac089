"""The HPB posterior recursion of one factor, for every label at once (hpb.md).

For an item and a label e, HPB (hpb.md, "Posterior of a pattern" and "Prior from the
generalisations") gives each pattern W of the item's lattice the posterior

    P_e(W) = (k_W,e + S_e * prior_e(W)) / (n_W + S_e),
    lo(prior_e(W)) = lo(p_e) + D(|g(W)|) * sum_{W' in g(W)} [lo(P_e(W')) - lo(p_e)],
    D(j) = min(1, d_e / j),   p_e = P_e(root) = (k_root,e + 0.5) / (n_root + 1),

with lo(p) = ln(p / (1 - p)). Shapes are numbered so that generalisations come first
(``lattice.py``), so one pass over the shapes in index order evaluates the recursion
bottom-up; the factor's answer for the item is lo(P_e) at the last shape, the full pattern.

How the kernels are organised, and why:

* **Lanes.** The inner loops run over *lanes*, not labels. A lane is a (label, S, d)
  triple: scoring uses one lane per label with that label's coefficients; fitting
  (``fit.py``) puts every candidate (S, d) of every label side by side and evaluates the
  whole grid in the same pass. Either way one hash lookup per (item, shape) serves all
  lanes: the row's sparse error counts are expanded into a small dense buffer and each
  lane reads its label there.
* **Vector arithmetic.** Each seen pattern needs one exponential (prior from its
  log-odds) and one logarithm (log-odds of the posterior) per lane. libm's ``exp`` and
  ``log`` are scalar calls that stop LLVM from vectorising the lane loop, so this module
  carries its own: Cody-Waite reduction with a degree-13 Taylor polynomial for exp, and
  fdlibm's ``e_log.c`` algorithm for log, both within 1 ulp of glibc (tested) and made only
  of +, *, / and bit operations, which LLVM turns into AVX instructions. They also make the
  result independent of the platform's libm, so an audit replays bit for bit elsewhere.
  ``error_model="numpy"`` lets a division by zero produce inf instead of raising, which is
  what allows the division to vectorise; no division here can see a zero denominator
  (denominators are >= S * exp(-700) > 0), and the range checks below catch any lane
  whose fast-path arithmetic could have left the normal range. fastmath stays off.
* **Stable posterior.** With a = |lo(prior)| and t = exp(-a), prior = 1/(1+t) or
  t/(1+t) and 1 - prior the other one, so

      lo(P) = ln[(k (1+t) + S u) / ((n-k) (1+t) + S v)],   (u, v) = (1, t) or (t, 1),

  a ratio of two sums of non-negative terms: no cancellation, exact for k = 0 and k = n,
  never 0/0. Lanes whose terms could leave the normal floating-point range (|lo| > 700,
  S * t < 2**-960, or a ratio beyond 2**+-960: huge counts, tiny S, extreme priors) are
  recomputed in log space with libm (``_exact_log_odds``); every probability therefore
  stays strictly inside (0, 1) as a finite log-odds. A pattern with n_W = 0 (never seen,
  or seen only unlabelled) has P(W) = prior(W) exactly, and the kernel carries the prior's
  log-odds unchanged instead of pushing it through exp and log.
* **Leave-one-out.** Given the item's own labels (int8 row, -1 for unlabelled items) and
  weight w, the kernel subtracts w from n and w*y_e from k_e at every pattern the item
  matches, root included (hpb.md, "Choosing the coefficients"): the item is scored as if
  it had never been counted. Counts are clamped to 0 <= k <= n afterwards, which only
  matters when the caller asks to leave out an item that was never counted.
* **Threads.** Items are independent: chunks of items run in ``prange`` with per-chunk
  buffers, so the result for an item never depends on the thread count or the batch.
  When scoring without leave-one-out, a pattern's posterior depends on the pattern alone,
  so each thread keeps a small direct-mapped cache of posteriors by counts row: coarse
  patterns (root, chapter, country) are computed once per thread instead of once per
  item. A cache hit returns the very bits a recomputation would, so results stay
  identical whatever the cache holds.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba as nb
import numpy as np

from sisam.engine.counts import PatternCounts
from sisam.engine.hashtable import KeyIndex, lookup
from sisam.engine.lattice import Lattice

# Lanes are padded to a multiple of this so that vector loops run without a scalar tail.
_LANE_PAD = 8
_CHUNK = 256  # items per prange task
_CACHE_SLOTS = 2048  # posteriors cached per thread when scoring (power of two)

# exp: x = n ln2 + r (Cody-Waite split of ln2, fdlibm's constants), |r| <= ln2 / 2.
_LN2_HI = 6.93147180369123816490e-01  # trailing 21 bits zero: n * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_EXP_ARG_MAX = 700.0  # exp(-700) ~ 1e-304 is still a normal number
_E2 = 1.0 / 2.0
_E3 = 1.0 / 6.0
_E4 = 1.0 / 24.0
_E5 = 1.0 / 120.0
_E6 = 1.0 / 720.0
_E7 = 1.0 / 5040.0
_E8 = 1.0 / 40320.0
_E9 = 1.0 / 362880.0
_E10 = 1.0 / 3628800.0
_E11 = 1.0 / 39916800.0
_E12 = 1.0 / 479001600.0
_E13 = 1.0 / 6227020800.0
# log: fdlibm e_log.c, log(1+f) = f - hfsq + s (hfsq + R(s^2)), s = f / (2 + f).
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_MANTISSA = np.int64((1 << 52) - 1)
_SQRT2_CARRY = np.int64(0x95F64 << 32)  # mantissa + this carries into bit 52 iff m >= sqrt 2
_BIT52 = np.int64(1 << 52)
_ONE_BITS = np.int64(0x3FF << 52)
# Fast-path bounds: everything between them is a normal double with room to spare.
_TINY = 2.0**-960
_HUGE = 2.0**960


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _exp_neg_lanes(a, out, scale_bits):
    """out[c] = exp(-a[c]) for 0 <= a[c] <= 700; ``scale_bits`` is int64 scratch.

    exp(-a) = 2**n * exp(r): the polynomial in the first loop, 2**n assembled from its
    IEEE bits in ``scale_bits`` and applied in the second loop (through a float view)."""
    scale = scale_bits.view(np.float64)
    for c in range(a.shape[0]):
        x = -a[c]
        nf = math.floor(x * _INV_LN2 + 0.5)
        r = (x - nf * _LN2_HI) - nf * _LN2_LO
        p = _E13
        p = _E12 + r * p
        p = _E11 + r * p
        p = _E10 + r * p
        p = _E9 + r * p
        p = _E8 + r * p
        p = _E7 + r * p
        p = _E6 + r * p
        p = _E5 + r * p
        p = _E4 + r * p
        p = _E3 + r * p
        p = _E2 + r * p
        p = 1.0 + r * p
        out[c] = 1.0 + r * p
        scale_bits[c] = (np.int64(nf) + 1023) << 52
    for c in range(a.shape[0]):
        out[c] *= scale[c]


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _log_lanes(x, out, mant_bits, exponent):
    """out[c] = ln(x[c]) for positive normal x[c] (fdlibm's algorithm, < 1 ulp).

    x = 2**k * m with m in [sqrt(2)/2, sqrt(2)); ``mant_bits`` (int64) and ``exponent``
    (float64) are scratch. The first loop splits the bits, the second evaluates
    ln(m) + k ln 2 through a float view of ``mant_bits``."""
    x_bits = x.view(np.int64)
    m = mant_bits.view(np.float64)
    for c in range(x.shape[0]):
        b = x_bits[c]
        mant = b & _MANTISSA
        carry = (mant + _SQRT2_CARRY) & _BIT52
        exponent[c] = np.float64((b >> 52) - 1023 + (carry >> 52))
        mant_bits[c] = mant | (carry ^ _ONE_BITS)
    for c in range(x.shape[0]):
        f = m[c] - 1.0
        k = exponent[c]
        s = f / (2.0 + f)
        z = s * s
        w = z * z
        t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
        t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
        r = t2 + t1
        hfsq = 0.5 * f * f
        out[c] = k * _LN2_HI - ((hfsq - (s * (hfsq + r) + k * _LN2_LO)) - f)


@nb.njit(cache=True, nogil=True)
def _logaddexp(x, y):
    """ln(e**x + e**y) without overflow; either argument may be -inf, not both."""
    big = max(x, y)
    return big + math.log1p(math.exp(min(x, y) - big))


@nb.njit(cache=True, nogil=True)
def _exact_log_odds(lo_prior, k, n, s):
    """lo((k + S prior) / (n + S)) in log space: the fallback of ``_posterior_lanes`` for
    counts or priors beyond the fast path's range. Same formula, every term as a log."""
    a = abs(lo_prior)
    ln_s = math.log(s)
    ln_one_t = math.log1p(math.exp(-a))
    ln_k = math.log(k) + ln_one_t if k > 0.0 else -math.inf
    ln_nk = math.log(n - k) + ln_one_t if n - k > 0.0 else -math.inf
    if lo_prior >= 0.0:
        return _logaddexp(ln_k, ln_s) - _logaddexp(ln_nk, ln_s - a)
    return _logaddexp(ln_k, ln_s - a) - _logaddexp(ln_nk, ln_s)


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _root_lanes(k, n, out, work):
    """lo(p_e) = ln((k + 1/2) / (n - k + 1/2)) for every lane (hpb.md: the root's prior
    is uninformative, Beta(1/2, 1/2))."""
    ratio = work[0]
    for c in range(k.shape[0]):
        ratio[c] = (k[c] + 0.5) / ((n - k[c]) + 0.5)
    _log_lanes(ratio, out, work[1].view(np.int64), work[2])
    for c in range(k.shape[0]):
        if not (_TINY <= ratio[c] <= _HUGE):
            out[c] = math.log(k[c] + 0.5) - math.log((n - k[c]) + 0.5)


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _posterior_lanes(lo_prior, k, n, s, out, work):
    """lo(P(W)) from lo(prior(W)), k_W per lane, n_W > 0 and S per lane (see the module
    docstring, "Stable posterior")."""
    n_lanes = k.shape[0]
    a, t, s_t, ratio = work[0], work[1], work[2], work[3]
    for c in range(n_lanes):
        a[c] = min(abs(lo_prior[c]), _EXP_ARG_MAX)
    _exp_neg_lanes(a, t, work[4].view(np.int64))
    for c in range(n_lanes):
        one_t = 1.0 + t[c]
        st = s[c] * t[c]
        s_t[c] = st
        if lo_prior[c] >= 0.0:
            ratio[c] = (k[c] * one_t + s[c]) / ((n - k[c]) * one_t + st)
        else:
            ratio[c] = (k[c] * one_t + st) / ((n - k[c]) * one_t + s[c])
    _log_lanes(ratio, out, work[4].view(np.int64), work[5])
    for c in range(n_lanes):
        if not (
            abs(lo_prior[c]) < _EXP_ARG_MAX and s_t[c] >= _TINY and _TINY <= ratio[c] <= _HUGE
        ):
            out[c] = _exact_log_odds(lo_prior[c], k[c], n, s[c])


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _item_recursion(
    i, keys, parents, n_parents, slot_keys, slot_rows, count_n, err_ptr, err_label, err_k,
    lane_label, lane_s, dtab, loo, loo_weight, use_loo, cache_tags, cache_vals,
    rows, kdense, y, n_shape, k_shape, lo_prior, lo_post, work,
):  # fmt: skip
    """Fill ``lo_post[s, c]`` (and, where computed, ``lo_prior``, ``n_shape``, ``k_shape``)
    for item ``i``, every shape s and lane c. ``cache_tags`` of size 0 disables the cache;
    shapes answered from the cache leave ``lo_prior``, ``n_shape`` and ``k_shape`` stale."""
    n_shapes = keys.shape[1]
    n_lanes = lane_label.shape[0]
    n_labels = kdense.shape[0]
    # All lookups first: they are independent, so their cache misses overlap.
    for s in range(n_shapes):
        rows[s] = lookup(slot_keys, slot_rows, keys[i, s])
    labelled = use_loo and loo[i, 0] >= 0
    w = 0.0
    if labelled:
        w = loo_weight[i]
        for c in range(n_lanes):
            y[c] = w * loo[i, lane_label[c]]
    use_cache = cache_tags.shape[0] > 0 and not labelled
    cache_mask = cache_tags.shape[0] - 1
    root = lo_post[0]
    for s in range(n_shapes):
        row = rows[s]
        post = lo_post[s]
        if use_cache and row >= 0:
            slot = row & cache_mask
            if cache_tags[slot] == row:
                cached = cache_vals[slot]
                for c in range(n_lanes):
                    post[c] = cached[c]
                continue
        k = k_shape[s]
        n = 0.0
        if row >= 0:
            n = count_n[row]
            for e in range(n_labels):
                kdense[e] = 0.0
            for j in range(err_ptr[row], err_ptr[row + 1]):
                if err_label[j] < n_labels:
                    kdense[err_label[j]] = err_k[j]
            for c in range(n_lanes):
                k[c] = kdense[lane_label[c]]
        else:
            for c in range(n_lanes):
                k[c] = 0.0
        if labelled:
            n -= w
            for c in range(n_lanes):
                k[c] -= y[c]
        n = max(n, 0.0)
        for c in range(n_lanes):
            k[c] = min(max(k[c], 0.0), n)
        n_shape[s] = n
        prior = lo_prior[s]
        if s == 0:
            _root_lanes(k, n, post, work)
            for c in range(n_lanes):
                prior[c] = post[c]
        else:
            n_par = n_parents[s]
            for c in range(n_lanes):
                prior[c] = 0.0
            for j in range(n_par):
                parent = lo_post[parents[s, j]]
                for c in range(n_lanes):
                    prior[c] += parent[c] - root[c]
            d_row = dtab[n_par]
            for c in range(n_lanes):
                prior[c] = root[c] + d_row[c] * prior[c]
            if n > 0.0:
                _posterior_lanes(prior, k, n, lane_s, post, work)
            else:
                for c in range(n_lanes):
                    post[c] = prior[c]
                continue  # as cheap as a cache hit: not worth a cache slot
        if use_cache and row >= 0:
            slot = row & cache_mask
            cache_tags[slot] = row
            cached = cache_vals[slot]
            for c in range(n_lanes):
                cached[c] = post[c]


@nb.njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _score_kernel(
    keys, parents, n_parents, slot_keys, slot_rows, count_n, err_ptr, err_label, err_k,
    n_labels, lane_label, lane_s, dtab, loo, loo_weight, use_loo, n_threads, cache_slots,
    out_full, out_root,
):  # fmt: skip
    """lo(P) at the full pattern and at the root for every item and the first
    ``out_full.shape[1]`` lanes. ``n_threads`` must be numba's current thread count (one
    cache per thread; ``get_num_threads`` inside a kernel would defeat on-disk caching)."""
    n_items, n_shapes = keys.shape
    n_lanes = lane_label.shape[0]
    n_out = out_full.shape[1]
    cache_tags = np.full((n_threads, cache_slots), -1, dtype=np.int64)
    cache_vals = np.empty((n_threads, cache_slots, n_lanes))
    n_chunks = (n_items + _CHUNK - 1) // _CHUNK
    for chunk in nb.prange(n_chunks):
        thread = nb.get_thread_id()
        rows = np.empty(n_shapes, dtype=np.int64)
        kdense = np.empty(n_labels)
        y = np.empty(n_lanes)
        n_shape = np.empty(n_shapes)
        k_shape = np.empty((n_shapes, n_lanes))
        lo_prior = np.empty((n_shapes, n_lanes))
        lo_post = np.empty((n_shapes, n_lanes))
        work = np.empty((6, n_lanes))
        for i in range(chunk * _CHUNK, min(n_items, (chunk + 1) * _CHUNK)):
            _item_recursion(
                i, keys, parents, n_parents, slot_keys, slot_rows, count_n, err_ptr,
                err_label, err_k, lane_label, lane_s, dtab, loo, loo_weight, use_loo,
                cache_tags[thread], cache_vals[thread],
                rows, kdense, y, n_shape, k_shape, lo_prior, lo_post, work,
            )  # fmt: skip
            for c in range(n_out):
                out_full[i, c] = lo_post[n_shapes - 1, c]
                out_root[i, c] = lo_post[0, c]


@nb.njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _trace_kernel(
    keys, parents, n_parents, slot_keys, slot_rows, count_n, err_ptr, err_label, err_k,
    n_labels, lane_label, lane_s, dtab, loo, loo_weight, use_loo,
    out_rows, out_n, out_k, out_prior, out_post,
):  # fmt: skip
    """Every intermediate of the recursion, for explanations and audits (no cache)."""
    n_items, n_shapes = keys.shape
    n_lanes = lane_label.shape[0]
    n_out = out_post.shape[2]
    no_tags = np.empty(0, dtype=np.int64)
    no_vals = np.empty((0, n_lanes))
    n_chunks = (n_items + _CHUNK - 1) // _CHUNK
    for chunk in nb.prange(n_chunks):
        rows = np.empty(n_shapes, dtype=np.int64)
        kdense = np.empty(n_labels)
        y = np.empty(n_lanes)
        n_shape = np.empty(n_shapes)
        k_shape = np.empty((n_shapes, n_lanes))
        lo_prior = np.empty((n_shapes, n_lanes))
        lo_post = np.empty((n_shapes, n_lanes))
        work = np.empty((6, n_lanes))
        for i in range(chunk * _CHUNK, min(n_items, (chunk + 1) * _CHUNK)):
            _item_recursion(
                i, keys, parents, n_parents, slot_keys, slot_rows, count_n, err_ptr,
                err_label, err_k, lane_label, lane_s, dtab, loo, loo_weight, use_loo,
                no_tags, no_vals,
                rows, kdense, y, n_shape, k_shape, lo_prior, lo_post, work,
            )  # fmt: skip
            for s in range(n_shapes):
                out_rows[i, s] = rows[s]
                out_n[i, s] = n_shape[s]
                for c in range(n_out):
                    out_k[i, s, c] = k_shape[s, c]
                    out_prior[i, s, c] = lo_prior[s, c]
                    out_post[i, s, c] = lo_post[s, c]


@nb.njit(cache=True, nogil=True)
def _log_sigmoid(x):
    """ln(1 / (1 + e**-x)) without overflow."""
    return min(x, 0.0) - math.log1p(math.exp(-abs(x)))


@nb.njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _loglik_kernel(
    keys, parents, n_parents, slot_keys, slot_rows, count_n, err_ptr, err_label, err_k,
    n_labels, lane_label, lane_s, dtab, labels, weight, out_part,
):  # fmt: skip
    """Leave-one-out log-likelihood of the labelled items, per lane, summed per chunk
    into ``out_part[chunk, lane]`` (the caller sums chunks in order: deterministic)."""
    n_items, n_shapes = keys.shape
    n_lanes = lane_label.shape[0]
    n_out = out_part.shape[1]
    no_tags = np.empty(0, dtype=np.int64)
    no_vals = np.empty((0, n_lanes))
    n_chunks = out_part.shape[0]
    for chunk in nb.prange(n_chunks):
        rows = np.empty(n_shapes, dtype=np.int64)
        kdense = np.empty(n_labels)
        y = np.empty(n_lanes)
        n_shape = np.empty(n_shapes)
        k_shape = np.empty((n_shapes, n_lanes))
        lo_prior = np.empty((n_shapes, n_lanes))
        lo_post = np.empty((n_shapes, n_lanes))
        work = np.empty((6, n_lanes))
        for i in range(chunk * _CHUNK, min(n_items, (chunk + 1) * _CHUNK)):
            if labels[i, 0] < 0:
                continue
            _item_recursion(
                i, keys, parents, n_parents, slot_keys, slot_rows, count_n, err_ptr,
                err_label, err_k, lane_label, lane_s, dtab, labels, weight, True,
                no_tags, no_vals,
                rows, kdense, y, n_shape, k_shape, lo_prior, lo_post, work,
            )  # fmt: skip
            for c in range(n_out):
                lo = lo_post[n_shapes - 1, c]
                if labels[i, lane_label[c]] > 0:
                    out_part[chunk, c] += weight[i] * _log_sigmoid(lo)
                else:
                    out_part[chunk, c] += weight[i] * _log_sigmoid(-lo)


# --------------------------------------------------------------------------- wrappers


class FactorLogOdds(NamedTuple):
    """A factor's answer for a batch of items: lo(P_e) at the full pattern, and lo(p_e)
    at the root (the baseline the network combination calibrates towards; identical for
    every item unless leave-one-out subtracted the item's own label)."""

    full: np.ndarray  # float64[n_items, E]
    root: np.ndarray  # float64[n_items, E]


class FactorTrace(NamedTuple):
    """Every intermediate of the recursion for a (small) batch of items.

    ``rows[i, s]`` is the item's pattern at shape s as a row of the ``PatternCounts``
    (-1: never counted); ``n[i, s]`` and ``k[i, s, e]`` the counts used (after
    leave-one-out, if any); ``lo_prior`` and ``lo_post`` the log-odds of prior_e(W) and
    P_e(W). At the root both equal lo(p_e), so the root's delta is 0.
    """

    rows: np.ndarray  # int64[n_items, S]
    n: np.ndarray  # float64[n_items, S]
    k: np.ndarray  # float64[n_items, S, E]
    lo_prior: np.ndarray  # float64[n_items, S, E]
    lo_post: np.ndarray  # float64[n_items, S, E]


class _Lanes(NamedTuple):
    label: np.ndarray  # int64[C padded]
    s: np.ndarray  # float64[C padded]
    dtab: np.ndarray  # float64[L + 1, C padded], dtab[j, c] = min(1, d_c / j)
    n_real: int


def _check_coefficients(s_coef: np.ndarray, d_coef: np.ndarray, n_lanes: int) -> None:
    for name, values in (("S", s_coef), ("d", d_coef)):
        if values.shape != (n_lanes,) or not (np.isfinite(values).all() and (values > 0).all()):
            raise ValueError(
                f"{name} coefficients must be {n_lanes} finite positive floats; "
                f"got shape {values.shape}, min {values.min(initial=np.inf)}"
            )


def _lanes(label: np.ndarray, s_coef: np.ndarray, d_coef: np.ndarray, n_attr: int) -> _Lanes:
    """Pad lanes to a multiple of ``_LANE_PAD`` with harmless copies of lane 0."""
    label = np.asarray(label, dtype=np.int64)
    s_coef = np.asarray(s_coef, dtype=np.float64)
    d_coef = np.asarray(d_coef, dtype=np.float64)
    _check_coefficients(s_coef, d_coef, label.shape[0])
    n_real = label.shape[0]
    padded = -(-n_real // _LANE_PAD) * _LANE_PAD
    pad = padded - n_real

    def padded_copy(values: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.concatenate([values, np.repeat(values[:1], pad)]))

    d_pad = padded_copy(d_coef)
    dtab = np.zeros((n_attr + 1, padded))
    for j in range(1, n_attr + 1):
        dtab[j] = np.minimum(1.0, d_pad / j)
    return _Lanes(padded_copy(label), padded_copy(s_coef), dtab, n_real)


def _check_keys(keys: np.ndarray, lattice: Lattice) -> np.ndarray:
    keys = np.ascontiguousarray(keys, dtype=np.uint64)
    if keys.ndim != 2 or keys.shape[1] != lattice.n_shapes:
        raise ValueError(
            f"keys must be uint64[n_items, {lattice.n_shapes}] (one column per shape of "
            f"the lattice); got shape {keys.shape}"
        )
    return keys


def _check_loo(
    loo: np.ndarray | None, weight: np.ndarray | None, n_items: int, n_labels: int
) -> tuple[np.ndarray, np.ndarray, bool]:
    if loo is None:
        return np.full((1, n_labels), -1, dtype=np.int8), np.ones(1), False
    loo = np.ascontiguousarray(loo, dtype=np.int8)
    if loo.shape != (n_items, n_labels):
        raise ValueError(
            f"leave-one-out labels must be int8[{n_items}, {n_labels}]; got shape {loo.shape}"
        )
    unlabelled = loo[:, 0] < 0
    valid = np.where(unlabelled[:, None], loo == -1, (loo == 0) | (loo == 1))
    if not valid.all():
        bad = int(np.flatnonzero(~valid.all(axis=1))[0])
        raise ValueError(
            "leave-one-out labels must be a row of -1 (unlabelled item) or of 0/1; "
            f"row {bad} is {loo[bad].tolist()}"
        )
    if weight is None:
        weight = np.ones(n_items)
    weight = np.ascontiguousarray(weight, dtype=np.float64)
    if weight.shape != (n_items,) or not (np.isfinite(weight) & (weight >= 0)).all():
        raise ValueError(f"weights must be float64[{n_items}], finite and >= 0")
    return loo, weight, True


def _counts_args(counts: PatternCounts, index: KeyIndex) -> tuple[np.ndarray, ...]:
    return (
        index.slot_keys,
        index.slot_rows,
        np.ascontiguousarray(counts.n, dtype=np.float64),
        np.ascontiguousarray(counts.err_ptr, dtype=np.int64),
        np.ascontiguousarray(counts.err_label, dtype=np.int16),
        np.ascontiguousarray(counts.err_k, dtype=np.float64),
    )


def factor_log_odds(
    keys: np.ndarray,
    lattice: Lattice,
    counts: PatternCounts,
    index: KeyIndex,
    s_coef: np.ndarray,
    d_coef: np.ndarray,
    loo: np.ndarray | None = None,
    loo_weight: np.ndarray | None = None,
) -> FactorLogOdds:
    """Score a batch of items against one factor, every label at once.

    ``keys`` uint64[n, S] are the items' pattern keys (``keys.pattern_keys``), ``counts``
    the factor's ``PatternCounts`` and ``index`` its ``build_index(counts.keys)``;
    ``s_coef`` and ``d_coef`` float64[E] the label's S_e and d_e. With ``loo`` (int8[n, E],
    a row of -1 for an unlabelled item) each labelled item is scored without its own
    counts (weight ``loo_weight[i]``, default 1: the weight it was counted with).
    """
    keys = _check_keys(keys, lattice)
    s_coef = np.asarray(s_coef, dtype=np.float64)
    n_labels = s_coef.shape[0]
    lanes = _lanes(np.arange(n_labels), s_coef, d_coef, lattice.parents.shape[1])
    loo_arr, weight, use_loo = _check_loo(loo, loo_weight, keys.shape[0], n_labels)
    out_full = np.empty((keys.shape[0], n_labels))
    out_root = np.empty((keys.shape[0], n_labels))
    _score_kernel(
        keys, lattice.parents, lattice.n_parents, *_counts_args(counts, index), n_labels,
        lanes.label, lanes.s, lanes.dtab, loo_arr, weight, use_loo,
        nb.get_num_threads(), _CACHE_SLOTS, out_full, out_root,
    )  # fmt: skip
    return FactorLogOdds(out_full, out_root)


def trace_factor(
    keys: np.ndarray,
    lattice: Lattice,
    counts: PatternCounts,
    index: KeyIndex,
    s_coef: np.ndarray,
    d_coef: np.ndarray,
    loo: np.ndarray | None = None,
    loo_weight: np.ndarray | None = None,
) -> FactorTrace:
    """The recursion's intermediates for explanations and audits (hpb.md, "Why
    explanations come for free"); arguments as ``factor_log_odds``. Memory is
    O(n * S * E): meant for the items being explained, not for whole batches. The
    arithmetic is the scoring kernel's, so ``lo_post[:, -1]`` equals
    ``factor_log_odds(...).full`` bit for bit."""
    keys = _check_keys(keys, lattice)
    s_coef = np.asarray(s_coef, dtype=np.float64)
    n_labels = s_coef.shape[0]
    lanes = _lanes(np.arange(n_labels), s_coef, d_coef, lattice.parents.shape[1])
    loo_arr, weight, use_loo = _check_loo(loo, loo_weight, keys.shape[0], n_labels)
    n_items, n_shapes = keys.shape
    out = FactorTrace(
        np.empty((n_items, n_shapes), dtype=np.int64),
        np.empty((n_items, n_shapes)),
        np.empty((n_items, n_shapes, n_labels)),
        np.empty((n_items, n_shapes, n_labels)),
        np.empty((n_items, n_shapes, n_labels)),
    )
    _trace_kernel(
        keys, lattice.parents, lattice.n_parents, *_counts_args(counts, index), n_labels,
        lanes.label, lanes.s, lanes.dtab, loo_arr, weight, use_loo, *out,
    )  # fmt: skip
    return out


def path_weights(lattice: Lattice, d_coef: np.ndarray) -> np.ndarray:
    """float64[S, E]: w_W of hpb.md's weight-of-evidence identity, per shape and label.

    w_W sums, over every path from the full pattern down to W through generalisations,
    the product of the D factors met on the way: stepping from V to one of its
    generalisations multiplies by D_e(|g(V)|) = min(1, d_e / |g(V)|); w = 1 at the full
    pattern. Children have larger shape indices than their generalisations, so one pass
    from the last shape down pushes each shape's finished weight to its generalisations.
    The weights depend on the shape only, not on the item: then, for every item,

        lo(P_e(item)) - lo(p_e) = sum_W w_W,e * (lo(P_e(W)) - lo(prior_e(W))).
    """
    d_coef = np.asarray(d_coef, dtype=np.float64)
    n_shapes = lattice.n_shapes
    weights = np.zeros((n_shapes, d_coef.shape[0]))
    weights[n_shapes - 1] = 1.0
    for s in range(n_shapes - 1, 0, -1):
        n_par = int(lattice.n_parents[s])
        step = weights[s] * np.minimum(1.0, d_coef / n_par)
        for j in range(n_par):
            weights[lattice.parents[s, j]] += step
    return weights


def contributions(trace: FactorTrace, weights: np.ndarray) -> np.ndarray:
    """float64[n_items, S, E]: w_W * delta_W, each pattern's share of
    lo(P_e(item)) - lo(p_e) (``weights`` from ``path_weights``). Their sum over shapes is
    that difference up to rounding; the largest terms are what an officer reads."""
    return weights[None, :, :] * (trace.lo_post - trace.lo_prior)


def loo_log_likelihood(
    keys: np.ndarray,
    lattice: Lattice,
    counts: PatternCounts,
    index: KeyIndex,
    labels: np.ndarray,
    lane_label: np.ndarray,
    lane_s: np.ndarray,
    lane_d: np.ndarray,
    weight: np.ndarray | None = None,
) -> np.ndarray:
    """float64[C]: sum over the labelled items of w_i * ln P(y_i,e | counts without item i)
    for every lane c = (label ``lane_label[c]``, S ``lane_s[c]``, d ``lane_d[c]``), the
    posterior being the factor's full-pattern P_e (hpb.md, "Choosing the coefficients").

    ``labels`` int8[n, E] are the items' labels (rows of -1 are skipped); the items must
    have been counted in ``counts`` with weights ``weight`` (default 1). All lanes share
    each item's lookups, so a whole grid of coefficients costs one pass over the items.
    """
    keys = _check_keys(keys, lattice)
    labels = np.ascontiguousarray(labels, dtype=np.int8)
    n_labels = labels.shape[1] if labels.ndim == 2 else 0
    lane_label = np.asarray(lane_label, dtype=np.int64)
    if lane_label.size and (lane_label.min() < 0 or lane_label.max() >= n_labels):
        raise ValueError(f"lane labels must index the {n_labels} label columns")
    loo_arr, weight_arr, _ = _check_loo(labels, weight, keys.shape[0], n_labels)
    lanes = _lanes(lane_label, lane_s, lane_d, lattice.parents.shape[1])
    n_chunks = (keys.shape[0] + _CHUNK - 1) // _CHUNK
    out_part = np.zeros((n_chunks, lanes.n_real))
    _loglik_kernel(
        keys, lattice.parents, lattice.n_parents, *_counts_args(counts, index), n_labels,
        lanes.label, lanes.s, lanes.dtab, loo_arr, weight_arr, out_part,
    )  # fmt: skip
    return out_part.sum(axis=0)

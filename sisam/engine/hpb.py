"""The HPB posterior recursion of one factor, for every label at once (hpb.md).

For an item and a label e, HPB (hpb.md, "Posterior of a pattern" and "Prior from the
generalisations") gives each pattern W of the item's lattice the posterior

    P_e(W) = (k_W,e + S_e * prior_e(W)) / (n_W + S_e),
    lo(prior_e(W)) = lo(p_e) + D(|g(W)|) * sum_{W' in g(W)} [lo(P_e(W')) - lo(p_e)],
    D(j) = min(1, d_e / j),   p_e = P_e(root) = (k_root,e + 0.5) / (n_root + 1),

with lo(p) = ln(p / (1 - p)). Shapes are numbered so that generalisations come first
(``lattice.py``), so one pass over the shapes in index order evaluates the recursion
bottom-up; the factor's answer for the item is lo(P_e) at the last shape, the full pattern.

The kernels compute that answer through hpb.md's weight-of-evidence identity,

    lo(P_e(full)) = lo(p_e) + sum_W w_W,e * [lo(P_e(W)) - lo(prior_e(W))],

with w the path weights (``path_weights``). A pattern without labelled items (n_W = 0,
most patterns of a new item) has P(W) = prior(W), so its term is 0, and since counts are
monotone no pattern with labelled items has it as a generalisation: the recursion only
needs the patterns with labelled items, a closed sub-lattice, and a new item's unseen
combinations cost nothing. (``trace_factor`` also runs the rest, for explanations.)

The counts must be those of items: closed under generalisation (every generalisation of
a counted pattern is counted) and monotone (n_W never exceeds a generalisation's n), as
counting, merging, decay and pruning by N all leave them. The kernels rely on it to
settle a pattern whose generalisation is unseen, or has no labelled item, without
looking it up.

How the kernels are organised, and why:

* **Lanes.** The inner loops run over *lanes*, not labels. A lane is a (label, S, d)
  triple: scoring uses one lane per label with that label's coefficients; fitting
  (``fit.py``) puts every candidate (S, d) of every label side by side and evaluates the
  whole grid in the same pass. Either way one hash lookup per (item, shape) serves all
  lanes: the row's sparse error counts are spread to the lanes of their label.
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
* **Memory.** With a million items of history the hash table and the counts are
  hundreds of megabytes read at random: a lookup whose result decides a branch makes the
  processor wait for memory (~180 ns here) before it can issue the next one. Items are
  therefore processed in blocks of ``_BLOCK``, one coarseness level at a time: the
  (item, shape) pairs that still need something are compacted into a list, then what
  the list needs is loaded in a loop without branches (remembered tags, home slots,
  counts), so that misses overlap by the dozen (``_find_counts``); the recursion then
  runs on data already in cache. On the benchmark's history (one core) this took the
  lookups of an item's six factors from ~10 us to ~5 us.
* **Threads and cache.** Items are independent: tasks of ``_CHUNK`` items run in
  ``prange``, each with its own buffers, so an item's result never depends on the thread
  count or the batch. When scoring without leave-one-out, a pattern's posterior depends
  on the pattern alone, so each thread keeps a direct-mapped cache of posteriors keyed by
  pattern key: coarse patterns (the root, a chapter, a country) are computed and even
  looked up once per thread instead of once per item. A hit returns the very bits a
  recomputation would. (Two patterns sharing a 64-bit key already share their counts,
  see ``keys.py``; through the cache they may also share a posterior. At 1e-5 odds per
  twenty million patterns this is the one, theoretical, way a result could depend on
  the order of items.)
* **Reference counting.** Helpers that only read and write preallocated arrays are
  compiled with ``_nrt=False`` (numba's switch for code without reference counting) or
  inlined: otherwise every call and every array view in the inner loops pays atomic
  increments and decrements, which cost more than the arithmetic.
"""

from __future__ import annotations

import math
import threading
from typing import NamedTuple

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from sisam.engine.counts import PatternCounts
from sisam.engine.hashtable import EMPTY_ROW, KeyIndex, lookup
from sisam.engine.lattice import Lattice

# Lanes are padded to a multiple of this so that vector loops run without a scalar tail.
_LANE_PAD = 8
_CHUNK = 256  # items per prange task
_BLOCK = 32  # items whose memory accesses are issued together
_IN_CACHE = -2  # a row not looked up because the pattern's posterior was cached
_PENDING = -3  # a pattern still to be looked up
_IDLE = -4  # a pattern without labelled items: n_W = 0, its row is not needed
_IDLE_SLOTS = 1 << 14  # keys of idle patterns remembered per thread
_CACHE_SLOTS = 1 << 16  # posteriors cached per thread (16 MB at 32 lanes)
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


class _Tables(NamedTuple):
    """One factor's lattice, key index and counts, as the kernels read them."""

    parents: np.ndarray  # int32[S, L]
    n_parents: np.ndarray  # int32[S]
    level_end: np.ndarray  # int64[S]: end of the run of shapes as coarse as shape s
    slot_keys: np.ndarray  # uint64[capacity]
    slot_rows: np.ndarray  # int64[capacity]
    count_n: np.ndarray  # float64[P]
    err_ptr: np.ndarray  # int64[P + 1]
    err_label: np.ndarray  # int16[nnz]
    err_k: np.ndarray  # float64[nnz]


class _LaneSpec(NamedTuple):
    """What each lane computes: lane c evaluates label ``label[c]`` with S = ``s[c]`` and
    D(j) = ``dtab[j, c]``; the lanes of label e are
    ``label_lanes[label_ptr[e]:label_ptr[e + 1]]`` (to spread a row's sparse counts)."""

    label: np.ndarray  # int64[C]
    s: np.ndarray  # float64[C]
    dtab: np.ndarray  # float64[L + 1, C]
    label_ptr: np.ndarray  # int64[E + 1]
    label_lanes: np.ndarray  # int64[C]
    direct: bool  # lane e evaluates label e for e < E (the padding lanes copy lane 0)
    weights: np.ndarray  # float64[S, C]: path weights w_W per shape and lane


class _Scratch(NamedTuple):
    """Buffers of one prange task, allocated once per task (``_scratch``): per (item,
    shape) of the block being looked up ([B, S] or flat lists of pairs), then per shape
    and lane of the item being scored. Bit views share memory with their float or int
    twin."""

    rows: np.ndarray  # int64[B, S]: counts row, or -1 unseen, _IN_CACHE, _IDLE
    todo_b: np.ndarray  # int64[B * S]: (item, shape) pairs listed by ``_find_counts``
    todo_s: np.ndarray  # int64[B * S]
    cache_tag: np.ndarray  # uint64[B * S]: key in a listed pattern's posterior cache slot
    idle_tag: np.ndarray  # uint64[B * S]: key in a listed pattern's idle-key slot
    cand_row: np.ndarray  # int64[B * S]: row in a listed pattern's home slot
    cand_key: np.ndarray  # uint64[B * S]: key in a listed pattern's home slot
    n: np.ndarray  # float64[B, S]: n_W (after leave-one-out, once gathered)
    ptr_lo: np.ndarray  # int64[B, S]: the row's errors are err_*[ptr_lo:ptr_hi]
    ptr_hi: np.ndarray  # int64[B, S]
    cached: np.ndarray  # bool[S]: posterior taken from the cache
    k: np.ndarray  # float64[S, C]: k_W used, per lane
    lo_prior: np.ndarray  # float64[S, C]
    lo_post: np.ndarray  # float64[S, C]
    y: np.ndarray  # float64[C]: w * y_e of the item left out, per lane
    evidence: np.ndarray  # float64[C]: sum of w_W * delta_W so far
    a: np.ndarray  # float64[C]: |lo(prior)|, clamped
    t: np.ndarray  # float64[C]: exp(-a)
    s_t: np.ndarray  # float64[C]: S * t
    ratio: np.ndarray  # float64[C]: P / (1 - P) before the logarithm
    ratio_bits: np.ndarray  # int64 view of ratio
    scale_bits: np.ndarray  # int64[C]: 2**n for exp, assembled bitwise
    scale: np.ndarray  # float64 view of scale_bits
    mant_bits: np.ndarray  # int64[C]: mantissa for log, assembled bitwise
    mant: np.ndarray  # float64 view of mant_bits
    exponent: np.ndarray  # float64[C]


@nb.njit(cache=True, nogil=True)
def _scratch(n_shapes, n_lanes):
    ratio = np.empty(n_lanes)
    scale_bits = np.empty(n_lanes, dtype=np.int64)
    mant_bits = np.empty(n_lanes, dtype=np.int64)
    return _Scratch(
        np.empty((_BLOCK, n_shapes), dtype=np.int64),
        np.zeros(_BLOCK * n_shapes, dtype=np.int64),
        np.zeros(_BLOCK * n_shapes, dtype=np.int64),
        np.zeros(_BLOCK * n_shapes, dtype=np.uint64),
        np.zeros(_BLOCK * n_shapes, dtype=np.uint64),
        np.zeros(_BLOCK * n_shapes, dtype=np.int64),
        np.zeros(_BLOCK * n_shapes, dtype=np.uint64),
        np.zeros((_BLOCK, n_shapes)),
        np.zeros((_BLOCK, n_shapes), dtype=np.int64),
        np.zeros((_BLOCK, n_shapes), dtype=np.int64),
        np.zeros(n_shapes, dtype=np.bool_),
        np.zeros((n_shapes, n_lanes)),
        np.zeros((n_shapes, n_lanes)),
        np.zeros((n_shapes, n_lanes)),
        np.zeros(n_lanes),
        np.zeros(n_lanes),
        np.empty(n_lanes),
        np.empty(n_lanes),
        np.empty(n_lanes),
        ratio,
        ratio.view(np.int64),
        scale_bits,
        scale_bits.view(np.float64),
        mant_bits,
        mant_bits.view(np.float64),
        np.empty(n_lanes),
    )


@intrinsic
def _prefetch(typingctx, array, index):
    """Ask the processor to start loading ``array[index]``'s cache line (llvm.prefetch).
    A hint: it never faults, never changes a result, and costs one instruction."""
    if not isinstance(array, types.Array) or not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        ary = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(
            context, builder, array_type, ary, [args[1]], wraparound=False
        )
        i32 = ir.IntType(32)
        byte_pointer = ir.IntType(8).as_pointer()
        function = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]),
            "llvm.prefetch.p0",
        )
        # read, keep in all cache levels, data cache
        builder.call(function, [builder.bitcast(pointer, byte_pointer), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen


@nb.njit(inline="always", nogil=True, error_model="numpy", _nrt=False)
def _exp_neg_lanes(a, out, scale_bits, scale):
    """out[c] = exp(-a[c]) for 0 <= a[c] <= 700.

    exp(-a) = 2**n * exp(r): the polynomial in the first loop, 2**n assembled from its
    IEEE bits in ``scale_bits`` and applied in the second loop through ``scale``, a float
    view of the same memory."""
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


@nb.njit(inline="always", nogil=True, error_model="numpy", _nrt=False)
def _log_lanes(x_bits, out, row, mant_bits, mant, exponent):
    """out[row, c] = ln(x[c]) for positive normal x (given as its bits ``x_bits``), by
    fdlibm's algorithm (< 1 ulp).

    x = 2**k * m with m in [sqrt(2)/2, sqrt(2)): the first loop splits the bits, the
    second evaluates ln(m) + k ln 2, reading m through ``mant``, a float view of
    ``mant_bits``."""
    for c in range(x_bits.shape[0]):
        b = x_bits[c]
        mantissa = b & _MANTISSA
        carry = (mantissa + _SQRT2_CARRY) & _BIT52
        exponent[c] = np.float64((b >> 52) - 1023 + (carry >> 52))
        mant_bits[c] = mantissa | (carry ^ _ONE_BITS)
    for c in range(x_bits.shape[0]):
        f = mant[c] - 1.0
        k = exponent[c]
        s = f / (2.0 + f)
        z = s * s
        w = z * z
        t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
        t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
        r = t2 + t1
        hfsq = 0.5 * f * f
        out[row, c] = k * _LN2_HI - ((hfsq - (s * (hfsq + r) + k * _LN2_LO)) - f)


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


@nb.njit(inline="always", nogil=True, error_model="numpy", _nrt=False)
def _root_lanes(sc, n):
    """lo(p_e) = ln((k + 1/2) / (n - k + 1/2)) at shape 0 for every lane (hpb.md: the
    root's prior is uninformative, Beta(1/2, 1/2)); its prior is set to the same value
    so that the root's delta in the weight-of-evidence identity is 0."""
    n_lanes = sc.ratio.shape[0]
    for c in range(n_lanes):
        sc.ratio[c] = (sc.k[0, c] + 0.5) / ((n - sc.k[0, c]) + 0.5)
    _log_lanes(sc.ratio_bits, sc.lo_post, 0, sc.mant_bits, sc.mant, sc.exponent)
    outside = False
    for c in range(n_lanes):
        outside |= not (_TINY <= sc.ratio[c] <= _HUGE)
    if outside:  # rare: a separate loop keeps the one above vectorised
        for c in range(n_lanes):
            if not (_TINY <= sc.ratio[c] <= _HUGE):
                sc.lo_post[0, c] = math.log(sc.k[0, c] + 0.5) - math.log((n - sc.k[0, c]) + 0.5)
    for c in range(n_lanes):
        sc.lo_prior[0, c] = sc.lo_post[0, c]


@nb.njit(inline="always", nogil=True, error_model="numpy", _nrt=False)
def _prior_lanes(s, tb, ln, sc):
    """lo(prior(W)) = lo(p) + D(|g|) * sum_j [lo(P(W'_j)) - lo(p)] at shape s, summing the
    generalisations in order. One, two and three generalisations (most shapes) are
    unrolled into a single pass with the generalisations' rows hoisted: the same
    operations in the same order as the general loop, hence the same bits."""
    n_lanes = ln.label.shape[0]
    n_par = tb.n_parents[s]
    post = sc.lo_post
    prior = sc.lo_prior
    dtab = ln.dtab
    if n_par == 1:
        p0 = tb.parents[s, 0]
        for c in range(n_lanes):
            r = post[0, c]
            prior[s, c] = r + dtab[1, c] * (post[p0, c] - r)
    elif n_par == 2:
        p0 = tb.parents[s, 0]
        p1 = tb.parents[s, 1]
        for c in range(n_lanes):
            r = post[0, c]
            prior[s, c] = r + dtab[2, c] * ((post[p0, c] - r) + (post[p1, c] - r))
    elif n_par == 3:
        p0 = tb.parents[s, 0]
        p1 = tb.parents[s, 1]
        p2 = tb.parents[s, 2]
        for c in range(n_lanes):
            r = post[0, c]
            total = ((post[p0, c] - r) + (post[p1, c] - r)) + (post[p2, c] - r)
            prior[s, c] = r + dtab[3, c] * total
    else:
        for c in range(n_lanes):
            prior[s, c] = 0.0
        for j in range(n_par):
            p = tb.parents[s, j]
            for c in range(n_lanes):
                prior[s, c] += post[p, c] - post[0, c]
        for c in range(n_lanes):
            prior[s, c] = post[0, c] + dtab[n_par, c] * prior[s, c]


@nb.njit(inline="always", nogil=True, error_model="numpy", _nrt=False)
def _posterior_lanes(sc, s, n, lane_s):
    """lo(P(W)) at shape s from lo(prior(W)), k_W per lane, n_W = ``n`` > 0 and S per lane
    (see the module docstring, "Stable posterior")."""
    n_lanes = sc.a.shape[0]
    for c in range(n_lanes):
        sc.a[c] = min(abs(sc.lo_prior[s, c]), _EXP_ARG_MAX)
    _exp_neg_lanes(sc.a, sc.t, sc.scale_bits, sc.scale)
    for c in range(n_lanes):
        t = sc.t[c]
        k = sc.k[s, c]
        one_t = 1.0 + t
        st = lane_s[c] * t
        sc.s_t[c] = st
        if sc.lo_prior[s, c] >= 0.0:
            sc.ratio[c] = (k * one_t + lane_s[c]) / ((n - k) * one_t + st)
        else:
            sc.ratio[c] = (k * one_t + st) / ((n - k) * one_t + lane_s[c])
    _log_lanes(sc.ratio_bits, sc.lo_post, s, sc.mant_bits, sc.mant, sc.exponent)
    outside = False
    for c in range(n_lanes):
        outside |= not (sc.a[c] < _EXP_ARG_MAX and sc.s_t[c] >= _TINY and _TINY <= sc.ratio[c] <= _HUGE)
    if outside:  # rare: a separate loop keeps the one above vectorised
        for c in range(n_lanes):
            if not (sc.a[c] < _EXP_ARG_MAX and sc.s_t[c] >= _TINY and _TINY <= sc.ratio[c] <= _HUGE):
                sc.lo_post[s, c] = _exact_log_odds(sc.lo_prior[s, c], sc.k[s, c], n, lane_s[c])


@nb.njit(inline="always", nogil=True, _nrt=False)
def _load_row(b, s, row, tb, sc):
    """n_W and the error pointers of counts row ``row`` (< 0: none) for block item b."""
    if row >= 0:
        sc.n[b, s] = tb.count_n[row]
        sc.ptr_lo[b, s] = tb.err_ptr[row]
        sc.ptr_hi[b, s] = tb.err_ptr[row + 1]
    else:
        sc.n[b, s] = 0.0
        sc.ptr_lo[b, s] = 0
        sc.ptr_hi[b, s] = 0


@nb.njit(cache=True, nogil=True, _nrt=False)
def _find_counts(first, count, keys, tb, loo, use_loo, cache_tags, idle_tags, sc):
    """Where the counts of items ``first .. first + count - 1`` are, at every shape:
    ``sc.rows[b, s]`` is the counts row (with ``sc.n``, ``sc.ptr_lo``, ``sc.ptr_hi``
    loaded), or -1 for an unseen pattern, ``_IDLE`` for a pattern without labelled items
    (n_W = 0: P(W) = prior(W), its counts are not needed), ``_IN_CACHE`` for a pattern
    whose posterior is cached.

    Most lookups are avoided. A pattern whose generalisation is unseen is unseen, and one
    whose generalisation has no labelled item has none either (every item matching it
    matches the generalisation). Keys found idle are remembered per thread in
    ``idle_tags`` (new combinations recur within a batch), posteriors in ``cache_tags``.

    The rest is arranged so that memory is never waited for one load at a time. Shapes
    are taken one coarseness level at a time (a level's shapes are not each other's
    generalisations), over the whole block; within a level every step first compacts the
    (item, shape) pairs that need it into a list, branch-free, then loads what the list
    asks for in a loop without branches: remembered tags, then home slots, then counts.
    A branch on a load that missed would stall until memory answered (~180 ns here) and
    throw away the loads issued after it; loads without branches between them overlap.
    """
    n_shapes = keys.shape[1]
    mask = np.uint64(tb.slot_keys.shape[0] - 1)
    cache_mask = np.uint64(cache_tags.shape[0] - 1)
    idle_mask = np.uint64(idle_tags.shape[0] - 1)
    has_cache = cache_tags.shape[0] > 0
    has_idle = idle_tags.shape[0] > 0
    rows = sc.rows
    for b in range(count):
        for s in range(n_shapes):
            sc.n[b, s] = 0.0
            sc.ptr_lo[b, s] = 0
            sc.ptr_hi[b, s] = 0
    start = 0
    while start < n_shapes:
        end = tb.level_end[start]
        # 1. settle from the generalisations (already known); list the rest
        m = 0
        for b in range(count):
            for s in range(start, end):
                unseen = False
                idle = False
                for j in range(tb.n_parents[s]):
                    parent_row = rows[b, tb.parents[s, j]]
                    unseen |= parent_row == -1
                    idle |= parent_row == _IDLE
                state = _PENDING
                state = _IDLE if idle else state
                state = -1 if unseen else state
                rows[b, s] = state
                sc.todo_b[m] = b
                sc.todo_s[m] = s
                m += state == _PENDING
        # 2. remembered tags of the listed pairs
        for t in range(m):
            key = keys[first + sc.todo_b[t], sc.todo_s[t]]
            if has_cache:
                sc.cache_tag[t] = cache_tags[key & cache_mask]
            if has_idle:
                sc.idle_tag[t] = idle_tags[key & idle_mask]
        # 3. settle from the tags; list the lookups left
        n_look = 0
        for t in range(m):
            b, s = sc.todo_b[t], sc.todo_s[t]
            key = keys[first + b, s]
            left_out = use_loo and loo[first + b, 0] >= 0
            cached = has_cache & (not left_out) & (sc.cache_tag[t] == key)
            idle = has_idle & (sc.idle_tag[t] == key)
            state = _PENDING
            state = _IDLE if idle else state
            state = _IN_CACHE if cached else state
            rows[b, s] = state
            sc.todo_b[n_look] = b
            sc.todo_s[n_look] = s
            n_look += state == _PENDING
        # 4. home slots
        for t in range(n_look):
            key = keys[first + sc.todo_b[t], sc.todo_s[t]]
            sc.cand_row[t] = tb.slot_rows[key & mask]
            sc.cand_key[t] = tb.slot_keys[key & mask]
        # 5. read them (a key further along its probe sequence falls back to lookup)
        n_found = 0
        for t in range(n_look):
            b, s = sc.todo_b[t], sc.todo_s[t]
            key = keys[first + b, s]
            if sc.cand_row[t] == EMPTY_ROW:
                row = np.int64(-1)
            elif sc.cand_key[t] == key:
                row = sc.cand_row[t]
            else:
                row = lookup(tb.slot_keys, tb.slot_rows, key)
            rows[b, s] = row
            if row < 0 and has_idle:
                idle_tags[key & idle_mask] = key
            sc.todo_b[n_found] = b
            sc.todo_s[n_found] = s
            n_found += row >= 0
        # 6. counts of the rows found
        for t in range(n_found):
            b, s = sc.todo_b[t], sc.todo_s[t]
            row = rows[b, s]
            sc.n[b, s] = tb.count_n[row]
            sc.ptr_lo[b, s] = tb.err_ptr[row]
            sc.ptr_hi[b, s] = tb.err_ptr[row + 1]
        for t in range(n_found):
            b, s = sc.todo_b[t], sc.todo_s[t]
            if sc.n[b, s] == 0.0:
                rows[b, s] = _IDLE
                if has_idle:
                    key = keys[first + b, s]
                    idle_tags[key & idle_mask] = key
        start = end
    for b in range(count):
        for s in range(n_shapes):
            if sc.ptr_hi[b, s] > sc.ptr_lo[b, s]:
                _prefetch(tb.err_label, sc.ptr_lo[b, s])
                _prefetch(tb.err_k, sc.ptr_lo[b, s])


@nb.njit(cache=True, nogil=True, error_model="numpy", _nrt=False)
def _gather_counts(i, b, keys, tb, ln, loo, loo_weight, use_loo, cache_tags, cache_vals, sc):
    """The counts item ``i`` (block item b) uses at every shape with labelled items:
    ``sc.n[b]`` (every shape, after leave-one-out) and ``sc.k`` (where n > 0), or the
    cached posterior (``sc.cached``, ``sc.lo_post``). Returns whether the item may use
    the cache (not when its own counts are left out)."""
    n_shapes = sc.cached.shape[0]
    n_lanes = ln.label.shape[0]
    n_labels = ln.label_ptr.shape[0] - 1
    labelled = use_loo and loo[i, 0] >= 0
    use_cache = cache_tags.shape[0] > 0 and not labelled
    cache_mask = np.uint64(cache_tags.shape[0] - 1)
    w = loo_weight[i] if labelled else 0.0
    if labelled:
        for c in range(n_lanes):
            sc.y[c] = w * loo[i, ln.label[c]]
    for s in range(n_shapes):
        row = sc.rows[b, s]
        hit = False
        if use_cache and (row >= 0 or row == _IN_CACHE):
            slot = keys[i, s] & cache_mask
            hit = cache_tags[slot] == keys[i, s]
            if hit:
                for c in range(n_lanes):
                    sc.lo_post[s, c] = cache_vals[slot, c]
        sc.cached[s] = hit
        if hit:
            continue
        if row == _IN_CACHE:  # evicted since the block's lookups: look it up now
            row = lookup(tb.slot_keys, tb.slot_rows, keys[i, s])
            sc.rows[b, s] = row
            _load_row(b, s, row, tb, sc)
        n = max(sc.n[b, s] - w, 0.0)
        sc.n[b, s] = n
        if n == 0.0 and s > 0:
            continue  # P(W) = prior(W): k is never read
        for c in range(n_lanes):
            sc.k[s, c] = 0.0
        if ln.direct:  # lane e is label e (scoring): scatter, then fill the padding lanes
            for j in range(sc.ptr_lo[b, s], sc.ptr_hi[b, s]):
                if tb.err_label[j] < n_labels:
                    sc.k[s, tb.err_label[j]] = tb.err_k[j]
            for c in range(n_labels, n_lanes):
                sc.k[s, c] = sc.k[s, ln.label[c]]
        else:
            for j in range(sc.ptr_lo[b, s], sc.ptr_hi[b, s]):
                label = tb.err_label[j]
                if label < n_labels:
                    k = tb.err_k[j]
                    for q in range(ln.label_ptr[label], ln.label_ptr[label + 1]):
                        sc.k[s, ln.label_lanes[q]] = k
        if labelled:
            for c in range(n_lanes):
                sc.k[s, c] = min(max(sc.k[s, c] - sc.y[c], 0.0), n)
    return use_cache


@nb.njit(cache=True, nogil=True, error_model="numpy", _nrt=False)
def _posteriors(i, b, keys, tb, ln, use_cache, every_shape, cache_tags, cache_vals, sc):
    """The recursion for item ``i`` (block item b), generalisations first, and the
    factor's answer lo(p) + ``sc.evidence`` at the full pattern.

    By hpb.md's weight-of-evidence identity, lo(P(full)) = lo(p) + sum_W w_W delta_W with
    delta_W = lo(P(W)) - lo(prior(W)) and w_W the path weights (``path_weights``, fixed
    per lane). delta_W = 0 where n_W = 0, and a shape with n_W > 0 has n > 0 at all its
    generalisations (monotone counts), so the shapes with labelled items form a closed
    sub-lattice whose posteriors never need the others': the sum runs over them alone,
    and a new item's many unseen patterns cost nothing. ``every_shape`` also fills the
    priors and posteriors of the shapes without labelled items, for explanations. The sum
    is taken in shape order whether a posterior came from the cache or not, so that the
    result does not depend on the cache."""
    n_shapes = sc.cached.shape[0]
    n_lanes = ln.label.shape[0]
    cache_mask = np.uint64(cache_tags.shape[0] - 1)
    for c in range(n_lanes):
        sc.evidence[c] = 0.0
    for s in range(n_shapes):
        n = sc.n[b, s]
        if s == 0:
            if not sc.cached[0]:
                _root_lanes(sc, n)
            for c in range(n_lanes):
                sc.lo_prior[0, c] = sc.lo_post[0, c]  # delta at the root is 0
        elif sc.cached[s]:
            _prior_lanes(s, tb, ln, sc)
        elif n > 0.0:
            _prior_lanes(s, tb, ln, sc)
            _posterior_lanes(sc, s, n, ln.s)
        elif every_shape:
            _prior_lanes(s, tb, ln, sc)
            for c in range(n_lanes):
                sc.lo_post[s, c] = sc.lo_prior[s, c]  # P(W) = prior(W) exactly
            continue
        else:
            continue
        if s > 0:
            for c in range(n_lanes):
                sc.evidence[c] += ln.weights[s, c] * (sc.lo_post[s, c] - sc.lo_prior[s, c])
        if use_cache and not sc.cached[s]:
            slot = keys[i, s] & cache_mask
            cache_tags[slot] = keys[i, s]
            for c in range(n_lanes):
                cache_vals[slot, c] = sc.lo_post[s, c]


@nb.njit(cache=True, nogil=True)
def _clear_tags(tags):
    """Empty every slot of per-thread tag tables uint64[threads, slots]. An empty slot's
    tag must never equal a key that maps to it: such keys have key & mask == slot, so
    slot ^ 1 is a safe empty tag."""
    for t in range(tags.shape[0]):
        for slot in range(tags.shape[1]):
            tags[t, slot] = np.uint64(slot ^ 1)


@nb.njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _score_kernel(
    keys, tb, ln, loo, loo_weight, use_loo, cache_tags, cache_vals, idle_tags, out_full, out_root
):
    """lo(P) at the full pattern and at the root, for every item and the first
    ``out_full.shape[1]`` lanes (the root only for the first ``out_root.shape[0]``
    items: without leave-one-out it is the same for all). The caches have one row per
    thread (at least numba's current thread count); their tags are emptied first, so
    whatever they held before does not matter."""
    n_items, n_shapes = keys.shape
    n_lanes = ln.label.shape[0]
    n_out = out_full.shape[1]
    _clear_tags(cache_tags)
    _clear_tags(idle_tags)
    n_chunks = (n_items + _CHUNK - 1) // _CHUNK
    for chunk in nb.prange(n_chunks):
        thread = nb.get_thread_id()
        tags = cache_tags[thread]
        vals = cache_vals[thread]
        idle = idle_tags[thread]
        sc = _scratch(n_shapes, n_lanes)
        stop = min(n_items, (chunk + 1) * _CHUNK)
        for first in range(chunk * _CHUNK, stop, _BLOCK):
            count = min(_BLOCK, stop - first)
            _find_counts(first, count, keys, tb, loo, use_loo, tags, idle, sc)
            for b in range(count):
                i = first + b
                use_cache = _gather_counts(i, b, keys, tb, ln, loo, loo_weight, use_loo, tags, vals, sc)
                _posteriors(i, b, keys, tb, ln, use_cache, False, tags, vals, sc)
                for c in range(n_out):
                    out_full[i, c] = sc.lo_post[0, c] + sc.evidence[c]
                if i < out_root.shape[0]:
                    for c in range(n_out):
                        out_root[i, c] = sc.lo_post[0, c]


@nb.njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _trace_kernel(
    keys, tb, ln, loo, loo_weight, use_loo, out_full, out_rows, out_n, out_k, out_prior, out_post
):
    """Every intermediate of the recursion, for explanations and audits (no cache)."""
    n_items, n_shapes = keys.shape
    n_lanes = ln.label.shape[0]
    n_out = out_post.shape[2]
    no_tags = np.empty((1, 0), dtype=np.uint64)
    no_vals = np.empty((1, 0, n_lanes))
    n_chunks = (n_items + _CHUNK - 1) // _CHUNK
    for chunk in nb.prange(n_chunks):
        sc = _scratch(n_shapes, n_lanes)
        stop = min(n_items, (chunk + 1) * _CHUNK)
        for first in range(chunk * _CHUNK, stop, _BLOCK):
            count = min(_BLOCK, stop - first)
            _find_counts(first, count, keys, tb, loo, use_loo, no_tags[0], no_tags[0], sc)
            for b in range(count):
                i = first + b
                _gather_counts(i, b, keys, tb, ln, loo, loo_weight, use_loo, no_tags[0], no_vals[0], sc)
                _posteriors(i, b, keys, tb, ln, False, True, no_tags[0], no_vals[0], sc)
                for c in range(n_out):
                    out_full[i, c] = sc.lo_post[0, c] + sc.evidence[c]
                for s in range(n_shapes):
                    row = sc.rows[b, s]
                    if row == _IDLE:  # settled without its row: report it all the same
                        row = lookup(tb.slot_keys, tb.slot_rows, keys[i, s])
                    out_rows[i, s] = row
                    out_n[i, s] = sc.n[b, s]
                    for c in range(n_out):
                        out_k[i, s, c] = sc.k[s, c] if sc.n[b, s] > 0.0 else 0.0
                        out_prior[i, s, c] = sc.lo_prior[s, c]
                        out_post[i, s, c] = sc.lo_post[s, c]


@nb.njit(cache=True, nogil=True)
def _log_sigmoid(x):
    """ln(1 / (1 + e**-x)) without overflow."""
    return min(x, 0.0) - math.log1p(math.exp(-abs(x)))


@nb.njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _loglik_kernel(keys, tb, ln, labels, weight, out_part):
    """Leave-one-out log-likelihood of the labelled items, per lane, summed per task
    into ``out_part[task, lane]`` (the caller sums tasks in order: deterministic)."""
    n_items, n_shapes = keys.shape
    n_lanes = ln.label.shape[0]
    n_out = out_part.shape[1]
    no_tags = np.empty((1, 0), dtype=np.uint64)
    no_vals = np.empty((1, 0, n_lanes))
    for chunk in nb.prange(out_part.shape[0]):
        sc = _scratch(n_shapes, n_lanes)
        stop = min(n_items, (chunk + 1) * _CHUNK)
        for first in range(chunk * _CHUNK, stop, _BLOCK):
            count = min(_BLOCK, stop - first)
            _find_counts(first, count, keys, tb, labels, True, no_tags[0], no_tags[0], sc)
            for b in range(count):
                i = first + b
                if labels[i, 0] < 0:
                    continue
                _gather_counts(i, b, keys, tb, ln, labels, weight, True, no_tags[0], no_vals[0], sc)
                _posteriors(i, b, keys, tb, ln, False, False, no_tags[0], no_vals[0], sc)
                for c in range(n_out):
                    lo = sc.lo_post[0, c] + sc.evidence[c]
                    y = labels[i, ln.label[c]]
                    out_part[chunk, c] += weight[i] * _log_sigmoid(lo if y > 0 else -lo)


# --------------------------------------------------------------------------- wrappers


class FactorState(NamedTuple):
    """What scoring needs of one factor: its lattice, its counts and their key index
    (``build_index(counts.keys)``)."""

    lattice: Lattice
    counts: PatternCounts
    index: KeyIndex


class FactorLogOdds(NamedTuple):
    """A factor's answer for a batch of items: lo(P_e) at the full pattern, and lo(p_e)
    at the root (the baseline the network combination calibrates towards; identical for
    every item unless leave-one-out subtracted the item's own label, and then a
    read-only broadcast view of one row)."""

    full: np.ndarray  # float64[n_items, E]
    root: np.ndarray  # float64[n_items, E]


class FactorTrace(NamedTuple):
    """Every intermediate of the recursion for a (small) batch of items.

    ``full`` is the factor's answer, bit for bit ``factor_log_odds(...).full``: lo(p_e)
    plus the weights of evidence sum_W w_W * (lo_post - lo_prior), which equals
    ``lo_post[:, -1]``, the recursion's value at the full pattern, up to rounding.
    ``rows[i, s]`` is the item's pattern at shape s as a row of the ``PatternCounts``
    (-1: never counted); ``n[i, s]`` and ``k[i, s, e]`` the counts used (after
    leave-one-out, if any; k = 0 where n = 0); ``lo_prior`` and ``lo_post`` the log-odds
    of prior_e(W) and P_e(W). At the root both equal lo(p_e), so the root's delta is 0.
    """

    full: np.ndarray  # float64[n_items, E]
    rows: np.ndarray  # int64[n_items, S]
    n: np.ndarray  # float64[n_items, S]
    k: np.ndarray  # float64[n_items, S, E]
    lo_prior: np.ndarray  # float64[n_items, S, E]
    lo_post: np.ndarray  # float64[n_items, S, E]


def _check_coefficients(s_coef: np.ndarray, d_coef: np.ndarray, n_lanes: int) -> None:
    for name, values in (("S", s_coef), ("d", d_coef)):
        if values.shape != (n_lanes,) or not (np.isfinite(values).all() and (values > 0).all()):
            raise ValueError(
                f"{name} coefficients must be {n_lanes} finite positive floats; "
                f"got shape {values.shape}, min {values.min(initial=np.inf)}"
            )


def _lane_spec(
    label: np.ndarray, s_coef: np.ndarray, d_coef: np.ndarray, n_labels: int, lattice: Lattice
) -> _LaneSpec:
    """Lanes padded to a multiple of ``_LANE_PAD`` with harmless copies of lane 0."""
    label = np.asarray(label, dtype=np.int64)
    s_coef = np.asarray(s_coef, dtype=np.float64)
    d_coef = np.asarray(d_coef, dtype=np.float64)
    _check_coefficients(s_coef, d_coef, label.shape[0])
    if label.size and (label.min() < 0 or label.max() >= n_labels):
        raise ValueError(f"lane labels must index the {n_labels} label columns")
    pad = -(-label.shape[0] // _LANE_PAD) * _LANE_PAD - label.shape[0]

    def padded(values: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.concatenate([values, np.repeat(values[:1], pad)]))

    label, s_coef, d_coef = padded(label), padded(s_coef), padded(d_coef)
    n_attr = lattice.parents.shape[1]
    dtab = np.zeros((n_attr + 1, label.shape[0]))
    for j in range(1, n_attr + 1):
        dtab[j] = np.minimum(1.0, d_coef / j)
    label_ptr = np.zeros(n_labels + 1, dtype=np.int64)
    np.cumsum(np.bincount(label, minlength=n_labels), out=label_ptr[1:])
    label_lanes = np.argsort(label, kind="stable").astype(np.int64)
    direct = bool(np.array_equal(label[:n_labels], np.arange(n_labels)))
    weights = np.ascontiguousarray(path_weights(lattice, d_coef))
    return _LaneSpec(label, s_coef, dtab, label_ptr, label_lanes, direct, weights)


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


def _tables(lattice: Lattice, counts: PatternCounts, index: KeyIndex) -> _Tables:
    # shapes come sorted by decreasing coarseness (lattice.py); runs of equal coarseness
    # are never each other's generalisations
    coarseness = lattice.levels.astype(np.int64).sum(axis=1)
    level_end = np.empty(lattice.n_shapes, dtype=np.int64)
    end = lattice.n_shapes
    for s in range(lattice.n_shapes - 1, -1, -1):
        if s + 1 < lattice.n_shapes and coarseness[s + 1] != coarseness[s]:
            end = s + 1
        level_end[s] = end
    return _Tables(
        np.ascontiguousarray(lattice.parents, dtype=np.int32),
        np.ascontiguousarray(lattice.n_parents, dtype=np.int32),
        level_end,
        np.ascontiguousarray(index.slot_keys, dtype=np.uint64),
        np.ascontiguousarray(index.slot_rows, dtype=np.int64),
        np.ascontiguousarray(counts.n, dtype=np.float64),
        np.ascontiguousarray(counts.err_ptr, dtype=np.int64),
        np.ascontiguousarray(counts.err_label, dtype=np.int16),
        np.ascontiguousarray(counts.err_k, dtype=np.float64),
    )


class _Inputs(NamedTuple):
    """What every kernel reads, checked (``_inputs``)."""

    keys: np.ndarray
    tables: _Tables
    lanes: _LaneSpec
    loo: np.ndarray
    weight: np.ndarray
    use_loo: bool


def _inputs(
    keys: np.ndarray, lattice: Lattice, counts: PatternCounts, index: KeyIndex, lane_label: np.ndarray,
    lane_s: np.ndarray, lane_d: np.ndarray, n_labels: int, loo: np.ndarray | None, loo_weight: np.ndarray | None,
) -> _Inputs:  # fmt: skip
    """The arguments shared by ``factor_log_odds``, ``trace_factor`` and
    ``loo_log_likelihood``, checked and laid out for the kernels."""
    keys = _check_keys(keys, lattice)
    lanes = _lane_spec(lane_label, lane_s, lane_d, n_labels, lattice)
    loo_arr, weight, use_loo = _check_loo(loo, loo_weight, keys.shape[0], n_labels)
    return _Inputs(keys, _tables(lattice, counts, index), lanes, loo_arr, weight, use_loo)


_pool = threading.local()


def _caches(n_items: int, n_shapes: int, n_lanes: int) -> tuple[np.ndarray, ...]:
    """The per-thread caches of ``_score_kernel``: posterior tags uint64[T, slots] and
    values float64[T, slots, >= n_lanes], idle tags uint64[T, idle slots].

    Slots are a power of two, no more than the patterns a thread could meet in the
    batch. The arrays are kept per calling Python thread and reused by its next calls
    (the kernel empties the tags): a fresh 16 MB per numba thread and factor would be
    paid again in page faults at every call."""
    n_threads = nb.get_num_threads()
    patterns = max(1, n_items * n_shapes // n_threads)
    slots = int(min(_CACHE_SLOTS, max(64, 1 << (patterns - 1).bit_length())))
    held = getattr(_pool, "caches", None)
    if held is None or held[0].shape[:2] != (n_threads, slots) or held[1].shape[2] < n_lanes:
        held = (
            np.empty((n_threads, slots), dtype=np.uint64),
            np.empty((n_threads, slots, n_lanes)),
            np.empty((n_threads, min(slots, _IDLE_SLOTS)), dtype=np.uint64),
        )
        _pool.caches = held
    return held


def factor_log_odds(
    keys: np.ndarray,
    lattice: Lattice,
    counts: PatternCounts,
    index: KeyIndex,
    s_coef: np.ndarray,
    d_coef: np.ndarray,
    loo: np.ndarray | None = None,
    loo_weight: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> FactorLogOdds:
    """Score a batch of items against one factor, every label at once: lo(P_e) of each
    item's full pattern (through the weight-of-evidence identity, see the module
    docstring; ``trace_factor(...).full`` gives the same bits) and lo(p_e).

    ``keys`` uint64[n, S] are the items' pattern keys (``keys.pattern_keys``), ``counts``
    the factor's ``PatternCounts`` and ``index`` its ``build_index(counts.keys)``;
    ``s_coef`` and ``d_coef`` float64[E] the label's S_e and d_e. With ``loo`` (int8[n, E],
    a row of -1 for an unlabelled item) each labelled item is scored without its own
    counts (weight ``loo_weight[i]``, default 1: the weight it was counted with).
    ``labels`` (int indices into the E labels) limits the work to those labels, e.g. the
    ones whose network uses the factor: the outputs then have one column per given label,
    in that order, each bit for bit the column scoring every label would give (lanes never
    mix labels).
    """
    n_labels = np.shape(s_coef)[0]
    if labels is None:
        lane_labels, lane_s, lane_d = np.arange(n_labels), s_coef, d_coef
    else:
        lane_labels = np.asarray(labels, dtype=np.int64)
        lane_s, lane_d = np.asarray(s_coef)[lane_labels], np.asarray(d_coef)[lane_labels]
    inputs = _inputs(keys, lattice, counts, index, lane_labels, lane_s, lane_d, n_labels, loo, loo_weight)
    keys = inputs.keys
    out_full = np.empty((keys.shape[0], lane_labels.size))
    # Without leave-one-out every item has the root's counts (one root key per factor):
    # one row, broadcast, instead of n copies of it.
    same_root = not inputs.use_loo and bool((keys[:, 0] == keys[0, 0]).all()) if keys.size else True
    out_root = np.empty((min(1, keys.shape[0]) if same_root else keys.shape[0], lane_labels.size))
    _score_kernel(
        *inputs, *_caches(keys.shape[0], keys.shape[1], inputs.lanes.label.shape[0]), out_full, out_root,
    )  # fmt: skip
    return FactorLogOdds(out_full, np.broadcast_to(out_root, out_full.shape))


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
    arithmetic is the scoring kernel's, so ``full`` equals ``factor_log_odds(...).full``
    bit for bit."""
    n_labels = np.shape(s_coef)[0]
    inputs = _inputs(keys, lattice, counts, index, np.arange(n_labels), s_coef, d_coef, n_labels, loo, loo_weight)
    n_items, n_shapes = inputs.keys.shape
    out = FactorTrace(
        np.empty((n_items, n_labels)),
        np.empty((n_items, n_shapes), dtype=np.int64),
        np.empty((n_items, n_shapes)),
        np.empty((n_items, n_shapes, n_labels)),
        np.empty((n_items, n_shapes, n_labels)),
        np.empty((n_items, n_shapes, n_labels)),
    )
    _trace_kernel(*inputs, *out)
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
    labels = np.ascontiguousarray(labels, dtype=np.int8)
    n_labels = labels.shape[1] if labels.ndim == 2 else 0
    inputs = _inputs(keys, lattice, counts, index, lane_label, lane_s, lane_d, n_labels, labels, weight)
    n_chunks = (inputs.keys.shape[0] + _CHUNK - 1) // _CHUNK
    out_part = np.zeros((n_chunks, np.shape(lane_label)[0]))
    _loglik_kernel(inputs.keys, inputs.tables, inputs.lanes, inputs.loo, inputs.weight, out_part)
    return out_part.sum(axis=0)

"""Count preprocessing of edgeR 3.40, ported line by line (pure NumPy/SciPy).

* :func:`calc_norm_factors` — ``calcNormFactors`` (TMM, upper quartile, none),
* :func:`filter_by_expr` — ``filterByExpr``,
* :func:`cpm` — ``cpm`` (raw and log, with edgeR's library-size-scaled prior count).

Arrays are samples × genes (AnnData orientation); edgeR's matrices are genes × samples.

The ports copy edgeR's floating-point expressions literally, because rank-based
trimming turns a last-bit difference into a different set of trimmed genes: TMM's
log-ratio is ``log2((obs/nO)/(ref/nR))`` (not a difference of logs, which breaks exact
ties between equal integer count ratios), ranks are R's average ranks, quantiles are
R's type 7 formula, and the sums and means R computes in ``long double``
(``colSums``, ``rowSums``, ``sum``, ``mean``, ``median``) are computed the same way,
left to right, in ``numpy.longdouble``. ``log``, ``log2``, ``exp`` and ``pow`` are the C
library's, as in R.
"""

from __future__ import annotations

import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import PerturbridgeWarning

__all__ = [
    "FilterOptions",
    "NormMethod",
    "TMMOptions",
    "calc_norm_factors",
    "cpm",
    "filter_by_expr",
]


@dataclass(frozen=True)
class TMMOptions:
    """The trimming and weighting of TMM (edgeR's defaults).

    Parameters
    ----------
    logratio_trim
        Fraction of genes trimmed from each end of the log-ratios (M-values).
    sum_trim
        Fraction trimmed from each end of the average log-abundances (A-values).
    do_weighting
        Weight the M-values by their inverse asymptotic variances.
    a_cutoff
        Genes with A-value at or below this are not used.
    """

    logratio_trim: float = 0.3
    sum_trim: float = 0.05
    do_weighting: bool = True
    a_cutoff: float = -1e10


@dataclass(frozen=True)
class FilterOptions:
    """The thresholds of ``filterByExpr`` (edgeR's defaults).

    Parameters
    ----------
    min_count
        Minimum count (at the median library size) in the smallest group.
    min_total_count
        Minimum total count of a gene over all samples.
    large_n
        Groups larger than this need only ``min_prop`` of their extra samples.
    min_prop
        Proportion of samples beyond ``large_n`` that must pass.
    """

    min_count: float = 10
    min_total_count: float = 15
    large_n: int = 10
    min_prop: float = 0.7


FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.intp]

#: Methods of :func:`calc_norm_factors`.
NormMethod = Literal["TMM", "upperquartile", "none"]

_METHODS: tuple[str, ...] = ("TMM", "upperquartile", "none")
#: Rows (or columns) summed at once in ``long double``, to bound the temporary memory.
_CHUNK = 4096
#: edgeR's C++ constants ``std::log(1e6)`` and ``std::log(2)``.
_LN_MILLION = math.log(1e6)
_LN_TWO = math.log(2.0)


# --- R's long-double reductions -------------------------------------------------------


def _r_sums(x: FloatArray, axis: int) -> FloatArray:
    """R ``colSums``/``rowSums``/``sum``: left-to-right sums in ``long double``.

    ``axis`` is the axis summed over (of a 1-D or 2-D array); the result is rounded to
    double once, at the end, as R does.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size and np.abs(x).sum() < 2.0**53 and np.array_equal(x, np.floor(x)):
        # integer counts: every partial sum is exact in double, so any summation order
        # gives the long double result
        return np.atleast_1d(np.sum(x, axis=axis if x.ndim > 1 else 0)).astype(np.float64)
    if x.ndim == 1:
        if x.size == 0:
            return np.zeros(1)
        return np.asarray([np.cumsum(x.astype(np.longdouble))[-1]], dtype=np.float64)
    if x.shape[axis] == 0:
        return np.zeros(x.shape[1 - axis])
    other = 1 - axis
    out = np.empty(x.shape[other])
    for start in range(0, x.shape[other], _CHUNK):
        sl = slice(start, start + _CHUNK)
        block = x[sl, :] if other == 0 else x[:, sl]
        acc = np.cumsum(block.astype(np.longdouble), axis=axis)
        out[sl] = (acc[:, -1] if axis == 1 else acc[-1, :]).astype(np.float64)
    return out


def _r_sum(x: ArrayLike) -> float:
    """R ``sum(x)`` of a double vector."""
    return float(_r_sums(np.ravel(np.asarray(x, dtype=np.float64)), axis=0)[0])


def _r_mean(x: ArrayLike) -> float:
    """R ``mean(x)``: a ``long double`` mean with R's second correcting pass."""
    v = np.ravel(np.asarray(x, dtype=np.float64))
    n = v.size
    if n == 0:
        return math.nan
    s = np.cumsum(v.astype(np.longdouble))[-1] / np.longdouble(n)
    if math.isfinite(float(s)):
        t = np.cumsum(v.astype(np.longdouble) - s)[-1]
        s = s + t / np.longdouble(n)
    return float(s)


def _r_median(x: FloatArray) -> float:
    """R ``median(x)`` (no missing values)."""
    v = np.sort(np.ravel(x))
    n = v.size
    half = (n + 1) // 2
    if n % 2 == 1:
        return float(v[half - 1])
    return _r_mean(v[half - 1 : half + 1])


def _r_quantile7(x: FloatArray, p: float) -> FloatArray:
    """R ``quantile(x[j, ], probs = p, type = 7)`` of every row of ``x``, R's formula."""
    n = x.shape[1]
    index = 1 + max(n - 1, 0) * p
    lo = math.floor(index)
    hi = math.ceil(index)
    part = np.partition(x, sorted({lo - 1, hi - 1}), axis=1)
    qs = part[:, lo - 1].copy()
    x_hi = part[:, hi - 1]
    if index > lo:
        h = index - lo
        other = x_hi != qs
        qs[other] = (1 - h) * qs[other] + h * x_hi[other]
    return qs


def _dqrdc2_columns(x: FloatArray, tol: float = 1e-7) -> IntArray:
    """Columns that R's ``qr(x)`` (LINPACK ``dqrdc2``) keeps, in its pivoted order.

    A port of ``dqrdc2``'s limited pivoting: left to right, a column whose norm, after
    the Householder steps of the kept columns before it, has fallen below ``tol`` times
    its original norm is moved to the end; the first ``rank`` pivoted columns are kept.
    """
    x = np.array(x, dtype=np.float64)
    n, p = x.shape
    qraux = np.linalg.norm(x, axis=0)
    work2 = np.where(qraux == 0, 1.0, qraux)
    jpvt = np.arange(p)
    k = p  # columns k.. have been moved to the end (0-based count of candidates)
    for col in range(min(n, p)):
        while col < k and qraux[col] < work2[col] * tol:
            order = np.r_[np.arange(col), np.arange(col + 1, p), col]
            x, qraux, work2, jpvt = x[:, order], qraux[order], work2[order], jpvt[order]
            k -= 1
        if col == n - 1:
            break
        nrmxl = float(np.linalg.norm(x[col:, col]))
        if nrmxl == 0:
            continue
        if x[col, col] != 0:
            nrmxl = math.copysign(nrmxl, x[col, col])
        x[col:, col] *= 1.0 / nrmxl
        x[col, col] += 1.0
        for j in range(col + 1, p):
            t = -np.dot(x[col:, col], x[col:, j]) / x[col, col]
            x[col:, j] += t * x[col:, col]
            if qraux[j] == 0:
                continue
            tt = max(1.0 - (abs(x[col, j]) / qraux[j]) ** 2, 0.0)
            if abs(tt) < 1e-6:
                qraux[j] = np.linalg.norm(x[col + 1 :, j])
            else:
                qraux[j] = qraux[j] * math.sqrt(tt)
        qraux[col] = x[col, col]
        x[col, col] = -nrmxl
    rank = min(k, n)
    return jpvt[:rank]


def _hat_max(design: FloatArray) -> float:
    """``max(hat(design))`` of R's ``stats::hat`` (an intercept column is prepended).

    The hat values are the squared row norms of an orthonormal basis of the columns
    that R's ``qr`` keeps (:func:`_dqrdc2_columns`).
    """
    x = np.column_stack([np.ones(design.shape[0]), design])
    q = np.linalg.qr(x[:, _dqrdc2_columns(x)], mode="reduced")[0]
    return float(np.max(np.sum(q * q, axis=1)))


# --- validation -----------------------------------------------------------------------


def _positions(mask: BoolArray, values: FloatArray, k: int = 5) -> str:
    where = np.argwhere(mask)[:k]
    shown = ", ".join(f"(sample {i}, gene {j}): {float(values[i, j])!r}" for i, j in where)
    more = f" and {int(mask.sum()) - k} more" if mask.sum() > k else ""
    return shown + more


def _check_counts(counts: ArrayLike) -> FloatArray:
    x = np.asarray(counts)
    if x.ndim != 2:
        raise ValueError(
            f"counts must be a 2-D array (samples × genes); found {x.ndim} dimension(s) "
            f"with shape {x.shape}"
        )
    if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"counts must be numeric (int or float); found dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.complexfloating):
        raise TypeError(f"counts must be real numbers; found dtype {x.dtype}")
    x = np.asarray(x, dtype=np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        raise ValueError(
            f"counts must be finite; found NaN/inf at {_positions(bad, x)}. "
            "Remove or impute these entries first."
        )
    neg = x < 0
    if neg.any():
        raise ValueError(
            f"counts must be non-negative; found negative values at {_positions(neg, x)}. "
            "Pass raw (or scaled) counts, not log-expression."
        )
    return x


def _check_lib_size(
    lib_size: ArrayLike | None, x: FloatArray, *, what: str = "lib_size"
) -> FloatArray:
    """The library sizes: given ones checked, else R's ``colSums`` of the counts."""
    n = x.shape[0]
    if lib_size is None:
        lib = _r_sums(x, axis=1)
        what = "library sizes (total counts of each sample)"
    else:
        lib = np.asarray(lib_size, dtype=np.float64)
        if lib.shape != (n,):
            raise ValueError(
                f"{what} must have one value per sample, shape ({n},); found shape {lib.shape}"
            )
    bad = ~(np.isfinite(lib) & (lib > 0))
    if bad.any():
        first = np.flatnonzero(bad)[:5]
        shown = ", ".join(f"sample {i}: {float(lib[i])!r}" for i in first)
        raise ValueError(
            f"{what} must be finite and positive; found {shown}. "
            "Drop samples without counts before normalizing."
        )
    return lib


# --- public kernels -------------------------------------------------------------------


def _tmm_ref_terms(ref: FloatArray, n_r: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The reference sample's parts of the TMM expressions (see :func:`_calc_factor_tmm`)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ref_q = ref / n_r
        return ref_q, np.log2(ref_q), (n_r - ref) / n_r / ref


def _average_rank_within(x: FloatArray, lo: int, hi: int) -> np.ndarray:
    """``(r >= lo) & (r <= hi)`` for ``r = rank(x)`` with ties averaged (R's ``rank``).

    Without ranking: with ``a``/``b`` the ``lo``-th/``hi``-th smallest values (one
    O(n) partition), a value strictly between them has every rank it could take in
    ``(lo, hi)``, one below ``a`` or above ``b`` has none in ``[lo, hi]``; only the
    tied values equal to ``a`` or ``b`` need their average rank, counted directly.
    """
    n = x.size
    if lo > hi or lo > n or hi < 1:
        return np.zeros(n, dtype=bool)
    lo_i, hi_i = max(lo, 1) - 1, min(hi, n) - 1
    part = np.partition(x, [lo_i, hi_i])
    a, b = part[lo_i], part[hi_i]
    keep = (x > a) & (x < b)
    for value in {a, b}:
        equal = x == value
        n_equal = int(np.count_nonzero(equal))
        n_less = int(np.count_nonzero(x < value))
        rank2 = 2 * n_less + n_equal + 1  # twice the average rank, an integer
        if 2 * lo <= rank2 <= 2 * hi:
            keep |= equal
    return keep


def _calc_factor_tmm(
    obs: FloatArray,
    ref: FloatArray,
    libsize_obs: float,
    libsize_ref: float,
    *,
    options: TMMOptions,
    ref_terms: tuple[FloatArray, FloatArray, FloatArray] | None = None,
) -> float:
    """edgeR's ``.calcFactorTMM`` for one sample against the reference sample.

    ``ref_terms`` are the reference's ``ref / nR``, ``log2(ref / nR)`` and
    ``(nR - ref) / nR / ref`` (:func:`_tmm_ref_terms`), shared by all samples; the
    expressions are edgeR's, evaluated in the same order, so results are bit-identical.
    """
    n_o = libsize_obs
    logratio_trim, sum_trim, a_cutoff = options.logratio_trim, options.sum_trim, options.a_cutoff
    if ref_terms is None:
        ref_terms = _tmm_ref_terms(ref, libsize_ref)
    ref_q, log_ref_q, v_ref = ref_terms
    # Only genes with both counts positive can have finite M and A values (a zero gives
    # -Inf, Inf or NaN, which edgeR drops): evaluate on those alone, which also keeps
    # log2 off its slow path for zeros. The filter below is edgeR's, unchanged.
    both = np.flatnonzero((obs > 0) & (ref > 0))
    obs, ref_q, log_ref_q, v_ref = (a.take(both) for a in (obs, ref_q, log_ref_q, v_ref))
    with np.errstate(divide="ignore", invalid="ignore"):
        obs_q = obs / n_o
        log_r = np.log2(obs_q / ref_q)
        abs_e = (np.log2(obs_q) + log_ref_q) / 2
        v = (n_o - obs) / n_o / obs + v_ref
    fin = np.isfinite(log_r) & np.isfinite(abs_e) & (abs_e > a_cutoff)
    if not fin.all():
        log_r, abs_e, v = log_r[fin], abs_e[fin], v[fin]
    # max(numeric(0)) is -Inf in R, so a sample without usable genes gets factor 1
    if log_r.size == 0 or np.max(np.abs(log_r)) < 1e-06:
        return 1.0
    n = log_r.size
    lo_l = math.floor(n * logratio_trim) + 1
    hi_l = n + 1 - lo_l
    lo_s = math.floor(n * sum_trim) + 1
    hi_s = n + 1 - lo_s
    keep = _average_rank_within(log_r, lo_l, hi_l) & _average_rank_within(abs_e, lo_s, hi_s)
    if options.do_weighting:
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.float64(_r_sum(log_r[keep] / v[keep])) / np.float64(_r_sum(1 / v[keep]))
    else:
        f = np.float64(_r_mean(log_r[keep]))
    if np.isnan(f):
        f = np.float64(0.0)
    return math.pow(2.0, float(f))


def calc_norm_factors(
    counts: np.ndarray,
    *,
    lib_size: np.ndarray | None = None,
    method: Literal["TMM", "upperquartile", "none"] = "TMM",
    ref_sample: int | None = None,
    tmm: TMMOptions | None = None,
    p: float = 0.75,
    n_jobs: int = 2,
) -> np.ndarray:
    """Normalization factors of each sample: edgeR's ``calcNormFactors``.

    A port of ``calcNormFactors.default`` of edgeR 3.40 for the methods ``"TMM"``
    (trimmed mean of M-values, Robinson & Oshlack 2010), ``"upperquartile"`` and
    ``"none"``. Genes with zero counts in every sample are removed first, as edgeR
    does; with no gene left, or one sample, every factor is 1. The factors are scaled
    so that their product is one; the effective library sizes are ``lib_size * factors``.

    Parameters
    ----------
    counts
        Counts, samples × genes; finite and non-negative (need not be integers).
    lib_size
        Library size of each sample; defaults to the column sums of ``counts``.
    method
        ``"TMM"``, ``"upperquartile"`` or ``"none"``.
    ref_sample
        TMM reference sample (0-based index). By default, the sample whose upper
        quartile of counts per library size is closest to the mean upper quartile
        (edgeR's ``refColumn``), or the sample with the largest sum of square-root counts
        when the median upper quartile is below 1e-20.
    tmm
        TMM: the trimming and weighting (:class:`TMMOptions`, edgeR's defaults).
    p
        ``"upperquartile"``: the quantile of each sample's counts used (R type 7).
    n_jobs
        Threads for the per-sample TMM factors.

    Returns
    -------
    The factors, one per sample, whose product is one.

    Warns
    -----
    PerturbridgeWarning
        With ``"upperquartile"``, when a sample's quantile is zero (as edgeR warns; the
        factors are then not finite).

    Examples
    --------
    >>> import numpy as np
    >>> counts = np.array([[10, 20, 0, 5], [20, 40, 1, 10], [5, 20, 0, 30]])
    >>> calc_norm_factors(counts).round(4)
    array([1.0767, 1.0615, 0.8749])
    """
    x = _check_counts(counts)
    lib = _check_lib_size(lib_size, x)
    tmm = tmm or TMMOptions()
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}; found {method!r}")
    for name, val, lo, hi in (
        ("logratio_trim", tmm.logratio_trim, 0.0, 0.5),
        ("sum_trim", tmm.sum_trim, 0.0, 0.5),
        ("p", p, 0.0, 1.0),
    ):
        if not lo <= val <= hi:
            raise ValueError(f"{name} must lie in [{lo}, {hi}]; found {val!r}")
    n_samples = x.shape[0]
    if ref_sample is not None and not (
        isinstance(ref_sample, int | np.integer) and 0 <= ref_sample < n_samples
    ):
        raise ValueError(
            f"ref_sample must be a sample index in [0, {n_samples - 1}]; found {ref_sample!r}"
        )

    allzero = np.sum(x > 0, axis=0) == 0
    if allzero.any():
        x = x[:, ~allzero]
    if x.shape[1] == 0 or n_samples == 1:
        method = "none"

    if method == "TMM":
        if ref_sample is None:
            f75 = _r_quantile7(x, 0.75) / lib
            if _r_median(f75) < 1e-20:
                ref = int(np.argmax(_r_sums(np.sqrt(x), axis=1)))
            else:
                ref = int(np.argmin(np.abs(f75 - _r_mean(f75))))
        else:
            ref = int(ref_sample)
        ref_terms = _tmm_ref_terms(x[ref], float(lib[ref]))

        def one(i: int) -> float:
            return _calc_factor_tmm(
                x[i],
                x[ref],
                float(lib[i]),
                float(lib[ref]),
                options=tmm,
                ref_terms=ref_terms,
            )

        # samples are independent; NumPy's sorts and sums release the GIL
        with ThreadPoolExecutor(max_workers=min(n_jobs, n_samples)) as pool:
            f = np.array(list(pool.map(one, range(n_samples))))
    elif method == "upperquartile":
        q = _r_quantile7(x, p)
        if q.min() == 0:
            warnings.warn(
                "One or more quantiles are zero (edgeR's warning): the upper-quartile "
                "factors are not finite. Use method='TMM' or filter low-count genes first.",
                PerturbridgeWarning,
                stacklevel=2,
            )
        f = q / lib
    else:
        f = np.ones(n_samples)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = [math.log(v) if v > 0 else (-math.inf if v == 0 else math.nan) for v in f]
        return np.asarray(f / math.exp(_r_mean(logs)), dtype=np.float64)


def filter_by_expr(
    counts: np.ndarray,
    *,
    design: np.ndarray | None = None,
    group: np.ndarray | None = None,
    lib_size: np.ndarray | None = None,
    max_hat: float | None = None,
    options: FilterOptions | None = None,
) -> np.ndarray:
    """Genes with enough counts to keep: edgeR's ``filterByExpr``.

    A gene is kept when its count per million reaches ``min_count / median(lib_size) *
    1e6`` in at least the minimum group size of samples and its total count reaches
    ``min_total_count`` (both with edgeR's tolerance 1e-14). The minimum group size is
    the smallest group of ``group`` (which takes precedence), else ``1 / max(hat
    values)`` of ``design`` with an intercept prepended (R's ``hat(design)``), else the
    number of samples; above ``large_n`` it becomes ``large_n + (size - large_n) *
    min_prop``.

    Parameters
    ----------
    counts
        Counts, samples × genes; finite and non-negative (need not be integers).
    design
        Design matrix, samples × coefficients.
    group
        Group label of each sample.
    lib_size
        Library size of each sample; defaults to the column sums of ``counts``.
    max_hat
        The largest hat value of the design, when the caller knows it in closed form
        (used instead of ``design``, whose hat values take a QR of the whole design).
    options
        The thresholds (:class:`FilterOptions`, edgeR's defaults).

    Returns
    -------
    Boolean mask over genes, ``True`` to keep.

    Examples
    --------
    >>> import numpy as np
    >>> counts = np.array([[0, 30, 5], [2, 40, 6], [0, 25, 30], [1, 35, 1]])
    >>> filter_by_expr(counts, group=np.array(["a", "a", "b", "b"]))
    array([False,  True, False])
    """
    opts = options or FilterOptions()
    min_count, min_total_count = opts.min_count, opts.min_total_count
    large_n, min_prop = opts.large_n, opts.min_prop
    x = _check_counts(counts)
    n_samples = x.shape[0]
    lib = _check_lib_size(lib_size, x)
    if group is not None:
        g = np.asarray(group)
        if g.shape != (n_samples,):
            raise ValueError(
                f"group must have one label per sample, shape ({n_samples},); found shape {g.shape}"
            )
        if g.dtype.kind == "f" and np.isnan(g).any():
            raise ValueError(
                f"group must not have missing labels; found NaN at samples "
                f"{np.flatnonzero(np.isnan(g))[:5].tolist()}"
            )
        if g.dtype.kind == "O" and any(v is None for v in g):
            raise ValueError(
                "group must not have missing labels; found None at samples "
                f"{[i for i, v in enumerate(g) if v is None][:5]}"
            )
        _, sizes = np.unique(g, return_counts=True)
        min_sample_size = float(sizes[sizes > 0].min())
    elif max_hat is not None:
        if not 0 < max_hat <= 1 + 1e-9:
            raise ValueError(f"max_hat must lie in (0, 1]; found {max_hat}")
        min_sample_size = 1 / max_hat
    elif design is not None:
        d = np.asarray(design)
        if d.ndim != 2 or d.shape[0] != n_samples:
            raise ValueError(
                f"design must be a 2-D array with one row per sample, ({n_samples}, p); "
                f"found shape {d.shape}"
            )
        d = np.asarray(d, dtype=np.float64)
        if not np.isfinite(d).all():
            raise ValueError(
                "design must be finite; found NaN/inf in rows "
                f"{np.flatnonzero(~np.isfinite(d).all(axis=1))[:5].tolist()}"
            )
        min_sample_size = 1 / _hat_max(d)
    else:
        min_sample_size = float(n_samples)
    if min_sample_size > large_n:
        min_sample_size = large_n + (min_sample_size - large_n) * min_prop
    median_lib_size = _r_median(lib)
    cpm_cutoff = min_count / median_lib_size * 1e06
    cpm_values = _cpm_raw(x, lib)
    tol = 1e-14
    keep_cpm = np.sum(cpm_values >= cpm_cutoff, axis=0) >= (min_sample_size - tol)
    keep_total = _r_sums(x, axis=0) >= min_total_count - tol
    return np.asarray(keep_cpm & keep_total, dtype=bool)


def _cpm_raw(x: FloatArray, lib: FloatArray) -> FloatArray:
    """edgeR's C++ ``calculate_cpm_raw``: ``y * (1e6 / lib)``."""
    return x * (1e6 / lib)[:, None]


def cpm(
    counts: np.ndarray,
    *,
    lib_size: np.ndarray | None = None,
    norm_factors: np.ndarray | None = None,
    log: bool = False,
    prior_count: float = 2,
) -> np.ndarray:
    """Counts per million: edgeR's ``cpm``.

    With ``norm_factors``, the library sizes are ``lib_size * norm_factors`` (as
    ``cpm`` of a ``DGEList``). With ``log=True``, edgeR 3.40's ``log2`` CPM: each
    sample's prior count is ``prior_count`` scaled by its library size over the mean
    library size, added to every count and twice to the library size::

        prior_i = prior_count * lib_i / mean(lib)
        log2((y + prior_i) / (lib_i + 2 * prior_i) * 1e6)

    (``NaN`` where ``y + prior_i`` is 0, i.e. only with ``prior_count=0``).

    Parameters
    ----------
    counts
        Counts, samples × genes; finite and non-negative (need not be integers).
    lib_size
        Library size of each sample; defaults to the column sums of ``counts``.
    norm_factors
        Normalization factors (e.g. from :func:`calc_norm_factors`), one per sample.
    log
        Return ``log2`` counts per million.
    prior_count
        Average count added to each observation with ``log=True``.

    Returns
    -------
    Counts per million (or their ``log2``), samples × genes.

    Examples
    --------
    >>> import numpy as np
    >>> counts = np.array([[1.0, 3.0], [0.0, 4.0]])
    >>> cpm(counts)
    array([[ 250000.,  750000.],
           [      0., 1000000.]])
    """
    x = _check_counts(counts)
    if x.size == 0:
        return x.copy()
    lib = _check_lib_size(lib_size, x)
    if norm_factors is not None:
        nf = np.asarray(norm_factors, dtype=np.float64)
        if nf.shape != lib.shape:
            raise ValueError(
                f"norm_factors must have one value per sample, shape {lib.shape}; "
                f"found shape {nf.shape}"
            )
        lib = _check_lib_size(lib * nf, x, what="lib_size * norm_factors")
    if not log:
        return _cpm_raw(x, lib)
    if not (math.isfinite(prior_count) and prior_count >= 0):
        raise ValueError(f"prior_count must be finite and non-negative; found {prior_count!r}")
    # C++ add_prior::compute: std::accumulate (plain double, left to right) / n
    ave_lib = np.cumsum(lib)[-1] / lib.size
    adj_prior = prior_count * lib / ave_lib
    offset = np.log(lib + 2 * adj_prior)
    val = x + adj_prior[:, None]
    pos = val > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (np.log(val) - offset[:, None] + _LN_MILLION) / _LN_TWO
    return np.where(pos, out, np.nan)

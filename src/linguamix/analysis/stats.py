"""Statistical primitives, as pure functions on numbers and arrays."""
from __future__ import annotations

import math

from ..proportions import wilson_interval  # noqa: F401 - the one Wilson interval, re-exported for the analysis


# -- vectorised intervals ----------------------------------------------------------------------------
def wilson_arrays(correct, n, alpha: float = 0.05):
    """Wilson intervals for arrays of counts (statsmodels' `proportion_confint(method='wilson')`).

    Identical to `wilson_interval` element by element; n = 0 gives (nan, nan).
    """
    import numpy as np
    from statsmodels.stats.proportion import proportion_confint

    correct = np.asarray(correct, dtype=float)
    n = np.asarray(n, dtype=float)
    safe_n = np.where(n > 0, n, 1.0)
    lo, hi = proportion_confint(correct, safe_n, alpha=alpha, method="wilson")
    lo = np.where(n > 0, np.clip(lo, 0.0, 1.0), np.nan)
    hi = np.where(n > 0, np.clip(hi, 0.0, 1.0), np.nan)
    return lo, hi


def difference_intervals(correct1, n1, correct2, n2, alpha: float = 0.05):
    """Intervals for p1 - p2 of independent proportions, element-wise over arrays: Newcombe's hybrid
    score interval (the two Wilson intervals combined; statsmodels
    `confint_proportions_2indep(method='newcomb')`). Returns (low, high) arrays; n = 0 gives NaN."""
    import numpy as np
    from statsmodels.stats.proportion import confint_proportions_2indep

    c1, m1, c2, m2 = (np.asarray(v, dtype=float) for v in (correct1, n1, correct2, n2))
    ok = (m1 > 0) & (m2 > 0)
    if not ok.any():
        return np.full(c1.shape, np.nan), np.full(c1.shape, np.nan)
    lo, hi = confint_proportions_2indep(c1, np.where(ok, m1, 1.0), c2, np.where(ok, m2, 1.0), method="newcomb",
                                        compare="diff", alpha=alpha)
    return np.where(ok, lo, np.nan), np.where(ok, hi, np.nan)


# -- bootstrap ---------------------------------------------------------------------------------------
def bootstrap_median(values, *, n_resamples: int = 9999, confidence: float = 0.95,
                     rng=None) -> tuple[float, float, float, str]:
    """Median of `values` with a bootstrap interval: (median, low, high, method).

    `scipy.stats.bootstrap` with BCa; BCa is undefined on degenerate samples (all values equal, or a
    median that never moves) and then returns NaN, so we fall back to the percentile interval, and
    report which method produced the interval. One value: no interval.
    """
    import warnings

    import numpy as np
    from scipy import stats

    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return (math.nan, math.nan, math.nan, "none")
    med = float(np.median(x))
    if x.size == 1:
        return (med, math.nan, math.nan, "none")
    if np.all(x == x[0]):
        return (med, med, med, "degenerate")
    rng = np.random.default_rng(rng)
    for method in ("BCa", "percentile"):
        # Each method gets its own child stream so that the percentile fallback is reproducible too.
        child = np.random.default_rng(rng.integers(2**63))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = _scipy_bootstrap(stats, (x,), np.median, n_resamples=n_resamples, confidence_level=confidence,
                                   method=method, vectorized=True, rng=child)
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if not (math.isnan(lo) or math.isnan(hi)):
            return (med, lo, hi, method)
    return (med, math.nan, math.nan, "none")


def _scipy_bootstrap(stats, data, statistic, *, rng, **kw):
    """`scipy.stats.bootstrap` with a Generator: `rng=` since scipy 1.15, `random_state=` before."""
    try:
        return stats.bootstrap(data, statistic, rng=rng, **kw)
    except TypeError:
        return stats.bootstrap(data, statistic, random_state=rng, **kw)


# -- tests ---------------------------------------------------------------------------------------------
def welch_test_counts(correct1, n1, correct2, n2):
    """Two-sided Welch t-test on per-item 0/1 outcomes given only their counts: (t, p), element-wise.

    The 0/1 vectors are fully described by (correct, n): mean = correct/n and sample variance
    n/(n-1) * p(1-p), so `scipy.stats.ttest_ind_from_stats` reproduces `ttest_ind(a, b, equal_var=False)`.
    Two groups without variance (e.g. 0/250 vs 0/250) give p = 1 if their means are equal, else p = 0.
    Fewer than 2 items in a group: NaN.
    """
    import warnings

    import numpy as np
    from scipy.stats import ttest_ind_from_stats

    c1, m1, c2, m2 = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (correct1, n1, correct2, n2)))
    ok = (m1 >= 2) & (m2 >= 2)
    m1s, m2s = np.where(ok, m1, 2.0), np.where(ok, m2, 2.0)
    p1, p2 = c1 / m1s, c2 / m2s
    sd1 = np.sqrt(p1 * (1 - p1) * m1s / (m1s - 1))
    sd2 = np.sqrt(p2 * (1 - p2) * m2s / (m2s - 1))
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        res = ttest_ind_from_stats(p1, sd1, m1s, p2, sd2, m2s, equal_var=False, alternative="two-sided")
        flat = (sd1 == 0) & (sd2 == 0)
        t = np.where(flat, np.where(p1 == p2, 0.0, np.sign(p1 - p2) * np.inf), res.statistic)
    p = np.where(flat, np.where(p1 == p2, 1.0, 0.0), res.pvalue)
    t, p = np.where(ok, t, np.nan), np.where(ok, p, np.nan)
    return (float(t), float(p)) if t.ndim == 0 else (t, p)


def mcnemar_test(a, b) -> tuple[float, int, int]:
    """Exact McNemar test on paired 0/1 outcomes of the same items: (p, a_only, b_only).

    statsmodels `mcnemar(table, exact=True)` on [[both, a only], [b only, neither]], i.e. a binomial
    test on the discordant pairs; no discordant pairs gives p = 1.
    """
    import numpy as np
    from statsmodels.stats.contingency_tables import mcnemar

    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    table = [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
    a_only, b_only = table[0][1], table[1][0]
    if a_only + b_only == 0:
        return (1.0, 0, 0)
    return (float(mcnemar(table, exact=True).pvalue), a_only, b_only)


def mcnemar_exact(a_only, b_only):
    """Exact McNemar p-values from discordant counts, element-wise: 2 * P(Binomial(a+b, 1/2) <= min(a, b)),
    capped at 1 (what statsmodels' `mcnemar(exact=True)` computes); no discordant pair gives p = 1."""
    import numpy as np
    from scipy.stats import binom

    a, b = np.broadcast_arrays(np.asarray(a_only, dtype=float), np.asarray(b_only, dtype=float))
    n = a + b
    p = np.where(n > 0, np.minimum(1.0, 2 * binom.cdf(np.minimum(a, b), np.where(n > 0, n, 1), 0.5)), 1.0)
    return float(p) if p.ndim == 0 else p


# -- regression ----------------------------------------------------------------------------------------
def ols_bootstrap(X, y, *, n_resamples: int = 2000, confidence: float = 0.95, rng=None):
    """Percentile-bootstrap intervals of OLS coefficients, resampling rows (instances) with replacement.

    Returns (low, high) arrays, one entry per column of X. A resample whose design is rank deficient
    (it can happen with rare indicator columns) is solved by least squares like any other.
    """
    import numpy as np

    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    rng = np.random.default_rng(rng)
    n = len(y)
    coefs = np.empty((n_resamples, X.shape[1]))
    # Resamples in blocks, each solved through its normal equations as one batched pseudo-inverse (the
    # minimum-norm least-squares solution, as lstsq gives, also for a rank-deficient resample).
    for start in range(0, n_resamples, 256):
        stop = min(n_resamples, start + 256)
        idx = rng.integers(0, n, (stop - start, n))
        w = np.bincount((idx + n * np.arange(stop - start)[:, None]).ravel(),
                        minlength=(stop - start) * n).reshape(stop - start, n).astype(float)
        wx = w[:, :, None] * X  # resample x row x feature
        xtx = wx.transpose(0, 2, 1) @ X
        xty = wx.transpose(0, 2, 1) @ y
        coefs[start:stop] = np.einsum("bij,bj->bi", np.linalg.pinv(xtx, hermitian=True), xty)
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(coefs, [tail, 1 - tail], axis=0)
    return lo, hi


def r2_score(y, y_hat) -> float:
    """Coefficient of determination of predictions y_hat for y (1 - SSE/SST around y's own mean)."""
    import numpy as np

    y = np.asarray(y, dtype=float)
    sst = float(np.sum((y - y.mean()) ** 2))
    if sst == 0:
        return math.nan
    return 1.0 - float(np.sum((y - np.asarray(y_hat, dtype=float)) ** 2)) / sst

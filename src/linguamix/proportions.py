"""The binomial proportion interval every stored accuracy carries (95 % Wilson), here rather than in
`analysis/` because evaluation writes it into each run's summary before any analysis runs; the analysis
reuses it (`analysis.stats`)."""
from __future__ import annotations

import math
from statistics import NormalDist


def wilson_interval(correct: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (= statsmodels proportion_confint(method='wilson')).

    n = 0 gives (nan, nan): no data, no interval.
    """
    if n <= 0:
        return (math.nan, math.nan)
    z = NormalDist().inv_cdf(1 - alpha / 2)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if correct == 0 else max(0.0, centre - half)  # exact ends, not 5.55e-17 from rounding
    hi = 1.0 if correct == n else min(1.0, centre + half)
    return (lo, hi)

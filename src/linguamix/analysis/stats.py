"""Statistical primitives, as pure functions on numbers and arrays."""
from __future__ import annotations

import math


def wilson_interval(correct: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (= statsmodels proportion_confint(method='wilson')).

    n = 0 gives (nan, nan): no data, no interval.
    """
    if n <= 0:
        return (math.nan, math.nan)
    from scipy.stats import norm

    z = float(norm.ppf(1 - alpha / 2))
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))

"""The pooled regression over evaluation instances (paper section 4.4, Table 3)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..mixtures import PRETRAINED, languages_of
from .stats import ols_bootstrap, r2_score

FEATURES = ("log10_model_size", "qwen_family", "math_task", "pretrained_only", "eval_lang_in_training",
            "sqrt_L_over_Lmax")
"""Regressors of the pooled regression (paper Table 3), in the paper's order; plus an intercept."""


# -- 6. pooled regression (Table 3) ----------------------------------------------------------------------
def regression_features(df: pd.DataFrame, *, l_max: int | None = None) -> pd.DataFrame:
    """The six regressors of Table 3, one row per evaluation instance (row of `df`).

    qwen_family = family starts with "qwen"; math_task = task is math; pretrained_only = the base model;
    eval_lang_in_training = the evaluation language is one of the training languages;
    sqrt_L_over_Lmax = sqrt(n_train_langs / Lmax), Lmax = the largest n_train_langs in `df` unless given.
    """
    l_max = int(df["n_train_langs"].max()) if l_max is None else l_max
    pairs = pd.Series(list(zip(df["eval_lang"], df["train_langs"].fillna(""))), index=df.index)
    in_training = {pair: float(pair[0] in languages_of(pair[1])) for pair in set(pairs)}  # few distinct pairs
    return pd.DataFrame({
        "log10_model_size": np.log10(df["size_b"].astype(float)),
        "qwen_family": df["family"].str.lower().str.startswith("qwen").astype(float),
        "math_task": (df["task"] == "math").astype(float),
        "pretrained_only": (df["mixture"] == PRETRAINED).astype(float),
        "eval_lang_in_training": pairs.map(in_training).astype(float),
        "sqrt_L_over_Lmax": np.sqrt(df["n_train_langs"] / l_max) if l_max > 0 else 0.0 * df["n_train_langs"],
    }, index=df.index)


@dataclass(frozen=True)
class Regression:
    coefficients: pd.DataFrame
    """feature, coef, ci_low, ci_high (intercept first, then FEATURES); NaN for a feature left out."""
    info: dict
    """n_train, n_test, r2_in_sample, r2_out_of_sample, l_max, seed, n_resamples, dropped, ... (JSON-able)."""


def pooled_regression(df: pd.DataFrame, *, seed: int = 0, train_fraction: float = 0.7,
                      n_resamples: int = 2000) -> Regression:
    """OLS of instance accuracy (0-1) on the Table 3 features, fit on a random `train_fraction` of the
    instances (seeded permutation of the canonically sorted rows), with percentile-bootstrap 95 % CIs from
    resampling training instances, and R^2 on the held-out rest.

    A feature that is constant in the training split, or a linear combination of the others (e.g. family
    and size with a single model per family), cannot be estimated: it is left out of the fit and reported
    with NaN, and `info["dropped"]` names it.
    """
    import statsmodels.api as sm

    rng = np.random.default_rng(seed)
    y_all = (df["correct"] / df["n"]).to_numpy(dtype=float)
    X_all = regression_features(df)
    n = len(df)
    n_train = int(round(train_fraction * n))
    perm = rng.permutation(n)
    train, test = np.sort(perm[:n_train]), np.sort(perm[n_train:])
    Xtr = X_all.iloc[train]
    kept: list[str] = []
    for f in FEATURES:  # keep a feature only if it adds a dimension (in Table 3's order)
        cols = np.column_stack([np.ones(len(Xtr))] + [Xtr[c].to_numpy() for c in kept + [f]])
        if np.linalg.matrix_rank(cols) == cols.shape[1]:
            kept.append(f)
    dropped = [f for f in FEATURES if f not in kept]
    design = sm.add_constant(Xtr[kept].to_numpy(), has_constant="add")
    fit = sm.OLS(y_all[train], design).fit()
    lo, hi = ols_bootstrap(design, y_all[train], n_resamples=n_resamples, rng=rng)
    names = ["intercept"] + kept
    est = dict(zip(names, zip(fit.params, lo, hi)))
    rows = [{"feature": f, **dict(zip(("coef", "ci_low", "ci_high"), est.get(f, (math.nan,) * 3)))}
            for f in ["intercept", *FEATURES]]
    r2_out = math.nan
    if len(test) >= 2:
        Xte = sm.add_constant(X_all.iloc[test][kept].to_numpy(), has_constant="add")
        r2_out = r2_score(y_all[test], fit.predict(Xte))
    info = {"n_instances": n, "n_train": int(len(train)), "n_test": int(len(test)), "train_fraction": train_fraction,
            "r2_in_sample": r2_score(y_all[train], fit.fittedvalues), "r2_out_of_sample": r2_out,
            "l_max": int(df["n_train_langs"].max()), "seed": seed, "n_resamples": n_resamples,
            "ci_method": "percentile bootstrap over training instances", "target": "accuracy (0-1) per instance",
            "dropped": dropped}
    return Regression(pd.DataFrame(rows, columns=["feature", "coef", "ci_low", "ci_high"]), info)

"""The paper's analyses (section 4, appendices B-D) as functions from a validated results table to tables.

Conventions, the same in every output:

* accuracies and their intervals are proportions in [0, 1] (`accuracy`, `ci_low`, `ci_high`), computed from
  pooled counts (sum of correct / sum of n) with 95 % Wilson intervals;
* differences of accuracies are in percentage points (columns ending in `_pts`, and `median_delta`);
* every estimate carries the number of units behind it (`n` items, or `n`/`total` comparisons).

The reference language of the "English-only" and "bilingual en+X" comparisons is a parameter
(`reference`, default `en`); everything else about a language comes from the language table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import languages
from ..mixtures import PRETRAINED
from .stats import (bootstrap_median, difference_intervals, mcnemar_test, ols_bootstrap, r2_score, welch_test_counts,
                    wilson_arrays)

REFERENCE = "en"
SETTINGS = ("en", "direct", "cross_lingual")
"""Evaluation settings of the bilingual-vs-English-only comparison (paper Fig. 3, Table 2)."""
FEATURES = ("log10_model_size", "qwen_family", "math_task", "pretrained_only", "eval_lang_in_training",
            "sqrt_L_over_Lmax")
"""Regressors of the pooled regression (paper Table 3), in the paper's order; plus an intercept."""
VERDICTS = ("above", "indistinguishable", "below")


def _with_wilson(df: pd.DataFrame, correct: str = "correct", n: str = "n", prefix: str = "") -> pd.DataFrame:
    lo, hi = wilson_arrays(df[correct].to_numpy(), df[n].to_numpy())
    df[f"{prefix}accuracy"] = df[correct] / df[n]
    df[f"{prefix}ci_low"] = lo
    df[f"{prefix}ci_high"] = hi
    return df


def model_order(df: pd.DataFrame) -> list[str]:
    """Models by family, then size."""
    m = df[["model", "family", "size_b"]].drop_duplicates().sort_values(["family", "size_b", "model"])
    return m["model"].tolist()


def lang_order(codes) -> list[str]:
    order = {lang.code: i for i, lang in enumerate(languages.all_languages())}
    return sorted(set(codes), key=order.__getitem__)


# -- 1. scaling (Fig. 2, 8) --------------------------------------------------------------------------------
def scaling(df: pd.DataFrame) -> pd.DataFrame:
    """Accuracy by model x task x number of training languages, per resource group and per language.

    `level` = `resource` (group = high/low, from the language table) or `language` (group = the code).
    Accuracy pools the items of every mixture with that many languages and every language of the group;
    `n_configs` counts the (mixture, language) cells pooled. The pretrained model is the row with
    n_train_langs = 0.
    """
    d = df.assign(resource=df["eval_lang"].map(languages.resource_group))
    keys = ["family", "model", "size_b", "task", "n_train_langs"]
    parts = []
    for level, col in (("resource", "resource"), ("language", "eval_lang")):
        g = (d.groupby(keys + [col], sort=False)
             .agg(n_configs=("n", "size"), n=("n", "sum"), correct=("correct", "sum")).reset_index()
             .rename(columns={col: "group"}))
        g.insert(4, "level", level)
        parts.append(g)
    out = _with_wilson(pd.concat(parts, ignore_index=True))
    order = {m: i for i, m in enumerate(model_order(df))}
    group_order = {g: i for i, g in enumerate(["high", "low"] + lang_order(df["eval_lang"]))}
    out = (out.assign(_m=out["model"].map(order), _g=out["group"].map(group_order))
           .sort_values(["_m", "task", "level", "_g", "n_train_langs"], kind="mergesort")
           .drop(columns=["_m", "_g"]).reset_index(drop=True))
    return out[["family", "model", "size_b", "task", "level", "group", "n_train_langs", "n_configs", "n", "correct",
                "accuracy", "ci_low", "ci_high"]]


# -- 2./3. bilingual vs English-only (Fig. 3, Table 2) ----------------------------------------------------
def bilingual_comparisons(df: pd.DataFrame, *, reference: str = REFERENCE) -> pd.DataFrame:
    """Every (model, task, bilingual mixture reference+X, eval language) against the reference-only model.

    setting: `en` (eval on the reference language), `direct` (eval on X), `cross_lingual` (any other).
    delta_pts = 100 * (accuracy(bilingual) - accuracy(reference only)), with Newcombe's interval.
    """
    cols = ["model", "family", "size_b", "task", "mixture", "added_lang", "eval_lang", "setting",
            "n_ref", "correct_ref", "accuracy_ref", "n_bi", "correct_bi", "accuracy_bi", "delta_pts",
            "ci_low_pts", "ci_high_pts", "win"]
    ref = df[df["mixture"] == reference][["model", "task", "eval_lang", "n", "correct"]]
    bi = df[(df["n_train_langs"] == 2) & df["train_langs"].str.split("+").map(lambda c: reference in c)].copy()
    if bi.empty or ref.empty:
        return pd.DataFrame(columns=cols)
    bi["added_lang"] = bi["train_langs"].str.split("+").map(lambda c: next(x for x in c if x != reference))
    m = bi.merge(ref, on=["model", "task", "eval_lang"], suffixes=("_bi", "_ref"))
    m["setting"] = np.select([m["eval_lang"] == reference, m["eval_lang"] == m["added_lang"]],
                             ["en", "direct"], "cross_lingual")
    m["accuracy_ref"] = m["correct_ref"] / m["n_ref"]
    m["accuracy_bi"] = m["correct_bi"] / m["n_bi"]
    m["delta_pts"] = 100 * (m["accuracy_bi"] - m["accuracy_ref"])
    lo, hi = difference_intervals(m["correct_bi"], m["n_bi"], m["correct_ref"], m["n_ref"])
    m["ci_low_pts"], m["ci_high_pts"] = 100 * lo, 100 * hi
    m["win"] = m["accuracy_bi"] > m["accuracy_ref"]  # strictly higher; a tie is not a win
    order = {mo: i for i, mo in enumerate(model_order(df))}
    lorder = {c: i for i, c in enumerate(lang_order(df["eval_lang"]))}
    m = (m.assign(_m=m["model"].map(order), _a=m["added_lang"].map(lorder), _e=m["eval_lang"].map(lorder))
         .sort_values(["_m", "task", "_a", "_e"], kind="mergesort").reset_index(drop=True))
    return m[cols]


def bilingual_deltas(comparisons: pd.DataFrame, *, n_resamples: int = 9999, rng=None) -> pd.DataFrame:
    """Median delta (percentage points) per task and setting, with a 95 % bootstrap CI over comparisons.

    `n` = comparisons (model x bilingual mixture x eval language) behind the median. `ci_method` says
    whether the interval is BCa or the percentile fallback (BCa is undefined on degenerate samples).
    """
    rng = np.random.default_rng(rng)
    rows = []
    for task in sorted(comparisons["task"].unique()):
        for setting in SETTINGS:
            x = comparisons.loc[(comparisons["task"] == task) & (comparisons["setting"] == setting), "delta_pts"]
            if x.empty:
                continue
            med, lo, hi, method = bootstrap_median(x.to_numpy(), n_resamples=n_resamples, rng=rng)
            rows.append({"task": task, "setting": setting, "median_delta": med, "ci_low": lo, "ci_high": hi,
                         "n": int(len(x)), "ci_method": method})
    return pd.DataFrame(rows, columns=["task", "setting", "median_delta", "ci_low", "ci_high", "n", "ci_method"])


def win_rates(comparisons: pd.DataFrame, *, by_task: bool = False) -> pd.DataFrame:
    """Share of comparisons where bilingual training is strictly more accurate, with Wilson intervals.

    Pooled over tasks and models (paper Table 2); `by_task=True` adds a `task` column and splits.
    """
    keys = (["task"] if by_task else []) + ["setting"]
    cols = keys + ["wins", "total", "win_rate", "ci_low", "ci_high"]
    if comparisons.empty:
        return pd.DataFrame(columns=cols)
    g = (comparisons.groupby(keys, sort=False).agg(wins=("win", "sum"), total=("win", "size")).reset_index())
    g["wins"] = g["wins"].astype(int)
    g["win_rate"] = g["wins"] / g["total"]
    g["ci_low"], g["ci_high"] = wilson_arrays(g["wins"].to_numpy(), g["total"].to_numpy())
    g = g.assign(_s=g["setting"].map({s: i for i, s in enumerate(SETTINGS)})).sort_values(
        keys[:-1] + ["_s"], kind="mergesort")
    return g[cols].reset_index(drop=True)


# -- 4. zero-shot vs direct exposure (Fig. 4, 9) ------------------------------------------------------------
def zero_shot_vs_direct(df: pd.DataFrame, predictions: pd.DataFrame | None = None, *, ks=(4, 6, 9),
                        reference: str = REFERENCE, alpha: float = 0.05, test: str = "welch") -> pd.DataFrame:
    """For each model, task, evaluation language X and diversity k: the k-language mixtures without X
    (zero-shot) against direct exposure (the bilingual reference+X mixture; for X = reference, the
    reference-only model). Languages without a direct mixture (e.g. an unseen language) are skipped.

    Tests (two-sided, at `alpha`):
    * `welch`: Welch's t-test on the per-item 0/1 outcomes, computed from counts (the paper's "two-sided
      t-test"; it treats the two item sets as independent);
    * `mcnemar`: exact McNemar test on the same items, paired by item_id; needs per-item predictions and
      a single zero-shot mixture. Always reported when possible (`p_mcnemar`).
    `test` picks which one decides `verdict` (`mcnemar` falls back to `welch` where it cannot be computed;
    the `test` column records what was used). Several zero-shot mixtures in one cell are pooled.
    """
    if test not in ("welch", "mcnemar"):
        raise ValueError(f"unknown test {test!r} (welch or mcnemar)")
    cols = ["model", "family", "size_b", "task", "eval_lang", "resource", "lang_group", "k", "zero_shot_mixtures",
            "direct_mixture", "n_zero_shot", "correct_zero_shot", "accuracy_zero_shot", "ci_low_zero_shot",
            "ci_high_zero_shot", "n_direct", "correct_direct", "accuracy_direct", "ci_low_direct", "ci_high_direct",
            "delta_pts", "test", "p_value", "p_welch", "p_mcnemar", "zero_shot_only", "direct_only", "verdict"]
    trained = df[df["mixture"] != PRETRAINED]
    langs = trained["train_langs"].str.split("+")
    direct_id = trained["eval_lang"].map(lambda x: reference if x == reference else "+".join(sorted((reference, x))))
    direct = trained[trained["mixture"] == direct_id][["model", "task", "eval_lang", "mixture", "n", "correct"]]
    excluded = [x not in ls for x, ls in zip(trained["eval_lang"], langs)]
    zs = trained[trained["n_train_langs"].isin(ks) & np.asarray(excluded, dtype=bool)]
    if zs.empty or direct.empty:
        return pd.DataFrame(columns=cols)
    z = (zs.groupby(["model", "family", "size_b", "task", "eval_lang", "n_train_langs"], sort=False)
         .agg(zero_shot_mixtures=("mixture", ";".join), n_zero_shot=("n", "sum"),
              correct_zero_shot=("correct", "sum")).reset_index().rename(columns={"n_train_langs": "k"}))
    out = z.merge(direct.rename(columns={"mixture": "direct_mixture", "n": "n_direct", "correct": "correct_direct"}),
                  on=["model", "task", "eval_lang"])
    if out.empty:
        return pd.DataFrame(columns=cols)
    out["resource"] = out["eval_lang"].map(languages.resource_group)
    out["lang_group"] = np.where(out["eval_lang"] == reference, reference, out["resource"])
    for side in ("zero_shot", "direct"):
        lo, hi = wilson_arrays(out[f"correct_{side}"], out[f"n_{side}"])
        out[f"accuracy_{side}"] = out[f"correct_{side}"] / out[f"n_{side}"]
        out[f"ci_low_{side}"], out[f"ci_high_{side}"] = lo, hi
    out["delta_pts"] = 100 * (out["accuracy_zero_shot"] - out["accuracy_direct"])
    out["p_welch"] = welch_test_counts(out["correct_zero_shot"], out["n_zero_shot"], out["correct_direct"],
                                       out["n_direct"])[1]
    out["p_mcnemar"], out["zero_shot_only"], out["direct_only"] = _mcnemar_columns(out, predictions)
    use_mc = (test == "mcnemar") & out["p_mcnemar"].notna()
    out["test"] = np.where(use_mc, "mcnemar", "welch")
    out["p_value"] = np.where(use_mc, out["p_mcnemar"], out["p_welch"])
    out["verdict"] = np.select([~(out["p_value"] < alpha), out["delta_pts"] > 0], ["indistinguishable", "above"],
                               "below")
    order = {m: i for i, m in enumerate(model_order(df))}
    lorder = {c: i for i, c in enumerate(lang_order(df["eval_lang"]))}
    out = (out.assign(_m=out["model"].map(order), _e=out["eval_lang"].map(lorder))
           .sort_values(["_m", "task", "k", "_e"], kind="mergesort").reset_index(drop=True))
    return out[cols]


def _mcnemar_columns(cases: pd.DataFrame, predictions: pd.DataFrame | None):
    """(p, zero-shot-only correct, direct-only correct) per case; NaN without paired item predictions."""
    p = np.full(len(cases), np.nan)
    a_only = np.full(len(cases), np.nan)
    b_only = np.full(len(cases), np.nan)
    if predictions is None:
        return p, a_only, b_only
    rows = predictions.groupby(["model", "task", "mixture", "eval_lang"], sort=False).indices
    items = predictions["item_id"].to_numpy()
    correct = predictions["correct"].to_numpy(dtype=bool)
    for i, c in enumerate(cases.itertuples(index=False)):
        if ";" in c.zero_shot_mixtures:
            continue  # pooled mixtures: no one-to-one pairing of items
        ia = rows.get((c.model, c.task, c.zero_shot_mixtures, c.eval_lang))
        ib = rows.get((c.model, c.task, c.direct_mixture, c.eval_lang))
        if ia is None or ib is None:
            continue
        # Pair the two evaluations by item id (only items scored in both count).
        common, pa, pb = np.intersect1d(items[ia], items[ib], return_indices=True)
        if len(common):
            p[i], a_only[i], b_only[i] = mcnemar_test(correct[ia][pa], correct[ib][pb])
    return p, a_only, b_only


def zero_shot_summary(zs: pd.DataFrame, *, reference: str = REFERENCE) -> pd.DataFrame:
    """Share of cases where zero-shot is indistinguishable from or above direct exposure (paper §4.3).

    Grouped by scope (`all` models, or `largest` = the largest model of each family, as in Fig. 4),
    language group (the reference language; non-reference `high`/`low` resource), k and task (`all` pools
    tasks). Shares carry Wilson intervals over cases.
    """
    cols = ["scope", "lang_group", "k", "task", "cases", "above", "indistinguishable", "below",
            "share_not_below", "ci_low", "ci_high"]
    if zs.empty:
        return pd.DataFrame(columns=cols)
    largest = zs["size_b"] == zs.groupby("family")["size_b"].transform("max")
    parts = []
    for scope, sub in (("all", zs), ("largest", zs[largest])):
        for task_col in ("all", "task"):
            s = sub.assign(scope=scope, task=sub["task"] if task_col == "task" else "all")
            counts = pd.crosstab([s["scope"], s["lang_group"], s["k"], s["task"]], s["verdict"])
            parts.append(counts.reindex(columns=list(VERDICTS), fill_value=0).reset_index())
    out = pd.concat(parts, ignore_index=True)
    out.columns.name = None
    out["cases"] = out[list(VERDICTS)].sum(axis=1)
    group_order = {g: i for i, g in enumerate([reference, "high", "low"])}
    out = (out.assign(_g=out["lang_group"].map(group_order), _t=out["task"] != "all")
           .sort_values(["scope", "_g", "k", "_t", "task"], kind="mergesort").reset_index(drop=True))
    ok = out["above"] + out["indistinguishable"]
    out["share_not_below"] = ok / out["cases"]
    out["ci_low"], out["ci_high"] = wilson_arrays(ok.to_numpy(), out["cases"].to_numpy())
    for c in ("k", "cases", *VERDICTS):
        out[c] = out[c].astype(int)
    return out[cols]


# -- 5. heatmaps (Fig. 7) --------------------------------------------------------------------------------
def finetuning_gain(df: pd.DataFrame) -> list[dict]:
    """Per task: the pretrained model's and the fine-tuned models' pooled accuracy on the languages the
    fine-tuned models were trained on (the baseline counted on those same evaluation languages)."""
    rows = []
    for task, sub in df.groupby("task", sort=True):
        base = sub[sub["mixture"] == PRETRAINED]
        tuned = sub[sub["mixture"] != PRETRAINED]
        tuned = tuned[[e in t.split("+") for e, t in zip(tuned["eval_lang"], tuned["train_langs"])]]
        base = base[base["eval_lang"].isin(tuned["eval_lang"])]
        if tuned.empty or base.empty:
            continue
        n, c, bn, bc = int(tuned["n"].sum()), int(tuned["correct"].sum()), int(base["n"].sum()), int(base["correct"].sum())
        rows.append({"task": task, "pretrained_acc": bc / bn, "pretrained_n": bn, "finetuned_acc": c / n,
                     "finetuned_n": n, "gain_points": round(100 * (c / n - bc / bn), 1)})
    return rows


def heatmap_deltas(df: pd.DataFrame, *, reference: str = REFERENCE) -> pd.DataFrame:
    """Accuracy change vs the pretrained model for reference-only and bilingual reference+X training:
    one row per model x task x source mixture x evaluation language (delta in points, Newcombe interval)."""
    cols = ["family", "model", "size_b", "task", "mixture", "eval_lang", "n", "correct", "accuracy",
            "n_pretrained", "correct_pretrained", "accuracy_pretrained", "delta_pts", "ci_low_pts", "ci_high_pts"]
    pre = df[df["mixture"] == PRETRAINED][["model", "task", "eval_lang", "n", "correct"]]
    src = df[(df["mixture"] == reference) | ((df["n_train_langs"] == 2)
                                             & df["train_langs"].str.split("+").map(lambda c: reference in c))]
    if pre.empty or src.empty:
        return pd.DataFrame(columns=cols)
    m = src.merge(pre, on=["model", "task", "eval_lang"], suffixes=("", "_pretrained"))
    m["accuracy"] = m["correct"] / m["n"]
    m["accuracy_pretrained"] = m["correct_pretrained"] / m["n_pretrained"]
    m["delta_pts"] = 100 * (m["accuracy"] - m["accuracy_pretrained"])
    lo, hi = difference_intervals(m["correct"], m["n"], m["correct_pretrained"], m["n_pretrained"])
    m["ci_low_pts"], m["ci_high_pts"] = 100 * lo, 100 * hi
    order = {mo: i for i, mo in enumerate(model_order(df))}
    lorder = {c: i for i, c in enumerate(lang_order(df["eval_lang"]))}
    added = m["train_langs"].str.split("+").map(lambda c: max((lorder.get(x, -1) for x in c if x != reference),
                                                                default=-1))
    m = (m.assign(_m=m["model"].map(order), _src=added, _e=m["eval_lang"].map(lorder))
         .sort_values(["_m", "task", "_src", "_e"], kind="mergesort").reset_index(drop=True))
    return m[cols]


# -- 6. pooled regression (Table 3) ----------------------------------------------------------------------
def regression_features(df: pd.DataFrame, *, l_max: int | None = None) -> pd.DataFrame:
    """The six regressors of Table 3, one row per evaluation instance (row of `df`).

    qwen_family = family starts with "qwen"; math_task = task is math; pretrained_only = the base model;
    eval_lang_in_training = the evaluation language is one of the training languages;
    sqrt_L_over_Lmax = sqrt(n_train_langs / Lmax), Lmax = the largest n_train_langs in `df` unless given.
    """
    l_max = int(df["n_train_langs"].max()) if l_max is None else l_max
    trained = df["train_langs"].fillna("").str.split("+")
    return pd.DataFrame({
        "log10_model_size": np.log10(df["size_b"].astype(float)),
        "qwen_family": df["family"].str.lower().str.startswith("qwen").astype(float),
        "math_task": (df["task"] == "math").astype(float),
        "pretrained_only": (df["mixture"] == PRETRAINED).astype(float),
        "eval_lang_in_training": [float(e in t) for e, t in zip(df["eval_lang"], trained)],
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

"""The paper's analyses (section 4, appendices B-D) as functions from a validated results table to tables.

Conventions, the same in every output:

* accuracies and their intervals are proportions in [0, 1] (`accuracy`, `ci_low`, `ci_high`), computed from
  pooled counts (sum of correct / sum of n) with 95 % Wilson intervals;
* differences of accuracies are in percentage points (columns ending in `_pts`, and `median_delta`);
* every estimate carries the number of units behind it (`n` items, or `n`/`total` comparisons);
* given a `ClusterBootstrap` (`boot=`), pooled accuracies and differences also carry the cluster-aware
  interval (`ci_low_cluster`, `ci_high_cluster`, `cluster_method`; linguamix.analysis.clusters), and
  paired comparisons a paired test (`p_paired`, `paired_test`) beside the paper's Welch test (`p_welch`).

The reference language of the "English-only" and "bilingual en+X" comparisons is a parameter
(`reference`, default `en`); everything else about a language comes from the language table.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import languages
from ..mixtures import PRETRAINED, label, languages_of
from .clusters import ClusterBootstrap, percentile
from .regression import FEATURES, Regression, pooled_regression, regression_features  # noqa: F401 (re-exported)
from .stats import bootstrap_median, difference_intervals, welch_test_counts, wilson_arrays

REFERENCE = "en"
SETTINGS = ("en", "direct", "cross_lingual")
"""Evaluation settings of the bilingual-vs-English-only comparison (paper Fig. 3, Table 2)."""
VERDICTS = ("above", "indistinguishable", "below")
ENGLISH_DIRECT = ("english-only", "bilingual-mean")
"""What "direct exposure" means for the reference language in the zero-shot analysis (paper ambiguous)."""


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


def _positions(frame: pd.DataFrame, keys: list[str], agg: pd.DataFrame) -> list[np.ndarray]:
    """For each row of `agg` (frame grouped by `keys`), the `_pos` values of its group's rows."""
    codes = frame.groupby(keys, sort=False).ngroup().to_numpy()  # group numbers in first-seen order,
    order = np.argsort(codes, kind="stable")                      # which is agg's row order (sort=False)
    parts = np.split(frame["_pos"].to_numpy()[order], np.flatnonzero(np.diff(codes[order])) + 1)
    return parts[:len(agg)] if len(frame) else []


def _cells(boot: ClusterBootstrap, df: pd.DataFrame, groups) -> list[np.ndarray]:
    """The evaluation cells (all seeds) behind each group of `df` row positions."""
    per_row = boot.ev.lookup(df)
    return [np.concatenate([per_row[i] for i in rows]) if len(rows) else np.zeros(0, np.int64) for rows in groups]


def _accuracy_intervals(boot: ClusterBootstrap, cells: list[np.ndarray]) -> dict[str, list]:
    """Cluster-aware 95 % intervals of pooled accuracies, with what they resampled.

    A bootstrap cannot widen an interval without variation to resample (e.g. 0 of every item correct):
    such a degenerate interval falls back to the Wilson interval on the distinct items (each counted once).
    """
    reps = boot.accuracies(cells)
    lo, hi = percentile(reps)
    method = [boot.describe(c) for c in cells]
    n_items = np.array([boot.n_items(c) for c in cells])
    flat = np.flatnonzero(lo == hi)
    if len(flat):
        acc = np.array([boot.point(cells[i]) for i in flat])
        lo[flat], hi[flat] = wilson_arrays(np.round(acc * n_items[flat]), n_items[flat])
        for i in flat:
            method[i] = "wilson-distinct-items"
    return {"ci_low_cluster": list(lo), "ci_high_cluster": list(hi), "cluster_method": method,
            "n_runs": [boot.n_runs(c) for c in cells], "n_items": list(n_items)}


def _paired(boot: ClusterBootstrap, a: list[np.ndarray], b: list[np.ndarray]) -> dict[str, list]:
    """Cluster-aware 95 % interval of accuracy(a) - accuracy(b) in points, and the paired test; a degenerate
    interval (nothing varies) falls back to Newcombe's on the distinct items."""
    reps = boot.differences(a, b)
    lo, hi = percentile(reps)
    p, test, a_only, b_only = boot.paired_tests(a, b, reps)
    method = [boot.describe(ia) + " vs " + boot.describe(ib) for ia, ib in zip(a, b)]
    flat = np.flatnonzero(lo == hi)
    if len(flat):
        na = np.array([boot.n_items(a[i]) for i in flat])
        nb = np.array([boot.n_items(b[i]) for i in flat])
        ka = np.round(np.array([boot.point(a[i]) for i in flat]) * na)
        kb = np.round(np.array([boot.point(b[i]) for i in flat]) * nb)
        lo[flat], hi[flat] = difference_intervals(ka, na, kb, nb)
        for i in flat:
            method[i] = "newcombe-distinct-items"
    return {"ci_low_cluster_pts": list(100 * lo), "ci_high_cluster_pts": list(100 * hi), "p_paired": list(p),
            "paired_test": list(test), "a_only": list(a_only), "b_only": list(b_only), "cluster_method": method}


def _verdict(p, delta, alpha: float, positive: str = "above", negative: str = "below") -> np.ndarray:
    """Significant at alpha in the direction of delta, else indistinguishable (NaN p: NaN verdict)."""
    p, delta = np.asarray(p, dtype=float), np.asarray(delta, dtype=float)
    v = np.select([~(p < alpha), delta > 0], ["indistinguishable", positive], negative).astype(object)
    v[np.isnan(p)] = None
    return v


def seed_spread(ev) -> pd.DataFrame:
    """Seed-to-seed spread of every evaluation cell: n_seeds, pooled accuracy, SD / min / max over seeds."""
    c = ev.cells.assign(acc=ev.cells["correct"] / ev.cells["n"])
    g = (c.groupby(["model", "task", "mixture", "eval_lang"], sort=False)
         .agg(n_seeds=("seed", "nunique"), n=("n", "sum"), correct=("correct", "sum"), seed_sd=("acc", "std"),
              seed_min=("acc", "min"), seed_max=("acc", "max")).reset_index())
    g.insert(6, "accuracy", g["correct"] / g["n"])
    g.loc[g["n_seeds"] < 2, ["seed_sd", "seed_min", "seed_max"]] = np.nan
    return g


def _seed_sd(boot: ClusterBootstrap, cells: list[np.ndarray]) -> list[float]:
    """SD over seeds of a group's pooled accuracy (each seed's runs pooled on their own); NaN below 2 seeds."""
    seed = boot.ev.cells["seed"].to_numpy()
    n = boot.ev.cells["n"].to_numpy(dtype=float)
    k = boot.ev.cells["correct"].to_numpy(dtype=float)
    out = []
    for idx in cells:
        accs = [k[idx][seed[idx] == s].sum() / n[idx][seed[idx] == s].sum() for s in np.unique(seed[idx])]
        out.append(float(np.std(accs, ddof=1)) if len(accs) >= 2 else math.nan)
    return out


# -- 1. scaling (Fig. 2, 8) --------------------------------------------------------------------------------
def scaling(df: pd.DataFrame, boot: ClusterBootstrap | None = None) -> pd.DataFrame:
    """Accuracy by model x task x number of training languages, per resource group and per language.

    `level` = `resource` (group = high/low, from the language table) or `language` (group = the code).
    Accuracy pools the items of every mixture with that many languages and every language of the group;
    `n_configs` counts the (mixture, language) cells pooled. The pretrained model is the row with
    n_train_langs = 0. `ci_low`/`ci_high`: the paper's pooled Wilson interval; with `boot`, also the
    cluster-aware interval, `n_runs` (runs pooled), `n_items` (distinct items) and `seed_sd` (SD over seeds).
    """
    d = df.assign(resource=df["eval_lang"].map(languages.resource_group))
    keys = ["family", "model", "size_b", "task", "n_train_langs"]
    parts = []
    for level, col in (("resource", "resource"), ("language", "eval_lang")):
        grouped = d.groupby(keys + [col], sort=False)
        g = (grouped.agg(n_configs=("n", "size"), n=("n", "sum"), correct=("correct", "sum")).reset_index()
             .rename(columns={col: "group"}))
        g.insert(4, "level", level)
        if boot is not None:
            rows = grouped.indices  # keyed by group; the aggregate's row order may differ
            cells = _cells(boot, df, [rows[k] for k in zip(*(g[c] for c in keys), g["group"])])
            for k, v in {**_accuracy_intervals(boot, cells), "seed_sd": _seed_sd(boot, cells)}.items():
                g[k] = v
        parts.append(g)
    out = _with_wilson(pd.concat(parts, ignore_index=True))
    order = {m: i for i, m in enumerate(model_order(df))}
    group_order = {g: i for i, g in enumerate(["high", "low"] + lang_order(df["eval_lang"]))}
    out = (out.assign(_m=out["model"].map(order), _g=out["group"].map(group_order))
           .sort_values(["_m", "task", "level", "_g", "n_train_langs"], kind="mergesort")
           .drop(columns=["_m", "_g"]).reset_index(drop=True))
    cols = ["family", "model", "size_b", "task", "level", "group", "n_train_langs", "n_configs", "n", "correct",
            "accuracy", "ci_low", "ci_high"]
    extra = ["ci_low_cluster", "ci_high_cluster", "cluster_method", "n_runs", "n_items", "seed_sd"]
    return out[cols + (extra if boot is not None else [])]


# -- 2./3. bilingual vs English-only (Fig. 3, Table 2) ----------------------------------------------------
def bilingual_comparisons(df: pd.DataFrame, *, reference: str = REFERENCE, boot: ClusterBootstrap | None = None,
                          alpha: float = 0.05) -> pd.DataFrame:
    """Every (model, task, bilingual mixture reference+X, eval language) against the reference-only model.

    setting: `en` (eval on the reference language), `direct` (eval on X), `cross_lingual` (any other).
    delta_pts = 100 * (accuracy(bilingual) - accuracy(reference only)), with Newcombe's interval (items
    independent, as the paper's statistics treat them). `p_welch` / `verdict_welch`: Welch's t-test on item
    outcomes. With `boot`: the cluster-aware interval (paired items, seeds resampled) and the paired test
    (`p_paired`, `paired_test`: McNemar for one run a side, else the paired bootstrap) with its verdict
    (`better` / `indistinguishable` / `worse` at `alpha`).
    """
    cols = ["model", "family", "size_b", "task", "mixture", "added_lang", "eval_lang", "setting",
            "n_ref", "correct_ref", "accuracy_ref", "n_bi", "correct_bi", "accuracy_bi", "delta_pts",
            "ci_low_pts", "ci_high_pts", "win", "p_welch", "verdict_welch"]
    paired_cols = ["ci_low_cluster_pts", "ci_high_cluster_pts", "cluster_method", "paired_test", "p_paired",
                   "verdict_paired"]
    cols += paired_cols if boot is not None else []
    ref = df[df["mixture"] == reference][["model", "task", "mixture", "eval_lang", "n", "correct"]]
    bi = df[(df["n_train_langs"] == 2) & df["train_langs"].map(languages_of).map(lambda c: reference in c)].copy()
    if bi.empty or ref.empty:
        return pd.DataFrame(columns=cols)
    bi["added_lang"] = bi["train_langs"].map(languages_of).map(lambda c: next(x for x in c if x != reference))
    m = bi.merge(ref, on=["model", "task", "eval_lang"], suffixes=("_bi", "_ref"))
    m["mixture"] = m["mixture_bi"]
    m["setting"] = np.select([m["eval_lang"] == reference, m["eval_lang"] == m["added_lang"]],
                             ["en", "direct"], "cross_lingual")
    m["accuracy_ref"] = m["correct_ref"] / m["n_ref"]
    m["accuracy_bi"] = m["correct_bi"] / m["n_bi"]
    m["delta_pts"] = 100 * (m["accuracy_bi"] - m["accuracy_ref"])
    lo, hi = difference_intervals(m["correct_bi"], m["n_bi"], m["correct_ref"], m["n_ref"])
    m["ci_low_pts"], m["ci_high_pts"] = 100 * lo, 100 * hi
    m["win"] = m["accuracy_bi"] > m["accuracy_ref"]  # strictly higher; a tie is not a win
    m["p_welch"] = welch_test_counts(m["correct_bi"], m["n_bi"], m["correct_ref"], m["n_ref"])[1]
    m["verdict_welch"] = _verdict(m["p_welch"], m["delta_pts"], alpha, "better", "worse")
    order = {mo: i for i, mo in enumerate(model_order(df))}
    lorder = {c: i for i, c in enumerate(lang_order(df["eval_lang"]))}
    m = (m.assign(_m=m["model"].map(order), _a=m["added_lang"].map(lorder), _e=m["eval_lang"].map(lorder))
         .sort_values(["_m", "task", "_a", "_e"], kind="mergesort").reset_index(drop=True))
    if boot is not None:
        a = boot.ev.lookup(m.assign(mixture=m["mixture_bi"]))
        b = boot.ev.lookup(m.assign(mixture=m["mixture_ref"]))
        res = _paired(boot, a, b)
        for k in ("ci_low_cluster_pts", "ci_high_cluster_pts", "cluster_method", "paired_test", "p_paired"):
            m[k] = res[k]
        m["verdict_paired"] = _verdict(m["p_paired"], m["delta_pts"], alpha, "better", "worse")
    return m[cols]


def bilingual_verdicts(comparisons: pd.DataFrame, *, by_task: bool = False) -> pd.DataFrame:
    """Per setting (and task): comparisons, wins (the paper's strict count), and how many are significantly
    better / indistinguishable / significantly worse under the paired test and under Welch's t-test."""
    keys = (["task"] if by_task else []) + ["setting"]
    tests = [t for t in ("paired", "welch") if f"verdict_{t}" in comparisons.columns]
    counts = [f"{v}_{t}" for t in tests for v in ("better", "indistinguishable", "worse")]
    cols = keys + ["total", "wins"] + counts
    if comparisons.empty:
        return pd.DataFrame(columns=cols)
    g = comparisons.groupby(keys, sort=False)
    out = g.agg(total=("win", "size"), wins=("win", "sum")).reset_index()
    for t in tests:
        for v in ("better", "indistinguishable", "worse"):
            out[f"{v}_{t}"] = g[f"verdict_{t}"].agg(lambda x, v=v: int((x == v).sum())).to_numpy()
    out["wins"] = out["wins"].astype(int)
    out = out.assign(_s=out["setting"].map({s: i for i, s in enumerate(SETTINGS)})).sort_values(
        keys[:-1] + ["_s"], kind="mergesort")
    return out[cols].reset_index(drop=True)


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
                        reference: str = REFERENCE, alpha: float = 0.05, test: str = "paired",
                        english_direct: str = "english-only", boot: ClusterBootstrap | None = None) -> pd.DataFrame:
    """For each model, task, evaluation language X and diversity k: the k-language mixtures without X
    (zero-shot) against direct exposure, the bilingual reference+X mixture. For X = reference,
    `english_direct` says what direct exposure is: `english-only` (the reference-only model) or
    `bilingual-mean` (the bilingual reference+Y models pooled, i.e. their mean accuracy on the reference
    language). Languages without a direct mixture (e.g. an unseen language) are skipped.

    Tests (two-sided, at `alpha`), both always reported where computable:
    * `p_welch`: Welch's t-test on the per-item 0/1 outcomes, computed from counts (the paper's "two-sided
      t-test"; it treats the two item sets as independent);
    * `p_paired` (needs `boot` with per-item outcomes, or `predictions`): exact McNemar on the same items
      when each side is one run (also in `p_mcnemar`, with the discordant counts), else the paired
      cluster bootstrap (several zero-shot mixtures, seeds, or the bilingual mean).
    `test` picks which one decides `verdict` (`paired` falls back to `welch` where it cannot be computed;
    the `test` column records what was used).
    """
    test = "paired" if test == "mcnemar" else test  # the former name of the paired choice
    if test not in ("paired", "welch"):
        raise ValueError(f"unknown test {test!r} (paired or welch)")
    if english_direct not in ENGLISH_DIRECT:
        raise ValueError(f"unknown english_direct {english_direct!r} ({' or '.join(ENGLISH_DIRECT)})")
    if boot is None and predictions is not None:
        from .evaluations import from_frames

        boot = ClusterBootstrap(from_frames(df, predictions), n_boot=999, rng=0)
    cols = ["model", "family", "size_b", "task", "eval_lang", "resource", "lang_group", "k", "zero_shot_mixtures",
            "direct_mixture", "n_zero_shot", "correct_zero_shot", "accuracy_zero_shot", "ci_low_zero_shot",
            "ci_high_zero_shot", "n_direct", "correct_direct", "accuracy_direct", "ci_low_direct", "ci_high_direct",
            "delta_pts", "test", "p_value", "p_welch", "p_mcnemar", "zero_shot_only", "direct_only", "verdict",
            "verdict_welch"]
    if boot is not None:
        cols += ["ci_low_cluster_zero_shot", "ci_high_cluster_zero_shot", "ci_low_cluster_direct",
                 "ci_high_cluster_direct", "ci_low_cluster_pts", "ci_high_cluster_pts", "cluster_method",
                 "paired_test", "p_paired", "verdict_paired"]
    d = df.assign(_pos=np.arange(len(df)))
    trained = d[d["mixture"] != PRETRAINED]
    langs = trained["train_langs"].map(languages_of)
    direct_id = trained["eval_lang"].map(lambda x: reference if x == reference else label((reference, x)))
    direct = trained[trained["mixture"] == direct_id]
    if english_direct == "bilingual-mean":
        bilingual = (trained["n_train_langs"] == 2) & langs.map(lambda c: reference in c)
        direct = pd.concat([direct[direct["eval_lang"] != reference],
                            trained[bilingual & (trained["eval_lang"] == reference)]])
    dkeys = ["model", "task", "eval_lang"]
    direct_rows = direct
    direct = (direct.groupby(dkeys, sort=False)
              .agg(direct_mixture=("mixture", ";".join), n_direct=("n", "sum"), correct_direct=("correct", "sum"))
              .reset_index())
    direct["_pos_direct"] = _positions(direct_rows, dkeys, direct)
    excluded = [x not in ls for x, ls in zip(trained["eval_lang"], langs)]
    zs = trained[trained["n_train_langs"].isin(ks) & np.asarray(excluded, dtype=bool)]
    if zs.empty or direct.empty:
        return pd.DataFrame(columns=cols)
    zkeys = ["model", "family", "size_b", "task", "eval_lang", "n_train_langs"]
    z = (zs.groupby(zkeys, sort=False)
         .agg(zero_shot_mixtures=("mixture", ";".join), n_zero_shot=("n", "sum"),
              correct_zero_shot=("correct", "sum")).reset_index())
    z["_pos_zs"] = _positions(zs, zkeys, z)
    z = z.rename(columns={"n_train_langs": "k"})
    out = z.merge(direct, on=["model", "task", "eval_lang"])
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
    out["verdict_welch"] = _verdict(out["p_welch"], out["delta_pts"], alpha)
    out["p_mcnemar"] = out["zero_shot_only"] = out["direct_only"] = np.nan
    use_paired = np.zeros(len(out), dtype=bool)
    if boot is not None:
        a, b = _cells(boot, df, out["_pos_zs"]), _cells(boot, df, out["_pos_direct"])
        for side, cells in (("zero_shot", a), ("direct", b)):
            iv = _accuracy_intervals(boot, cells)
            out[f"ci_low_cluster_{side}"], out[f"ci_high_cluster_{side}"] = iv["ci_low_cluster"], iv["ci_high_cluster"]
        res = _paired(boot, a, b)
        for k in ("ci_low_cluster_pts", "ci_high_cluster_pts", "cluster_method", "paired_test", "p_paired"):
            out[k] = res[k]
        mc = out["paired_test"] == "mcnemar"
        out.loc[mc, "p_mcnemar"] = out.loc[mc, "p_paired"]
        out["zero_shot_only"], out["direct_only"] = res["a_only"], res["b_only"]
        out["verdict_paired"] = _verdict(out["p_paired"], out["delta_pts"], alpha)
        use_paired = (test == "paired") & out["p_paired"].notna().to_numpy()
    out["test"] = np.where(use_paired, out["paired_test"] if boot is not None else "welch", "welch")
    out["p_value"] = np.where(use_paired, out["p_paired"] if boot is not None else np.nan, out["p_welch"])
    out["verdict"] = _verdict(out["p_value"], out["delta_pts"], alpha)
    order = {m: i for i, m in enumerate(model_order(df))}
    lorder = {c: i for i, c in enumerate(lang_order(df["eval_lang"]))}
    out = (out.assign(_m=out["model"].map(order), _e=out["eval_lang"].map(lorder))
           .sort_values(["_m", "task", "k", "_e"], kind="mergesort").reset_index(drop=True))
    return out[cols]


def zero_shot_summary(zs: pd.DataFrame, *, reference: str = REFERENCE) -> pd.DataFrame:
    """Share of cases where zero-shot is indistinguishable from or above direct exposure (paper §4.3).

    Grouped by scope (`all` models, or `largest` = the largest model of each family, as in Fig. 4),
    language group (the reference language; non-reference `high`/`low` resource), k and task (`all` pools
    tasks). Shares carry Wilson intervals over cases. `above` ... `ci_high` count the deciding `verdict`;
    the `_paired` and `_welch` columns count each test's own verdicts (present where computed).
    """
    tests = [t for t in ("paired", "welch") if f"verdict_{t}" in zs.columns]
    extra = [f"{c}_{t}" for t in tests for c in (*VERDICTS, "share_not_below")]
    cols = ["scope", "lang_group", "k", "task", "cases", "above", "indistinguishable", "below",
            "share_not_below", "ci_low", "ci_high", *extra]
    if zs.empty:
        return pd.DataFrame(columns=cols)
    largest = zs["size_b"] == zs.groupby("family")["size_b"].transform("max")
    keys = ["scope", "lang_group", "k", "task"]
    parts = []
    for scope, sub in (("all", zs), ("largest", zs[largest])):
        for task_col in ("all", "task"):
            s = sub.assign(scope=scope, task=sub["task"] if task_col == "task" else "all")
            counts = s.groupby(keys, sort=False).size().rename("cases").reset_index()
            for col, suffix in (("verdict", ""), *((f"verdict_{t}", f"_{t}") for t in tests)):
                c = pd.crosstab([s[k] for k in keys], s[col]).reindex(columns=list(VERDICTS), fill_value=0)
                c.columns = [f"{v}{suffix}" for v in VERDICTS]
                counts = counts.merge(c.reset_index(), on=keys, how="left")
            parts.append(counts)
    out = pd.concat(parts, ignore_index=True).fillna({c: 0 for c in cols if c.split("_")[0] in VERDICTS})
    group_order = {g: i for i, g in enumerate([reference, "high", "low"])}
    out = (out.assign(_g=out["lang_group"].map(group_order), _t=out["task"] != "all")
           .sort_values(["scope", "_g", "k", "_t", "task"], kind="mergesort").reset_index(drop=True))
    ok = out["above"] + out["indistinguishable"]
    out["share_not_below"] = ok / out["cases"]
    out["ci_low"], out["ci_high"] = wilson_arrays(ok.to_numpy(), out["cases"].to_numpy())
    for t in tests:
        out[f"share_not_below_{t}"] = (out[f"above_{t}"] + out[f"indistinguishable_{t}"]) / out["cases"]
    for c in ("k", "cases", *VERDICTS, *(f"{v}_{t}" for t in tests for v in VERDICTS)):
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
        tuned = tuned[[e in languages_of(t) for e, t in zip(tuned["eval_lang"], tuned["train_langs"])]]
        base = base[base["eval_lang"].isin(tuned["eval_lang"])]
        if tuned.empty or base.empty:
            continue
        n, c, bn, bc = int(tuned["n"].sum()), int(tuned["correct"].sum()), int(base["n"].sum()), int(base["correct"].sum())
        rows.append({"task": task, "pretrained_acc": bc / bn, "pretrained_n": bn, "finetuned_acc": c / n,
                     "finetuned_n": n, "gain_points": round(100 * (c / n - bc / bn), 1)})
    return rows


def heatmap_deltas(df: pd.DataFrame, *, reference: str = REFERENCE, boot: ClusterBootstrap | None = None) -> pd.DataFrame:
    """Accuracy change vs the pretrained model for reference-only and bilingual reference+X training:
    one row per model x task x source mixture x evaluation language (delta in points, Newcombe interval;
    with `boot` also the cluster-aware one, paired by item)."""
    cols = ["family", "model", "size_b", "task", "mixture", "eval_lang", "n", "correct", "accuracy",
            "n_pretrained", "correct_pretrained", "accuracy_pretrained", "delta_pts", "ci_low_pts", "ci_high_pts"]
    cols += ["ci_low_cluster_pts", "ci_high_cluster_pts"] if boot is not None else []
    pre = df[df["mixture"] == PRETRAINED][["model", "task", "eval_lang", "n", "correct"]]
    src = df[(df["mixture"] == reference) | ((df["n_train_langs"] == 2)
                                             & df["train_langs"].map(languages_of).map(lambda c: reference in c))]
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
    added = m["train_langs"].map(languages_of).map(lambda c: max((lorder.get(x, -1) for x in c if x != reference),
                                                                default=-1))
    m = (m.assign(_m=m["model"].map(order), _src=added, _e=m["eval_lang"].map(lorder))
         .sort_values(["_m", "task", "_src", "_e"], kind="mergesort").reset_index(drop=True))
    if boot is not None:
        res = _paired(boot, boot.ev.lookup(m), boot.ev.lookup(m.assign(mixture=PRETRAINED)))
        m["ci_low_cluster_pts"], m["ci_high_cluster_pts"] = res["ci_low_cluster_pts"], res["ci_high_cluster_pts"]
    return m[cols]



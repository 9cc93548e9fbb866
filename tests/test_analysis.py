"""The analysis: statistics pinned to known values, and every analysis recovering effects planted by
`simulate` (tables drawn from known regression coefficients)."""
import io
import math

import numpy as np
import pandas as pd
import pytest

from linguamix.analysis import stats, tables
from linguamix.analysis.inputs import validate_results
from linguamix.analysis.pipeline import AnalysisOptions, CSV_FILES, csv_text, run_analysis
from linguamix.analysis.inputs import ResultsTable
from linguamix.analysis.simulate import PAPER_COEFS, paper_design, simulate
from linguamix.errors import ConfigError

# Planted effects that keep every accuracy well inside (0, 1), so nothing is clipped and OLS is unbiased.
UNCLIPPED = {"intercept": 0.30, "log10_model_size": 0.2, "qwen_family": 0.15, "math_task": -0.15,
             "pretrained_only": -0.1, "eval_lang_in_training": 0.09, "sqrt_L_over_Lmax": 0.06}


def as_results(table: pd.DataFrame, predictions=None) -> ResultsTable:
    rows, notes = validate_results(table)
    return ResultsTable(rows=rows, source="<test>", sha256="0" * 64, predictions=predictions, notes=tuple(notes))


@pytest.fixture(scope="module")
def planted():
    """A paper-sized table (5 models x 2 tasks x 23 entries x 6 languages) with many items per cell."""
    design = paper_design()
    design = type(design)(design.models, design.tasks, design.mixtures, design.eval_langs,
                          {"math": 2000, "api": 2000})
    sim = simulate(design, coefs=UNCLIPPED, seed=7, lang_sd=0.0, run_sd=0.0, noise_sd=0.01, predictions=False)
    assert sim.clipped == 0
    return sim


# -- statistics ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("wins,total,expected", [(30, 40, (59.8, 85.8)), (35, 40, (73.9, 94.5)),
                                                 (119, 160, (67.1, 80.5))])
def test_wilson_reproduces_the_papers_table2_intervals(wins, total, expected):
    lo, hi = stats.wilson_interval(wins, total)
    assert (round(100 * lo, 1), round(100 * hi, 1)) == expected
    alo, ahi = stats.wilson_arrays([wins], [total])
    assert alo[0] == pytest.approx(lo, abs=1e-12) and ahi[0] == pytest.approx(hi, abs=1e-12)


def test_wilson_arrays_no_items_gives_nan():
    lo, hi = stats.wilson_arrays([0, 3], [0, 10])
    assert math.isnan(lo[0]) and math.isnan(hi[0]) and 0 < lo[1] < 0.3 < hi[1]


def test_welch_from_counts_equals_ttest_on_item_vectors():
    from scipy.stats import ttest_ind

    a = np.r_[np.ones(130), np.zeros(120)]
    b = np.r_[np.ones(110), np.zeros(140)]
    t, p = stats.welch_test_counts(130, 250, 110, 250)
    ref = ttest_ind(a, b, equal_var=False)
    assert t == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    assert stats.welch_test_counts(0, 250, 0, 250) == (0.0, 1.0)


def test_mcnemar_matches_the_exact_binomial_test():
    # [[both, a only], [b only, neither]] = [[100, 20], [8, 122]] -> p = binomtest(8, 28) = 0.0357
    a = np.r_[np.ones(100), np.ones(20), np.zeros(8), np.zeros(122)].astype(bool)
    b = np.r_[np.ones(100), np.zeros(20), np.ones(8), np.zeros(122)].astype(bool)
    p, a_only, b_only = stats.mcnemar_test(a, b)
    assert (a_only, b_only) == (20, 8) and p == pytest.approx(0.0357, abs=5e-4)
    assert stats.mcnemar_test(a, a) == (1.0, 0, 0)


def test_bootstrap_median_is_seeded_and_handles_degenerate_samples():
    x = np.random.default_rng(0).normal(5, 2, 40)
    one = stats.bootstrap_median(x, n_resamples=999, rng=1)
    assert one == stats.bootstrap_median(x, n_resamples=999, rng=1)
    med, lo, hi, method = one
    assert method == "BCa" and lo < med < hi and med == pytest.approx(np.median(x))
    assert stats.bootstrap_median([2.0] * 10, n_resamples=99, rng=0) == (2.0, 2.0, 2.0, "degenerate")
    assert stats.bootstrap_median([3.0], rng=0)[3] == "none"


# -- planted effects -----------------------------------------------------------------------------------------
def test_regression_recovers_planted_coefficients():
    design = paper_design()
    design = type(design)(design.models, design.tasks, design.mixtures, design.eval_langs,
                          {"math": 2000, "api": 2000})
    # independent items (rho = 0): the row bootstrap of Table 3 knows nothing of shared item difficulty
    planted = simulate(design, coefs=UNCLIPPED, seed=7, lang_sd=0.0, run_sd=0.0, noise_sd=0.01, rho=0.0,
                       predictions=False)
    reg = tables.pooled_regression(planted.table, seed=3, n_resamples=400)
    coefs = reg.coefficients.set_index("feature")
    assert list(coefs.index) == ["intercept", *tables.FEATURES]
    for name, value in UNCLIPPED.items():
        row = coefs.loc[name]
        assert row["ci_low"] <= value <= row["ci_high"], (name, value, row.to_dict())
        assert abs(row["coef"] - value) < 0.02, name
    assert reg.info["n_train"] == 966 and reg.info["n_test"] == 414 and reg.info["l_max"] == 10
    assert reg.info["r2_out_of_sample"] > 0.9 and not reg.info["dropped"]


def test_regression_reports_an_inestimable_feature_as_missing(planted):
    no_base = planted.table[planted.table["mixture"] != "pretrained"]
    reg = tables.pooled_regression(no_base, seed=0, n_resamples=50)
    coefs = reg.coefficients.set_index("feature")
    assert reg.info["dropped"] == ["pretrained_only"]
    assert coefs.loc["pretrained_only"].isna().all() and coefs.loc["math_task"].notna().all()


def test_bilingual_settings_and_denominators_follow_the_paper(planted):
    comp = tables.bilingual_comparisons(planted.table)
    # 5 models x 2 tasks x 4 bilingual mixtures = 40 per setting; x 4 other languages (incl. te) = 160.
    assert comp["setting"].value_counts().to_dict() == {"cross_lingual": 160, "en": 40, "direct": 40}
    row = comp[(comp["model"] == "qwen3-8b") & (comp["task"] == "math") & (comp["mixture"] == "bn+en")
               & (comp["eval_lang"] == "bn")].iloc[0]
    assert row["setting"] == "direct" and row["added_lang"] == "bn"
    t = planted.table
    cell = lambda mix: t[(t["model"] == "qwen3-8b") & (t["task"] == "math") & (t["mixture"] == mix)
                         & (t["eval_lang"] == "bn")].iloc[0]
    expected = 100 * (cell("bn+en")["correct"] / cell("bn+en")["n"] - cell("en")["correct"] / cell("en")["n"])
    assert row["delta_pts"] == pytest.approx(expected)
    assert row["ci_low_pts"] < row["delta_pts"] < row["ci_high_pts"]


def test_median_deltas_and_win_rates_match_the_planted_deltas(planted):
    comp = tables.bilingual_comparisons(planted.table)
    # The planted delta of each comparison, from the true accuracies the simulator kept.
    p = planted.table.set_index(["model", "task", "mixture", "eval_lang"])["p_planted"]
    true = 100 * (p.loc[list(zip(comp["model"], comp["task"], comp["mixture"], comp["eval_lang"]))].to_numpy()
                  - p.loc[list(zip(comp["model"], comp["task"], ["en"] * len(comp), comp["eval_lang"]))].to_numpy())
    deltas = tables.bilingual_deltas(comp, n_resamples=999, rng=0)
    for _, r in deltas.iterrows():
        sel = ((comp["task"] == r["task"]) & (comp["setting"] == r["setting"])).to_numpy()
        assert r["n"] == sel.sum()
        assert abs(r["median_delta"] - np.median(true[sel])) < 1.5, r.to_dict()
    wins = tables.win_rates(comp).set_index("setting")
    assert list(wins.columns) == ["wins", "total", "win_rate", "ci_low", "ci_high"]
    # direct: +9 points (language in training) + sqrt(L) term -> essentially always a win
    assert wins.loc["direct", "win_rate"] == 1.0
    for setting in tables.SETTINGS:
        planted_rate = (true[(comp["setting"] == setting).to_numpy()] > 0).mean()
        assert wins.loc[setting, "ci_low"] <= planted_rate <= wins.loc[setting, "ci_high"]


def test_a_planted_penalty_turns_wins_into_losses():
    coefs = {**UNCLIPPED, "eval_lang_in_training": -0.1, "sqrt_L_over_Lmax": 0.0}
    sim = simulate(paper_design(), coefs=coefs, seed=1, lang_sd=0.0, run_sd=0.0, noise_sd=0.0, predictions=False)
    wins = tables.win_rates(tables.bilingual_comparisons(sim.table)).set_index("setting")
    assert wins.loc["direct", "wins"] == 0
    assert wins.loc["en", "total"] == 40 and 0.2 < wins.loc["en", "win_rate"] < 0.8  # no planted effect: a coin


@pytest.mark.parametrize("coefs,verdict", [
    ({"eval_lang_in_training": 0.0, "sqrt_L_over_Lmax": 0.3}, "above"),  # diversity pays, inclusion does not
    ({"eval_lang_in_training": 0.25, "sqrt_L_over_Lmax": 0.0}, "below"),  # only inclusion pays
])
def test_zero_shot_verdicts_follow_the_planted_effect(coefs, verdict):
    opposite = {"above": "below", "below": "above"}
    design = paper_design()
    design = type(design)(design.models, design.tasks, design.mixtures, design.eval_langs, {"math": 2000, "api": 2000})
    sim = simulate(design, coefs={**UNCLIPPED, **coefs}, seed=2, lang_sd=0.0, run_sd=0.0, noise_sd=0.0,
                   predictions=False)
    zs = tables.zero_shot_vs_direct(sim.table)
    # 5 models x 2 tasks x 5 languages with a direct mixture (te has none) x 3 diversity levels
    assert len(zs) == 150 and set(zs["k"]) == {4, 6, 9} and "te" not in set(zs["eval_lang"])
    assert (zs["verdict"] == verdict).mean() > 0.95 and not (zs["verdict"] == opposite[verdict]).any()
    en = zs[zs["eval_lang"] == "en"].iloc[0]
    assert en["direct_mixture"] == "en" and "en" not in en["zero_shot_mixtures"].split("+")
    summary = tables.zero_shot_summary(zs)
    top = summary[(summary["scope"] == "all") & (summary["task"] == "all")]
    assert set(top["lang_group"]) == {"en", "high", "low"} and top["cases"].sum() == 150
    assert ((top["share_not_below"] > 0.9) if verdict == "above" else (top["share_not_below"] < 0.1)).all()


def test_mcnemar_is_used_where_per_item_predictions_exist():
    design = paper_design()
    design = type(design)(design.models[:1], ("api",), design.mixtures, ("en", "es", "bn"), {"api": 300})
    sim = simulate(design, coefs=UNCLIPPED, seed=4)
    from linguamix.analysis.inputs import validate_predictions

    res = as_results(sim.table)
    preds, notes = validate_predictions(sim.predictions, res.rows)
    assert preds is not None and not notes
    zs = tables.zero_shot_vs_direct(res.rows, preds, test="mcnemar")
    assert (zs["test"] == "mcnemar").all() and zs["p_mcnemar"].between(0, 1).all()
    assert (zs["zero_shot_only"] + zs["direct_only"] > 0).all()
    # the exact McNemar p of each case, from its discordant counts (statsmodels)
    from statsmodels.stats.contingency_tables import mcnemar
    r = zs.iloc[0]
    ref = mcnemar([[0, int(r["zero_shot_only"])], [int(r["direct_only"]), 0]], exact=True).pvalue
    assert r["p_mcnemar"] == pytest.approx(ref)
    welch = tables.zero_shot_vs_direct(res.rows, preds, test="welch")
    assert (welch["test"] == "welch").all() and np.allclose(welch["p_mcnemar"], zs["p_mcnemar"])
    assert (welch["verdict"] == welch["verdict_welch"]).all() and (zs["verdict"] == zs["verdict_paired"]).all()


def test_heatmap_is_the_change_from_the_pretrained_model(planted):
    heat = tables.heatmap_deltas(planted.table)
    # per model and task: (en + 4 bilingual) x 6 languages
    assert len(heat) == 5 * 2 * 5 * 6 and set(heat["mixture"]) == {"en", "en+es", "en+ja", "bn+en", "en+sw"}
    r = heat.iloc[0]
    assert r["delta_pts"] == pytest.approx(100 * (r["correct"] / r["n"] - r["correct_pretrained"] / r["n_pretrained"]))


def test_scaling_pools_counts_by_resource_group(planted):
    sc = tables.scaling(planted.table)
    t = planted.table
    sel = (t["model"] == "gemma3-4b") & (t["task"] == "api") & (t["n_train_langs"] == 4) & t["eval_lang"].isin(
        ["bn", "sw", "te"])
    row = sc[(sc["model"] == "gemma3-4b") & (sc["task"] == "api") & (sc["n_train_langs"] == 4)
             & (sc["level"] == "resource") & (sc["group"] == "low")].iloc[0]
    assert row["n_configs"] == 15 and row["n"] == t.loc[sel, "n"].sum()
    assert row["accuracy"] == pytest.approx(t.loc[sel, "correct"].sum() / t.loc[sel, "n"].sum())
    assert row["ci_low"] < row["accuracy"] < row["ci_high"]
    assert set(sc.loc[sc["level"] == "language", "group"]) == {"en", "es", "ja", "bn", "sw", "te"}


# -- reproducibility -----------------------------------------------------------------------------------------
def _csvs(analysis):
    out = {name: csv_text(getattr(analysis, attr)) for name, (attr, _) in CSV_FILES.items()}
    out["regression.csv"] = csv_text(analysis.regression.coefficients)
    return out


@pytest.mark.slow
def test_same_input_and_seed_give_identical_csvs_whatever_the_row_order():
    sim = simulate(paper_design(), seed=5, predictions=False)
    opts = AnalysisOptions(seed=11, n_boot_median=199, n_boot_regression=99, n_boot_cluster=199)
    first = _csvs(run_analysis(as_results(sim.table), opts))
    shuffled = sim.table.sample(frac=1.0, random_state=0)
    assert _csvs(run_analysis(as_results(shuffled), opts)) == first
    other = _csvs(run_analysis(as_results(sim.table), AnalysisOptions(seed=12, n_boot_median=199,
                                                                       n_boot_regression=99, n_boot_cluster=199)))
    def wilson_part(text):  # the paper's columns: no randomness there (the cluster bootstrap follows the seed)
        return pd.read_csv(io.StringIO(text)).drop(columns=["ci_low_cluster", "ci_high_cluster"])

    pd.testing.assert_frame_equal(wilson_part(other["scaling.csv"]), wilson_part(first["scaling.csv"]))
    assert other["scaling.csv"] != first["scaling.csv"]
    assert other["regression.csv"] != first["regression.csv"]  # the split and the bootstrap follow the seed


def test_simulation_is_seeded_and_predictions_do_not_change_the_table():
    a = simulate(paper_design(), seed=3, predictions=False).table
    b = simulate(paper_design(), seed=3, predictions=True)
    pd.testing.assert_frame_equal(a, b.table)
    counts = b.predictions.groupby(["model", "task", "mixture", "eval_lang"])["correct"].sum()
    assert (counts.loc[list(zip(a["model"], a["task"], a["mixture"], a["eval_lang"]))].to_numpy()
            == a["correct"].to_numpy()).all()
    assert not simulate(paper_design(), seed=4, predictions=False).table.equals(a)


def test_paper_default_coefficients_and_unknown_overrides():
    from linguamix.analysis.simulate import parse_coefs

    assert parse_coefs(["math_task=-0.3"]) == {**PAPER_COEFS, "math_task": -0.3}
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_coefs(["nonsense=1"])
    with pytest.raises(ConfigError, match="not a number"):
        parse_coefs(["math_task=abc"])


# -- coverage -----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cluster_intervals_cover_pooled_accuracies_that_wilson_misses():
    # The coverage study of docs/statistics.md at a small scale: correlated items (shared difficulty),
    # language effects and training noise; the planted value is a configuration's expected accuracy.
    from dataclasses import replace

    from linguamix.analysis.coverage import coverage_study

    design = paper_design()
    design = replace(design, models=design.models[2:4], tasks=("math",), eval_langs=("en", "es", "bn"),
                     n_items={"math": 100})
    out = coverage_study(design, n_tables=25, seed=5, n_boot=200, focus=("qwen3-8b", "math", "high", 4))
    pooled = out[out["class"].str.contains("2\\+ runs")].set_index("class")
    assert set(pooled.index) == {"resource level, 2+ runs", "language level, 2+ runs"}
    assert (pooled["intervals"] >= 25 * 16).all()
    assert (pooled["coverage_cluster"] >= 0.9).all(), pooled
    assert (pooled["coverage_wilson"] < pooled["coverage_cluster"] - 0.1).all(), pooled

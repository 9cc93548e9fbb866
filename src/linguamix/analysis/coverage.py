"""Coverage of the intervals on simulated tables whose true accuracies are known (docs/statistics.md).

    python -m linguamix.analysis.coverage [--tables 200] [--seeds 1] [--n-boot 500]

Each simulated study (linguamix.analysis.simulate: shared item difficulty, language effects, run noise)
is analysed like a real one; for every pooled accuracy of the scaling analysis (Fig. 2 / 8) and every
bilingual-vs-English-only difference (Table 2's comparisons) we record whether the paper's interval
(pooled Wilson / Newcombe) and the cluster-aware one cover the planted value: the mean over the pooled
cells of `p_config`, a cell's expected accuracy over training noise (the estimand of a configuration's
accuracy, whatever the seed). Coverage is reported per class of statistic, with the intervals' mean
half-widths.
"""
from __future__ import annotations

import argparse
from dataclasses import replace

import pandas as pd

from .. import languages
from . import tables
from .clusters import ClusterBootstrap
from .evaluations import pool_seeds
from .inputs import REQUIRED_COLUMNS, sort_results
from .simulate import Design, paper_design, simulate

KEY = ["model", "task", "mixture", "eval_lang"]


def _scaling_rows(sim, boot) -> pd.DataFrame:
    rows = sort_results(pool_seeds(sim.table, list(REQUIRED_COLUMNS))[list(REQUIRED_COLUMNS)])
    sc = tables.scaling(rows, boot=boot)
    truth = sim.table.groupby(KEY, sort=False)["p_config"].first().rename("truth").reset_index()
    t = rows.merge(truth, on=KEY).assign(resource=lambda d: d["eval_lang"].map(languages.resource_group))
    keys = ["model", "task", "n_train_langs"]
    planted = pd.concat([t.groupby(keys + [col])["truth"].mean().reset_index().rename(columns={col: "group"})
                         .assign(level=level) for level, col in (("resource", "resource"), ("language", "eval_lang"))])
    return sc.merge(planted, on=["model", "task", "n_train_langs", "group", "level"])


def _comparison_rows(sim, boot) -> pd.DataFrame:
    rows = sort_results(pool_seeds(sim.table, list(REQUIRED_COLUMNS))[list(REQUIRED_COLUMNS)])
    comp = tables.bilingual_comparisons(rows, boot=boot)
    truth = sim.table.groupby(KEY, sort=False)["p_config"].first()
    bi = truth.loc[list(zip(comp["model"], comp["task"], comp["mixture"], comp["eval_lang"]))].to_numpy()
    ref = truth.loc[list(zip(comp["model"], comp["task"], ["en"] * len(comp), comp["eval_lang"]))].to_numpy()
    return comp.assign(truth=100 * (bi - ref))


def classify(row) -> str:
    """The class of a pooled accuracy: how many runs it pools decides what its interval can resample."""
    if row["n_train_langs"] == 0:
        return "pretrained (1 run, no training noise)"
    runs = "1 run" if row["n_runs"] == 1 else "2+ runs"
    return f"{row['level']} level, {runs}"


def coverage_study(design: Design, *, n_tables: int = 200, seed: int = 0, n_boot: int = 500,
                   focus: tuple = ("qwen3-8b", "math", "high", 4)) -> pd.DataFrame:
    """Coverage of the 95 % intervals over `n_tables` simulated studies, per class of statistic."""
    records = []
    for i in range(n_tables):
        sim = simulate(design, seed=seed * 100_003 + i, predictions=False)
        boot = ClusterBootstrap(sim.evaluations(), n_boot=n_boot, rng=[seed, i])
        sc = _scaling_rows(sim, boot)
        sc = sc[(sc["level"] == "resource") | (sc["n_train_langs"] > 0)]
        cls = sc.apply(classify, axis=1)
        m, t, g, k = focus
        is_focus = (sc["model"] == m) & (sc["task"] == t) & (sc["group"] == g) & (sc["n_train_langs"] == k)
        for name, sel in (*((c, cls == c) for c in cls.unique()), (f"{m}, {t}, {g}-resource, N={k}", is_focus)):
            s = sc[sel]
            records.append({"table": i, "statistic": "pooled accuracy", "class": name, "n": len(s),
                            "wilson": ((s["ci_low"] <= s["truth"]) & (s["truth"] <= s["ci_high"])).sum(),
                            "cluster": ((s["ci_low_cluster"] <= s["truth"]) & (s["truth"] <= s["ci_high_cluster"])).sum(),
                            "w_half": (50 * (s["ci_high"] - s["ci_low"])).sum(),
                            "c_half": (50 * (s["ci_high_cluster"] - s["ci_low_cluster"])).sum()})
        comp = _comparison_rows(sim, boot)
        records.append({"table": i, "statistic": "bilingual − English-only difference", "class": "per comparison",
                        "n": len(comp),
                        "wilson": ((comp["ci_low_pts"] <= comp["truth"]) & (comp["truth"] <= comp["ci_high_pts"])).sum(),
                        "cluster": ((comp["ci_low_cluster_pts"] <= comp["truth"])
                                    & (comp["truth"] <= comp["ci_high_cluster_pts"])).sum(),
                        "w_half": (0.5 * (comp["ci_high_pts"] - comp["ci_low_pts"])).sum(),
                        "c_half": (0.5 * (comp["ci_high_cluster_pts"] - comp["ci_low_cluster_pts"])).sum()})
    r = pd.DataFrame(records).groupby(["statistic", "class"], sort=False)[["n", "wilson", "cluster", "w_half",
                                                                           "c_half"]].sum()
    out = pd.DataFrame({"intervals": r["n"], "tables": n_tables, "coverage_wilson": r["wilson"] / r["n"],
                        "coverage_cluster": r["cluster"] / r["n"], "half_width_wilson_pts": r["w_half"] / r["n"],
                        "half_width_cluster_pts": r["c_half"] / r["n"]}).reset_index()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", type=int, default=200)
    p.add_argument("--seeds", type=int, default=1, help="training seeds per configuration (default: 1)")
    p.add_argument("--n-boot", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    design = replace(paper_design(), seeds=tuple(range(args.seeds)))
    out = coverage_study(design, n_tables=args.tables, seed=args.seed, n_boot=args.n_boot)
    print(out.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

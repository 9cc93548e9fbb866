"""`linguamix analyze`: every analysis of the paper from one results table, then CSVs and figures.

    linguamix analyze results.csv --out report/ [--seed 0] [--intervals cluster|wilson]

`run_analysis` computes (nothing is written until every analysis has succeeded); `write_outputs` writes the
CSVs, regression.json and the figures. The report (report.md, index.html) is rendered by linguamix.report
from the same `Analysis`. Same input + same seed -> byte-identical CSVs.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import figures, tables
from .costs import time_by_stage
from .inputs import ResultsTable
from .options import AnalysisOptions


@dataclass(frozen=True)
class Analysis:
    results: ResultsTable
    options: AnalysisOptions
    scaling: pd.DataFrame
    comparisons: pd.DataFrame
    bilingual_deltas: pd.DataFrame
    win_rates: pd.DataFrame
    win_rates_by_task: pd.DataFrame
    bilingual_verdicts: pd.DataFrame
    bilingual_verdicts_by_task: pd.DataFrame
    zero_shot: pd.DataFrame
    zero_shot_summary: pd.DataFrame
    heatmaps: pd.DataFrame
    regression: tables.Regression
    seeds: pd.DataFrame
    """Seed-to-seed spread of every cell (tables.seed_spread)."""
    cluster_method: str
    """`items` (per-item predictions: items resampled) or `counts` (the counts-only bound)."""
    power: pd.DataFrame | None = None
    time: pd.DataFrame | None = None
    """Seconds and shares per stage (costs.time_by_stage) when the input has the runs' timings."""
    figures: dict[str, list[str]] = field(default_factory=dict)
    """Figure name -> file names (png, svg) relative to the output directory; filled by write_outputs."""


# The CSVs, in report order: file name -> (Analysis attribute, columns written or None for all).
CSV_FILES = {
    "scaling.csv": ("scaling", None),
    "bilingual_comparisons.csv": ("comparisons", None),
    "bilingual_deltas.csv": ("bilingual_deltas", ["task", "setting", "median_delta", "ci_low", "ci_high", "n"]),
    "win_rates.csv": ("win_rates", None),
    "win_rates_by_task.csv": ("win_rates_by_task", None),
    "bilingual_verdicts.csv": ("bilingual_verdicts", None),
    "bilingual_verdicts_by_task.csv": ("bilingual_verdicts_by_task", None),
    "zero_shot_vs_direct.csv": ("zero_shot", None),
    "zero_shot_summary.csv": ("zero_shot_summary", None),
    "heatmap_deltas.csv": ("heatmaps", None),
    "seeds.csv": ("seeds", None),
}


def _child_seed(seed: int, name: str) -> int:
    """An independent, stable seed per analysis, so adding one analysis never changes another's numbers."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little")


def run_analysis(results: ResultsTable, options: AnalysisOptions = AnalysisOptions()) -> Analysis:
    from .clusters import ClusterBootstrap

    if options.intervals not in ("cluster", "wilson"):
        raise ValueError(f"unknown intervals {options.intervals!r} (cluster or wilson)")
    df = results.rows
    ref = options.reference
    ev = results.cells()

    def boot(name: str) -> ClusterBootstrap:  # one per analysis: adding one never changes another's numbers
        return ClusterBootstrap(ev, n_boot=options.n_boot_cluster, rng=_child_seed(options.seed, f"cluster:{name}"))

    comparisons = tables.bilingual_comparisons(df, reference=ref, boot=boot("bilingual"), alpha=options.alpha)
    zero_shot = tables.zero_shot_vs_direct(df, ks=options.ks, reference=ref, alpha=options.alpha,
                                           test=options.zero_shot_test, english_direct=options.english_direct,
                                           boot=boot("zero_shot"))
    power = None
    if options.power_effect is not None:
        from .power import PowerOptions, design_from_results, power_analysis

        power = power_analysis(design_from_results(df, ev), options.power_effect,
                               PowerOptions(n_sims=options.power_sims, seed=options.seed, alpha=options.alpha,
                                            reference=ref, english_direct=options.english_direct, ks=options.ks))
    return Analysis(
        results=results, options=options,
        scaling=tables.scaling(df, boot=boot("scaling")),
        comparisons=comparisons,
        bilingual_deltas=tables.bilingual_deltas(comparisons, n_resamples=options.n_boot_median,
                                                 rng=_child_seed(options.seed, "bilingual_deltas")),
        win_rates=tables.win_rates(comparisons),
        win_rates_by_task=tables.win_rates(comparisons, by_task=True),
        bilingual_verdicts=tables.bilingual_verdicts(comparisons),
        bilingual_verdicts_by_task=tables.bilingual_verdicts(comparisons, by_task=True),
        zero_shot=zero_shot,
        zero_shot_summary=tables.zero_shot_summary(zero_shot, reference=ref),
        heatmaps=tables.heatmap_deltas(df, reference=ref, boot=boot("heatmaps")),
        regression=tables.pooled_regression(df, seed=_child_seed(options.seed, "regression"),
                                            train_fraction=options.train_fraction,
                                            n_resamples=options.n_boot_regression),
        seeds=tables.seed_spread(ev),
        cluster_method="items" if ev.items is not None else "counts",
        power=power,
        time=None if results.timings is None else time_by_stage(results.timings),
    )


def csv_text(df: pd.DataFrame) -> str:
    """Deterministic CSV: fixed column order, '\\n' line ends, floats with 10 significant digits."""
    return df.to_csv(index=False, lineterminator="\n", float_format="%.10g")


def regression_json(analysis: Analysis) -> dict:
    info = dict(analysis.regression.info)
    info["seed"] = analysis.options.seed  # the user's seed (the split's own seed is derived from it)
    info["coefficients"] = {r["feature"]: {k: _num(r[k]) for k in ("coef", "ci_low", "ci_high")}
                            for r in analysis.regression.coefficients.to_dict("records")}
    info["r2_out_of_sample"] = _num(info["r2_out_of_sample"])
    info["input_sha256"] = analysis.results.sha256
    return info


def _num(v):
    v = float(v)
    return None if math.isnan(v) else round(v, 10)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "family"


def write_outputs(analysis: Analysis, out_dir: str | Path) -> Analysis:
    """Write every CSV, regression.csv/json and the figures; return the Analysis with its figure files."""
    from .. import store

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, (attr, cols) in CSV_FILES.items():
        df = getattr(analysis, attr)
        store.write_text(out / name, csv_text(df[cols] if cols else df))
    store.write_text(out / "regression.csv", csv_text(analysis.regression.coefficients))
    store.write_json(out / "regression.json", regression_json(analysis))
    if analysis.power is not None:
        store.write_text(out / "power.csv", csv_text(analysis.power))
    if analysis.time is not None:
        store.write_text(out / "time.csv", csv_text(analysis.time))

    iv, o = analysis.options.intervals, analysis.options
    made = {
        "scaling": figures.scaling_figure(analysis.scaling, intervals=iv),
        "scaling_per_language": figures.scaling_per_language_figure(analysis.scaling, analysis.results.rows,
                                                                    intervals=iv),
        "bilingual_deltas": figures.bilingual_figure(analysis.bilingual_deltas),
        "zero_shot_vs_direct": figures.zero_shot_figure(analysis.zero_shot, intervals=iv,
                                                        english_direct=o.english_direct, reference=o.reference),
    }
    for family in sorted(analysis.results.rows["family"].unique()):
        made[f"heatmap_{_slug(family)}"] = figures.heatmap_figure(analysis.heatmaps, family)
    made["regression"] = figures.regression_figure(analysis.regression.coefficients,
                                                   analysis.regression.info["r2_out_of_sample"])
    files = {name: [p.name for p in figures.save(fig, out / name)] for name, fig in made.items()}
    return Analysis(**{**{f: getattr(analysis, f) for f in analysis.__dataclass_fields__}, "figures": files})


__all__ = ["AnalysisOptions", "Analysis", "run_analysis", "write_outputs", "CSV_FILES", "csv_text"]

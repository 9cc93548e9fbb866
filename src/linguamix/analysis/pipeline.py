"""`linguamix analyze`: every analysis of the paper from one results table, then CSVs and figures.

    linguamix analyze results.csv --out report/ [--seed 0]

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
    zero_shot: pd.DataFrame
    zero_shot_summary: pd.DataFrame
    heatmaps: pd.DataFrame
    regression: tables.Regression
    figures: dict[str, list[str]] = field(default_factory=dict)
    """Figure name -> file names (png, svg) relative to the output directory; filled by write_outputs."""


# The CSVs, in report order: file name -> (Analysis attribute, columns written or None for all).
CSV_FILES = {
    "scaling.csv": ("scaling", None),
    "bilingual_comparisons.csv": ("comparisons", None),
    "bilingual_deltas.csv": ("bilingual_deltas", ["task", "setting", "median_delta", "ci_low", "ci_high", "n"]),
    "win_rates.csv": ("win_rates", None),
    "win_rates_by_task.csv": ("win_rates_by_task", None),
    "zero_shot_vs_direct.csv": ("zero_shot", None),
    "zero_shot_summary.csv": ("zero_shot_summary", None),
    "heatmap_deltas.csv": ("heatmaps", None),
}


def _child_seed(seed: int, name: str) -> int:
    """An independent, stable seed per analysis, so adding one analysis never changes another's numbers."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little")


def run_analysis(results: ResultsTable, options: AnalysisOptions = AnalysisOptions()) -> Analysis:
    df = results.rows
    ref = options.reference
    comparisons = tables.bilingual_comparisons(df, reference=ref)
    zero_shot = tables.zero_shot_vs_direct(df, results.predictions, ks=options.ks, reference=ref,
                                           alpha=options.alpha, test=options.zero_shot_test)
    return Analysis(
        results=results, options=options,
        scaling=tables.scaling(df),
        comparisons=comparisons,
        bilingual_deltas=tables.bilingual_deltas(comparisons, n_resamples=options.n_boot_median,
                                                 rng=_child_seed(options.seed, "bilingual_deltas")),
        win_rates=tables.win_rates(comparisons),
        win_rates_by_task=tables.win_rates(comparisons, by_task=True),
        zero_shot=zero_shot,
        zero_shot_summary=tables.zero_shot_summary(zero_shot, reference=ref),
        heatmaps=tables.heatmap_deltas(df, reference=ref),
        regression=tables.pooled_regression(df, seed=_child_seed(options.seed, "regression"),
                                            train_fraction=options.train_fraction,
                                            n_resamples=options.n_boot_regression),
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

    made = {
        "scaling": figures.scaling_figure(analysis.scaling),
        "scaling_per_language": figures.scaling_per_language_figure(analysis.scaling, analysis.results.rows),
        "bilingual_deltas": figures.bilingual_figure(analysis.bilingual_deltas),
        "zero_shot_vs_direct": figures.zero_shot_figure(analysis.zero_shot),
    }
    for family in sorted(analysis.results.rows["family"].unique()):
        made[f"heatmap_{_slug(family)}"] = figures.heatmap_figure(analysis.heatmaps, family)
    made["regression"] = figures.regression_figure(analysis.regression.coefficients,
                                                   analysis.regression.info["r2_out_of_sample"])
    files = {name: [p.name for p in figures.save(fig, out / name)] for name, fig in made.items()}
    return Analysis(**{**{f: getattr(analysis, f) for f in analysis.__dataclass_fields__}, "figures": files})


__all__ = ["AnalysisOptions", "Analysis", "run_analysis", "write_outputs", "CSV_FILES", "csv_text"]

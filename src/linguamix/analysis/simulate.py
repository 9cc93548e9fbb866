"""Simulated results tables with planted effects, to validate the analysis end to end.

    linguamix simulate --design paper --out results.csv --seed 0
    linguamix simulate --design configs/paper.yaml --out results.duckdb --coef eval_lang_in_training=0.2

The generative model, per evaluation instance (model x task x mixture-or-pretrained x eval language):

    p = intercept + sum_f coef_f * x_f + e,   e ~ Normal(0, noise_sd),   clipped to [0.01, 0.99]

with x_f the regression features of linguamix.analysis.tables.regression_features (Lmax = the design's
largest mixture). Each of the n test items is then answered correctly with probability p, through a
Gaussian copula: item i is correct iff Phi(sqrt(rho) z_i + sqrt(1 - rho) z_i') < p, where z_i is shared by
every mixture of the same (model, task, language) (items have a difficulty) and z_i' is fresh. So
`correct` ~ Binomial(n, p) exactly, and per-item predictions are realistically correlated across
mixtures (what the paired McNemar test needs). The true p is kept in the column `p_planted`.
"""
from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from .. import languages
from ..errors import ConfigError
from ..mixtures import PRETRAINED, Mixture, design_mixtures
from .inputs import REQUIRED_COLUMNS
from .tables import FEATURES, regression_features

PAPER_COEFS: dict[str, float] = {
    "intercept": 0.30,
    "log10_model_size": 0.302,
    "qwen_family": 0.265,
    "math_task": -0.207,
    "pretrained_only": -0.110,
    "eval_lang_in_training": 0.089,
    "sqrt_L_over_Lmax": 0.053,
}
"""The paper's Table 3 estimates; the intercept (not reported there) keeps accuracies inside (0, 1)."""

DEFAULT_N_ITEMS: dict[str, int] = {"math": 250, "api": 399}
"""Test items per language: MGSM has 250 problems, mAPICall-Bank 399 test queries (paper §3.1)."""

CLIP = (0.01, 0.99)


@dataclass(frozen=True)
class SimModel:
    name: str
    family: str
    size_b: float


PAPER_MODELS = (SimModel("qwen3-0.6b", "qwen3", 0.6), SimModel("qwen3-1.7b", "qwen3", 1.7),
                SimModel("qwen3-8b", "qwen3", 8.0), SimModel("gemma3-1b", "gemma3", 1.0),
                SimModel("gemma3-4b", "gemma3", 4.0))


@dataclass(frozen=True)
class Design:
    """What a study evaluates: every model x task x (mixture or pretrained) x evaluation language."""

    models: tuple[SimModel, ...]
    tasks: tuple[str, ...]
    mixtures: tuple[Mixture, ...]
    eval_langs: tuple[str, ...]
    n_items: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_N_ITEMS))
    include_pretrained: bool = True


def paper_design() -> Design:
    """The paper's study: 5 models x 2 tasks x (22 mixtures + pretrained) x 6 evaluation languages."""
    return Design(models=PAPER_MODELS, tasks=("math", "api"), mixtures=tuple(design_mixtures("paper")),
                  eval_langs=tuple(languages.evaluation_codes()))


def load_design(spec: str, *, n_items: int | None = None) -> Design:
    """`paper`, or the path of a study config (its models, tasks, mixtures and evaluation languages)."""
    if spec == "paper":
        design = paper_design()
    else:
        from ..config import load_config

        cfg = load_config(spec)
        design = Design(models=tuple(SimModel(m.short_name, m.family, m.size_b) for m in cfg.models),
                        tasks=tuple(cfg.tasks), mixtures=tuple(cfg.mixture_list()),
                        eval_langs=tuple(cfg.eval.languages))
    if n_items is not None:
        if n_items < 1:
            raise ConfigError(f"--n-items must be >= 1, got {n_items}")
        design = Design(design.models, design.tasks, design.mixtures, design.eval_langs,
                        {t: n_items for t in design.tasks}, design.include_pretrained)
    return design


def parse_coefs(items: list[str] | None) -> dict[str, float]:
    """`name=value` overrides on top of PAPER_COEFS."""
    coefs = dict(PAPER_COEFS)
    for item in items or []:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in coefs:
            raise ConfigError(f"--coef {item!r}: expected NAME=VALUE with NAME one of {', '.join(coefs)}")
        try:
            coefs[name] = float(value)
        except ValueError:
            raise ConfigError(f"--coef {item!r}: {value!r} is not a number") from None
    return coefs


@dataclass(frozen=True)
class Simulation:
    table: pd.DataFrame
    """REQUIRED_COLUMNS + p_planted."""
    predictions: pd.DataFrame | None
    """model, task, mixture, eval_lang, item_id, correct: one row per simulated item answer (or None)."""
    coefs: dict[str, float]
    clipped: int
    """Instances whose planted accuracy fell outside CLIP and was clipped."""


def design_table(design: Design) -> pd.DataFrame:
    """The results table's rows without outcomes: one per model x task x entry x evaluation language."""
    entries = ([(PRETRAINED, ())] if design.include_pretrained else []) + [(m.id, m.languages) for m in design.mixtures]
    rows = []
    for model in design.models:
        for task in design.tasks:
            if task not in design.n_items:
                raise ConfigError(f"no number of test items for task '{task}' (known: {', '.join(design.n_items)})")
            for mix_id, langs in entries:
                for lang in design.eval_langs:
                    rows.append({"model": model.name, "family": model.family, "size_b": float(model.size_b),
                                 "task": task, "mixture": mix_id, "train_langs": "+".join(sorted(langs)),
                                 "n_train_langs": len(langs), "eval_lang": lang, "n": int(design.n_items[task])})
    return pd.DataFrame(rows)


def simulate(design: Design, *, coefs: Mapping[str, float] = PAPER_COEFS, seed: int = 0, noise_sd: float = 0.03,
             rho: float = 0.5, predictions: bool = True) -> Simulation:
    """Draw a results table (and, if `predictions`, its per-item answers) from the planted model; see the
    module doc. The table is the same with or without predictions: the items are drawn either way."""
    from scipy.stats import norm

    missing = [f for f in ("intercept", *FEATURES) if f not in coefs]
    if missing:
        raise ConfigError(f"planted coefficients missing: {', '.join(missing)}")
    if noise_sd < 0:
        raise ConfigError(f"noise_sd must be >= 0, got {noise_sd}")
    if not 0 <= rho < 1:
        raise ConfigError(f"rho must be in [0, 1), got {rho}")
    rng = np.random.default_rng(seed)
    table = design_table(design)
    X = regression_features(table)
    p = coefs["intercept"] + sum(coefs[f] * X[f].to_numpy() for f in FEATURES)
    p = p + rng.normal(0.0, noise_sd, len(table)) if noise_sd > 0 else p
    clipped = int(np.sum((p < CLIP[0]) | (p > CLIP[1])))
    table["p_planted"] = np.clip(p, *CLIP)

    correct = np.zeros(len(table), dtype=np.int64)
    pred_parts = []
    for (_, task, lang), idx in table.groupby(["model", "task", "eval_lang"], sort=False).indices.items():
        n = int(design.n_items[task])
        shared = rng.standard_normal(n)  # item difficulty, common to every mixture of this cell
        own = rng.standard_normal((len(idx), n))
        u = norm.cdf(math.sqrt(rho) * shared + math.sqrt(1 - rho) * own)
        hits = u < table["p_planted"].to_numpy()[idx][:, None]
        correct[idx] = hits.sum(axis=1)
        if not predictions:
            continue
        sub = table.iloc[idx]
        pred_parts.append(pd.DataFrame({
            "model": np.repeat(sub["model"].to_numpy(), n), "task": task,
            "mixture": np.repeat(sub["mixture"].to_numpy(), n), "eval_lang": lang,
            "item_id": np.tile([f"{task}-{i:04d}" for i in range(n)], len(idx)), "correct": hits.ravel()}))
    table["correct"] = correct
    table = table[[*REQUIRED_COLUMNS, "p_planted"]]
    preds = pd.concat(pred_parts, ignore_index=True) if predictions else None
    return Simulation(table=table, predictions=preds, coefs=dict(coefs), clipped=clipped)


def write_simulation(sim: Simulation, out: str | Path, *, predictions: str | Path | None = None) -> list[Path]:
    """Write the table as CSV/Parquet, or a DuckDB with `evaluations` and `predictions` (like `collect`).

    Per-item predictions go to `predictions` (CSV/Parquet) when given. Every file is written atomically.
    """
    from .. import store

    out = Path(out)
    written = [out]
    suffix = out.suffix.lower()
    if suffix == ".csv":
        store.write_text(out, sim.table.to_csv(index=False, lineterminator="\n", float_format="%.6g"))
    elif suffix in (".parquet", ".pq"):
        with store.atomic_path(out, "wb") as f:
            sim.table.to_parquet(f, index=False)
    elif suffix in (".duckdb", ".db"):
        frames = {"evaluations": sim.table}
        if sim.predictions is not None:
            frames["predictions"] = sim.predictions
        _write_duckdb(out, frames)
    else:
        raise ConfigError(f"--out {out}: unsupported format '{suffix}' (use .csv, .parquet or .duckdb)")
    if predictions is not None:
        if sim.predictions is None:
            raise ValueError("this simulation was drawn without per-item predictions")
        pred = Path(predictions)
        if pred.suffix.lower() == ".csv":
            store.write_text(pred, sim.predictions.to_csv(index=False, lineterminator="\n"))
        elif pred.suffix.lower() in (".parquet", ".pq"):
            with store.atomic_path(pred, "wb") as f:
                sim.predictions.to_parquet(f, index=False)
        else:
            raise ConfigError(f"--predictions {pred}: unsupported format (use .csv or .parquet)")
        written.append(pred)
    return written


def _write_duckdb(path: Path, frames: dict[str, pd.DataFrame]) -> None:
    import duckdb

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # duckdb must create the file itself
    try:
        con = duckdb.connect(tmp)
        try:
            for name, frame in frames.items():
                con.register("frame", frame)
                con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
                con.unregister("frame")
            con.execute("CHECKPOINT")  # everything in the file itself, nothing left in a WAL
        finally:
            con.close()
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, f"{tmp}.wal"):
            if os.path.exists(leftover):
                os.unlink(leftover)

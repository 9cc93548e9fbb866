"""Simulated results tables with planted effects, to validate the analysis end to end.

    linguamix simulate --design paper --out results.csv --seed 0
    linguamix simulate --design configs/paper.yaml --out results.duckdb --coef eval_lang_in_training=0.2

The generative model, per evaluation cell (model x task x mixture-or-pretrained x eval language x seed):

    p = clip(intercept + sum_f coef_f * x_f  +  u[model, task, language]  +  v[run]  +  e[cell], 0.01, 0.99)

with x_f the regression features (linguamix.analysis.regression; Lmax = the design's largest mixture),
u ~ N(0, lang_sd) a language's own difficulty for a model and task (shared by every mixture, seed and the
pretrained model; made orthogonal to the features, so that the planted coefficients stay the OLS estimand),
v ~ N(0, run_sd) the training noise of a run (model x task x mixture x seed; shared by its evaluation
languages) and e ~ N(0, noise_sd) the rest (per trained cell). The pretrained model is not trained: no v, e.

Items: item i of a task has a difficulty z_mi for each model m, shared by every cell of that model and
task (every language, mixture and seed: the test sets are parallel); a cell answers it correctly iff
sqrt(rho) z_mi + sqrt(1 - rho) z'_ci < Phi^-1(p), z'_ci fresh. So each item is correct with probability p,
and items are correlated across cells, as real outcomes on a shared test set are.

Columns kept: `p_planted` (the p items were drawn with) and `p_config`, its expectation over the training
noise v + e (what a configuration's pooled accuracy estimates; the coverage study's planted value).
The default noise is calibrated so that a paper-sized table gives an out-of-sample R^2 near the paper's
0.805 (docs/statistics.md).
"""
from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from .. import languages
from ..errors import ConfigError
from ..mixtures import PRETRAINED, Mixture, design_mixtures, label
from .evaluations import CELL_COLUMNS, Evaluations, TaskItems
from .noise import Noise
from .inputs import REQUIRED_COLUMNS
from .regression import FEATURES, regression_features

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
    seeds: tuple[int, ...] = (0,)
    """Training seeds: every mixture is a run per seed; the pretrained model is seed-free (one run)."""


def paper_design() -> Design:
    """The paper's study: 5 models x 2 tasks x (22 mixtures + pretrained) x 6 evaluation languages."""
    return Design(models=PAPER_MODELS, tasks=("math", "api"), mixtures=tuple(design_mixtures("paper")),
                  eval_langs=tuple(languages.evaluation_codes()))


def load_design(spec: str, *, n_items: int | None = None, seeds: list[int] | None = None) -> Design:
    """`paper`, or the path of a study config (its models, tasks, mixtures and evaluation languages)."""
    if spec == "paper":
        design = paper_design()
    else:
        from ..config import load_config

        cfg = load_config(spec)
        design = Design(models=tuple(SimModel(m.short_name, m.family, m.size_b) for m in cfg.models),
                        tasks=tuple(cfg.tasks), mixtures=tuple(cfg.mixture_list()),
                        eval_langs=tuple(cfg.eval.languages), seeds=tuple(cfg.seeds))
    if n_items is not None:
        if n_items < 1:
            raise ConfigError(f"--n-items must be >= 1, got {n_items}")
        design = replace(design, n_items={t: n_items for t in design.tasks})
    if seeds is not None:
        if not seeds or len(set(seeds)) != len(seeds):
            raise ConfigError(f"--seeds: expected distinct integers, got {seeds}")
        design = replace(design, seeds=tuple(seeds))
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
    """REQUIRED_COLUMNS + seed + p_planted + p_config, one row per cell (seeds apart)."""
    predictions: pd.DataFrame | None
    """model, task, mixture, eval_lang, seed, item_id, correct: one row per simulated item answer (or None)."""
    coefs: dict[str, float]
    clipped: int
    """Cells whose accuracy fell outside CLIP and was clipped."""
    items: dict[str, TaskItems] | None = None
    """Per task: the outcome matrix (rows = rows of `table`)."""
    description: str = "simulated"

    def evaluations(self) -> Evaluations:
        """The per-run cells and item outcomes, straight from the arrays (no predictions table needed)."""
        cells = self.table[CELL_COLUMNS].assign(seed=self.table["seed"].astype(str)).reset_index(drop=True)
        cells["run"] = cells.groupby(["model", "task", "mixture", "seed"], sort=False).ngroup().astype(np.int64)
        return Evaluations(cells, self.items)


def design_table(design: Design) -> pd.DataFrame:
    """The results table's cells without outcomes: one per model x task x entry x evaluation language x seed."""
    entries = ([(PRETRAINED, (), design.seeds[:1])] if design.include_pretrained else [])
    entries += [(m.id, m.languages, design.seeds) for m in design.mixtures]
    rows = []
    for model in design.models:
        for task in design.tasks:
            if task not in design.n_items:
                raise ConfigError(f"no number of test items for task '{task}' (known: {', '.join(design.n_items)})")
            for mix_id, langs, seeds in entries:
                for seed in seeds:
                    for lang in design.eval_langs:
                        rows.append({"model": model.name, "family": model.family, "size_b": float(model.size_b),
                                     "task": task, "mixture": mix_id, "train_langs": label(langs),
                                     "n_train_langs": len(langs), "eval_lang": lang,
                                     "n": int(design.n_items[task]), "seed": int(seed)})
    return pd.DataFrame(rows)


def planted_mean(table: pd.DataFrame, coefs: Mapping[str, float]) -> np.ndarray:
    """intercept + sum_f coef_f x_f per row (unclipped, without noise)."""
    missing = [f for f in ("intercept", *FEATURES) if f not in coefs]
    if missing:
        raise ConfigError(f"planted coefficients missing: {', '.join(missing)}")
    X = regression_features(table)
    return coefs["intercept"] + sum(coefs[f] * X[f].to_numpy() for f in FEATURES)


@dataclass(frozen=True)
class Draws:
    """Every random number of one simulated study (common random numbers: several planted means can be
    evaluated on the same draws, as `linguamix power` does)."""

    lang: np.ndarray
    """u per row of the design table (the language's own difficulty)."""
    training: np.ndarray
    """v + e per row (0 for the pretrained model)."""
    training_sd: np.ndarray
    """SD of v + e per row (0 for the pretrained model)."""
    latent: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    """Per task: (rows of the design table, item ids, latent values rows x items)."""


@dataclass(frozen=True)
class Layout:
    """What `draw` needs to know about a design table besides the random numbers (computed once)."""

    trained: np.ndarray
    lang_codes: np.ndarray
    run_codes: np.ndarray
    projections: list[tuple[np.ndarray, np.ndarray]]
    """Per model x task: (its language codes, matrix removing the features' span from their effects)."""
    tasks: list[tuple[str, np.ndarray, np.ndarray, int]]
    """Per task: (name, rows, model code per row, items)."""


def layout(table: pd.DataFrame, design: Design) -> Layout:
    X = regression_features(table)
    lang_codes = table.groupby(["model", "task", "eval_lang"], sort=False).ngroup().to_numpy()
    projections = []
    for rows in table.groupby(["model", "task"], sort=False).indices.values():
        # Within a model x task, the language effects (one per language) are made orthogonal, over the
        # rows, to the constant and to the in-training indicator: sum_l u_l r_l = sum_l u_l c_l = 0 with
        # r_l the rows of language l and c_l those of them with l in training (the other features are
        # constant within a model x task or balanced over its languages). Otherwise an effect correlated
        # with being in training (te never is) would move the OLS estimate away from the planted
        # coefficient; this way the planted coefficients are the exact estimand.
        codes, inverse = np.unique(lang_codes[rows], return_inverse=True)
        A = np.column_stack([np.bincount(inverse, minlength=len(codes)),
                             np.bincount(inverse, weights=X["eval_lang_in_training"].to_numpy()[rows],
                                         minlength=len(codes))]).astype(float)
        projections.append((codes, np.eye(len(codes)) - A @ np.linalg.pinv(A)))
    task_of, model_of = table["task"].to_numpy(), table["model"].to_numpy()
    tasks = []
    for task in design.tasks:
        rows = np.flatnonzero(task_of == task)
        tasks.append((task, rows, pd.factorize(model_of[rows])[0], int(design.n_items[task])))
    return Layout(trained=(table["mixture"] != PRETRAINED).to_numpy(),
                  lang_codes=lang_codes,
                  run_codes=table.groupby(["model", "task", "mixture", "seed"], sort=False).ngroup().to_numpy(),
                  projections=projections, tasks=tasks)


def draw(table: pd.DataFrame, design: Design, noise: Noise, rng: np.random.Generator,
         lay: Layout | None = None) -> Draws:
    noise.check()
    lay = lay or layout(table, design)
    trained = lay.trained
    u = rng.normal(0.0, noise.lang_sd, lay.lang_codes.max() + 1)
    for codes, project in lay.projections:
        u[codes] = project @ u[codes]
    u = u[lay.lang_codes]
    v = rng.normal(0.0, noise.run_sd, lay.run_codes.max() + 1)[lay.run_codes]
    e = rng.normal(0.0, noise.noise_sd, len(table))
    sd = np.where(trained, math.hypot(noise.run_sd, noise.noise_sd), 0.0)
    latent = {}
    for task, rows, models, n in lay.tasks:
        shared = rng.standard_normal((models.max() + 1, n))[models]  # item difficulty: per item and model,
        own = rng.standard_normal((len(rows), n))                     # common to every language, mixture, seed
        lat = (math.sqrt(noise.rho) * shared + math.sqrt(1 - noise.rho) * own).astype(np.float32)
        latent[task] = (rows, np.array([f"{task}-{i:04d}" for i in range(n)]), lat)
    return Draws(lang=u, training=np.where(trained, v + e, 0.0), training_sd=sd, latent=latent)


def _clipped_normal_mean(mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """E[clip(X, CLIP)] for X ~ Normal(mean, sd), element-wise (sd = 0: clip(mean))."""
    from scipy.stats import norm

    lo, hi = CLIP
    out = np.clip(mean, lo, hi)
    pos = sd > 0
    if pos.any():
        m, s = mean[pos], sd[pos]
        a, b = (lo - m) / s, (hi - m) / s
        out[pos] = (lo * norm.cdf(a) + hi * norm.sf(b) + m * (norm.cdf(b) - norm.cdf(a))
                    + s * (norm.pdf(a) - norm.pdf(b)))
    return out


def outcomes(table: pd.DataFrame, mean: np.ndarray, draws: Draws, *, predictions: bool = False,
             coefs: Mapping[str, float] | None = None, description: str = "simulated") -> Simulation:
    """The simulated study for planted means `mean` (one per row of the design table) on `draws`."""
    from scipy.stats import norm

    raw = mean + draws.lang + draws.training
    lo, hi = CLIP
    clipped = int(np.sum((raw < lo) | (raw > hi)))
    p = np.clip(raw, lo, hi)
    threshold = norm.ppf(p).astype(np.float32)
    correct = np.zeros(len(table), dtype=np.int64)
    items: dict[str, TaskItems] = {}
    for task, (rows, ids, lat) in draws.latent.items():
        hits = lat < threshold[rows, None]
        correct[rows] = hits.sum(axis=1)
        items[task] = TaskItems(rows, ids, hits)
    out = table.copy()
    out["correct"] = correct
    out["p_planted"] = p
    out["p_config"] = _clipped_normal_mean(mean + draws.lang, draws.training_sd)
    out = out[[*REQUIRED_COLUMNS, "seed", "p_planted", "p_config"]]
    preds = _predictions(out, items) if predictions else None
    return Simulation(table=out, predictions=preds, coefs=dict(coefs or {}), clipped=clipped, items=items,
                      description=description)


def _predictions(table: pd.DataFrame, items: dict[str, TaskItems]) -> pd.DataFrame:
    parts = []
    for task, t in items.items():
        sub = table.iloc[t.cells]
        n = len(t.item_ids)
        parts.append(pd.DataFrame({
            "model": np.repeat(sub["model"].to_numpy(), n), "task": task,
            "mixture": np.repeat(sub["mixture"].to_numpy(), n), "eval_lang": np.repeat(sub["eval_lang"].to_numpy(), n),
            "seed": np.repeat(sub["seed"].to_numpy(), n), "item_id": np.tile(t.item_ids, len(sub)),
            "correct": t.correct.ravel()}))
    return pd.concat(parts, ignore_index=True)


def simulate(design: Design, *, coefs: Mapping[str, float] = PAPER_COEFS, seed: int = 0, noise: Noise | None = None,
             predictions: bool = True, **noise_overrides) -> Simulation:
    """Draw a results table (and, if `predictions`, its per-item answers) from the planted model; see the
    module doc. `noise_overrides`: fields of Noise (lang_sd, run_sd, noise_sd, rho). The table is the same
    with or without predictions: the items are drawn either way."""
    noise = replace(noise or Noise(), **noise_overrides)
    table = design_table(design)
    mean = planted_mean(table, coefs)
    draws = draw(table, design, noise, np.random.default_rng(seed))
    text = (f"simulated by `linguamix simulate` (seed {seed}; planted coefficients "
            + ", ".join(f"{k}={v:g}" for k, v in coefs.items())
            + f"; noise lang_sd={noise.lang_sd:g}, run_sd={noise.run_sd:g}, noise_sd={noise.noise_sd:g}, "
              f"rho={noise.rho:g}; seeds {','.join(map(str, design.seeds))})")
    return outcomes(table, mean, draws, predictions=predictions, coefs=coefs, description=text)


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
        frames = {"evaluations": sim.table, "simulation": pd.DataFrame({"description": [sim.description]})}
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

"""`linguamix power`: how likely each of the paper's comparisons is to detect an effect of a given size.

    linguamix power --design paper --effect 3 [--format json]

By simulation through the analysis's own code: for each simulated study (linguamix.analysis.simulate,
calibrated noise: language effects, run and cell training noise, shared item difficulty), an effect of
`effect` accuracy points is planted in one comparison family, outcomes are drawn, and the same functions
that `linguamix analyze` runs decide whether it was detected at alpha:

* `bilingual_vs_english_only:<setting>` (en, direct, cross_lingual): every bilingual en+X model is planted
  `effect` points above the English-only model in that setting; detected = the comparison's test
  (paired by default, Welch with `test="welch"`) is significant with bilingual better. Power = the share
  of the setting's comparisons detected (per configuration, as Table 2 counts them).
* `zero_shot_vs_direct:k=<k>`: every zero-shot case at k is planted `effect` points below direct
  exposure; detected = verdict `below`.
* `regression:sqrt_L_over_Lmax`: the coefficient is planted at effect / 100 (accuracy gained from 0 to
  Lmax languages); detected = its bootstrap 95 % interval lies above 0.

Every other planted accuracy follows the paper's Table 3 coefficients. `size` is the two-sided rejection
rate at effect 0 (nominal: alpha). `mde` is the smallest effect with power >= `target` (0.8): found by
bisection on a grid of effects evaluated on the same simulated draws (common random numbers, so the power
curve is monotone but for noise) and interpolated linearly between the bracketing grid points.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Mapping

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..mixtures import PRETRAINED, Mixture, label, languages_of
from . import tables
from .clusters import ClusterBootstrap
from .evaluations import pool_seeds
from .inputs import REQUIRED_COLUMNS, sort_results
from .regression import pooled_regression
from .simulate import PAPER_COEFS, Design, Noise, SimModel, design_table, draw, layout, outcomes, planted_mean

GRID = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 30.0)
"""Effects (points) the minimum detectable effect is searched on (with the requested effect added)."""


@dataclass(frozen=True)
class PowerOptions:
    n_sims: int = 50
    """Simulated studies per effect size (the regression, one detection per study, gets twice as many)."""
    seed: int = 0
    alpha: float = 0.05
    target: float = 0.8
    """Power the minimum detectable effect must reach."""
    test: str = "paired"
    """`paired` (McNemar / paired bootstrap, as `analyze` by default) or `welch` (the paper's t-test)."""
    noise: Noise = field(default_factory=Noise)
    coefs: Mapping[str, float] = field(default_factory=lambda: dict(PAPER_COEFS))
    reference: str = "en"
    english_direct: str = "english-only"
    ks: tuple[int, ...] = (4, 6, 9)
    n_boot: int = 200
    """Cluster-bootstrap replicates per simulated study (paired bootstrap tests where a side has several runs)."""
    n_boot_regression: int = 200
    """Bootstrap resamples of the regression per simulated study (its detection interval)."""
    families: tuple[str, ...] = ("comparisons", "regression")
    find_mde: bool = True
    """Search the minimum detectable effect (False: power at the requested effect and size only)."""
    workers: int = 1
    """Processes the simulated studies are spread over (the results do not depend on it)."""


def design_from_results(rows: pd.DataFrame, ev) -> Design:
    """The design behind a results table: its models, tasks, mixtures, languages, items and seeds."""
    models = rows[["model", "family", "size_b"]].drop_duplicates("model")
    mixtures = sorted({t for t in rows.loc[rows["mixture"] != PRETRAINED, "train_langs"]})
    cells = ev.cells
    seeds = sorted(set(cells.loc[cells["mixture"] != PRETRAINED, "seed"])) or [""]
    seeds = tuple(int(s) if str(s).lstrip("-").isdigit() else i for i, s in enumerate(seeds))
    return Design(models=tuple(SimModel(m.model, m.family, float(m.size_b)) for m in models.itertuples()),
                  tasks=tuple(sorted(rows["task"].unique())),
                  mixtures=tuple(Mixture.from_id(t) for t in mixtures),
                  eval_langs=tuple(tables.lang_order(rows["eval_lang"])),
                  n_items={t: int(n) for t, n in cells.groupby("task")["n"].max().items()},
                  include_pretrained=bool((rows["mixture"] == PRETRAINED).any()), seeds=seeds)


class _Planter:
    """Index arrays that plant a comparison family's effect into the design table's means."""

    def __init__(self, table: pd.DataFrame, o: PowerOptions):
        ref = o.reference
        pos = pd.Series(np.arange(len(table)), index=pd.MultiIndex.from_frame(
            table[["model", "task", "mixture", "eval_lang", "seed"]]))
        langs = table["train_langs"].map(languages_of)
        bi = ((table["n_train_langs"] == 2) & langs.map(lambda c: ref in c)).to_numpy()
        self.bi = np.flatnonzero(bi)
        self.bi_ref = self._find(pos, table.iloc[self.bi].assign(mixture=ref))
        zs = (table["n_train_langs"].isin(o.ks) & ~pd.Series([x in ls for x, ls in zip(table["eval_lang"], langs)],
                                                              index=table.index)).to_numpy()
        zs_rows = table.iloc[np.flatnonzero(zs)]
        direct = zs_rows["eval_lang"].map(lambda x: ref if x == ref else label((ref, x)))
        found = self._find(pos, zs_rows.assign(mixture=direct))
        self.zs, self.zs_direct = np.flatnonzero(zs)[found >= 0], found[found >= 0]
        self.zs_bilingual_mean: dict[int, np.ndarray] = {}
        if o.english_direct == "bilingual-mean":  # direct for the reference language = mean of bilingual rows
            on_ref = table.iloc[self.bi][table.iloc[self.bi]["eval_lang"] == ref]
            positions = on_ref.index.to_numpy()  # the table's index is its row positions
            groups = {k: positions[v] for k, v in on_ref.groupby(["model", "task"]).indices.items()}
            for i in self.zs[table["eval_lang"].to_numpy()[self.zs] == ref]:
                key = (table["model"].iat[i], table["task"].iat[i])
                if key in groups:
                    self.zs_bilingual_mean[int(i)] = groups[key]

    @staticmethod
    def _find(pos: pd.Series, rows: pd.DataFrame) -> np.ndarray:
        got = pos.reindex(pd.MultiIndex.from_frame(rows[["model", "task", "mixture", "eval_lang", "seed"]]))
        return got.fillna(-1).to_numpy(dtype=np.int64)

    def comparisons(self, base: np.ndarray, effect: float) -> np.ndarray:
        mean = base.copy()
        ok = self.bi_ref >= 0
        mean[self.bi[ok]] = base[self.bi_ref[ok]] + effect / 100
        mean[self.zs] = mean[self.zs_direct] - effect / 100
        for i, rows in self.zs_bilingual_mean.items():
            mean[i] = mean[rows].mean() - effect / 100
        return mean


class _Pooler:
    """The results table's rows (seeds pooled, canonical order) from a simulated study's cells, with the
    grouping worked out once (it is the same in every simulated study)."""

    def __init__(self, table: pd.DataFrame):
        rows = sort_results(pool_seeds(table.assign(correct=0), list(REQUIRED_COLUMNS))[list(REQUIRED_COLUMNS)])
        key = ["model", "task", "mixture", "eval_lang"]
        where = pd.Series(np.arange(len(rows)), index=pd.MultiIndex.from_frame(rows[key]))
        self.rows, self.row_of = rows, where.reindex(pd.MultiIndex.from_frame(table[key])).to_numpy()

    def __call__(self, sim) -> pd.DataFrame:
        out = self.rows.copy()
        out["correct"] = np.bincount(self.row_of, weights=sim.table["correct"].to_numpy(),
                                     minlength=len(out)).astype(np.int64)
        return out


def _verdicts(df: pd.DataFrame, test: str) -> pd.Series:
    if test == "paired" and "verdict_paired" in df.columns:
        return df["verdict_paired"].where(df["verdict_paired"].notna(), df["verdict_welch"])
    return df["verdict_welch"]


class _Study:
    """One family's detections on every simulated study, memoised per effect."""

    def __init__(self, design: Design, o: PowerOptions, family: str, pool=None):
        self.design, self.o, self.family, self.pool = design, o, family, pool
        self.table = design_table(design)
        self.base = planted_mean(self.table, o.coefs)
        self.layout = layout(self.table, design)
        self.pooled = _Pooler(self.table)
        self.planter = _Planter(self.table, o) if family == "comparisons" else None
        self.n_sims = o.n_sims * (2 if family == "regression" else 1)
        self.memo: dict[float, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        self.baseline: dict[str, float] = {}

    def names(self) -> list[str]:
        if self.family == "regression":
            return ["regression:sqrt_L_over_Lmax"]
        return ([f"bilingual_vs_english_only:{s}" for s in tables.SETTINGS]
                + [f"zero_shot_vs_direct:k={k}" for k in self.o.ks])

    def at(self, effect: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per comparison: (detected share, rejected-either-way share) per simulated study."""
        if effect not in self.memo:
            per = {n: (np.full(self.n_sims, np.nan), np.full(self.n_sims, np.nan)) for n in self.names()}
            sims = range(self.n_sims)
            if self.pool is None:
                results = [self._one(s, effect) for s in sims]
            else:  # every study is seeded by its index: the same numbers with any number of workers
                chunks = [list(sims[i::self.o.workers]) for i in range(self.o.workers)]
                results = [r for part in self.pool.map(_run_chunk, [(self, effect, c) for c in chunks]) for r in part]
                results = [results[i] for i in np.argsort([s for c in chunks for s in c])]
            for s, (detections, baseline) in enumerate(results):
                for name, (hit, reject) in detections.items():
                    per[name][0][s], per[name][1][s] = hit, reject
                for name, value in baseline.items():
                    self.baseline.setdefault(name, value)
            self.memo[effect] = per
        return self.memo[effect]

    def __getstate__(self):  # sent to the workers without the pool and the memo
        return {**self.__dict__, "pool": None, "memo": {}}

    def _one(self, s: int, effect: float) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
        o = self.o
        draws = draw(self.table, self.design, o.noise, np.random.default_rng([o.seed, s]), self.layout)
        if self.family == "regression":
            coefs = {**o.coefs, "sqrt_L_over_Lmax": effect / 100}
            sim = outcomes(self.table, planted_mean(self.table, coefs), draws)
            c = pooled_regression(self.pooled(sim), seed=s, n_resamples=o.n_boot_regression).coefficients
            row = c.set_index("feature").loc["sqrt_L_over_Lmax"]
            if np.isnan(row["coef"]):  # not estimable in this design (e.g. one mixture size): no detection rule
                return {}, {}
            return {"regression:sqrt_L_over_Lmax": (float(row["ci_low"] > 0),
                                                    float(row["ci_low"] > 0 or row["ci_high"] < 0))}, {}
        sim = outcomes(self.table, self.planter.comparisons(self.base, effect), draws)
        rows = self.pooled(sim)
        # Welch needs only counts; the paired tests need the item outcomes (and, for several runs, the bootstrap)
        boot = ClusterBootstrap(sim.evaluations(), n_boot=o.n_boot, rng=[o.seed, s, 1]) if o.test == "paired" else None
        out, baseline = {}, {}
        comp = tables.bilingual_comparisons(rows, reference=o.reference, boot=boot, alpha=o.alpha)
        v = _verdicts(comp, o.test)
        for setting in tables.SETTINGS:
            sel = (comp["setting"] == setting).to_numpy()
            if sel.any():
                out[f"bilingual_vs_english_only:{setting}"] = (float((v[sel] == "better").mean()),
                                                               float((v[sel] != "indistinguishable").mean()))
                baseline[f"bilingual_vs_english_only:{setting}"] = float(comp.loc[sel, "accuracy_ref"].mean())
        if not len(self.planter.zs):
            return out, baseline
        zs = tables.zero_shot_vs_direct(rows, ks=o.ks, reference=o.reference, alpha=o.alpha, test=o.test,
                                        english_direct=o.english_direct, boot=boot)
        for k in o.ks:
            sel = (zs["k"] == k).to_numpy()
            if sel.any():
                out[f"zero_shot_vs_direct:k={k}"] = (float((zs.loc[sel, "verdict"] == "below").mean()),
                                                     float((zs.loc[sel, "verdict"] != "indistinguishable").mean()))
                baseline[f"zero_shot_vs_direct:k={k}"] = float(zs.loc[sel, "accuracy_direct"].mean())
        return out, baseline

    def power(self, name: str, effect: float) -> float:
        return float(np.nanmean(self.at(effect)[name][0]))

    def mde(self, name: str, target: float, effect: float) -> float | None:
        """Bisection over GRID + the requested effect (evaluated already, so it brackets the search), then
        linear interpolation between the bracketing effects; None when even the largest falls short."""
        grid = sorted(set(GRID) | {effect})
        k = grid.index(effect)
        lo, hi = (0, k) if self.power(name, effect) >= target else (k, len(grid) - 1)
        if self.power(name, grid[hi]) < target:
            return None
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if self.power(name, grid[mid]) >= target else (mid, hi)
        p_lo, p_hi = self.power(name, grid[lo]), self.power(name, grid[hi])
        if p_lo >= target:
            return grid[lo]
        return grid[lo] + (target - p_lo) / (p_hi - p_lo) * (grid[hi] - grid[lo])


def power_analysis(design: Design, effect: float, options: PowerOptions = PowerOptions()) -> pd.DataFrame:
    """One row per comparison: power at `effect` points (with its Monte-Carlo SE), size, mde, and what
    was simulated. A comparison the design cannot make (e.g. no bilingual mixtures) is left out."""
    o = options
    if o.n_sims < 2:
        raise ConfigError(f"--n-sims must be >= 2, got {o.n_sims}")
    if not 0 < o.target < 1:
        raise ConfigError(f"--target must be between 0 and 1, got {o.target}")
    if o.test not in ("paired", "welch"):
        raise ConfigError(f"--test {o.test!r}: expected paired or welch")
    if effect < 0:
        raise ConfigError(f"--effect must be >= 0 (a magnitude in accuracy points), got {effect}")
    if o.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {o.workers}")
    pool = None
    if o.workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(o.workers, mp_context=multiprocessing.get_context("fork"))
    try:
        return _power_table(design, effect, o, pool)
    finally:
        if pool is not None:
            pool.shutdown()


def _run_chunk(args):
    study, effect, sims = args
    return [study._one(s, effect) for s in sims]


def _power_table(design: Design, effect: float, o: PowerOptions, pool) -> pd.DataFrame:
    rows = []
    for family in o.families:
        study = _Study(design, o, family, pool)
        at_effect, at_zero = study.at(float(effect)), study.at(0.0)
        for name in study.names():
            if name not in at_effect or np.isnan(at_effect[name][0]).all():
                continue
            hits = at_effect[name][0]
            rows.append({"comparison": name, "effect_pts": float(effect), "power": float(np.nanmean(hits)),
                         "power_se": float(np.nanstd(hits, ddof=1) / math.sqrt(np.sum(~np.isnan(hits)))),
                         "size": float(np.nanmean(at_zero[name][1])),
                         "mde_pts": study.mde(name, o.target, float(effect)) if o.find_mde else math.nan,
                         "target_power": o.target, "alpha": o.alpha, "n_sims": study.n_sims,
                         "test": "bootstrap CI" if family == "regression" else o.test,
                         "baseline_accuracy": study.baseline.get(name, math.nan)})
    return pd.DataFrame(rows, columns=["comparison", "effect_pts", "power", "power_se", "size", "mde_pts",
                                       "target_power", "alpha", "n_sims", "test", "baseline_accuracy"])


def with_noise(options: PowerOptions, **overrides) -> PowerOptions:
    return replace(options, noise=replace(options.noise, **{k: v for k, v in overrides.items() if v is not None}))

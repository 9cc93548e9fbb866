"""Cluster-aware bootstrap of pooled accuracies and their differences, and the paired tests.

Why: a pooled accuracy (e.g. 5 mixtures x 3 languages x 250 MGSM problems) is not 3,750 independent
items. The same 250 problems recur in every cell, and the cells of one training run share its training
noise. The pooled Wilson interval (the paper's) ignores both; this bootstrap resamples

* items, as clusters: one multinomial resample of a task's item ids per replicate, applied to every cell
  of the task (every language, mixture, seed and model), so correlated items move together; and
* runs (model x task x mixture x seed), where a statistic pools two or more of them: the cells of a
  resampled run come along as a block. Between-mixture differences then count as run-to-run
  variation, which makes the interval conservative when the mixtures are a fixed set.

Replicates of every cell are computed once, as matrix products (cells x items) @ (items x B), so each
statistic costs a gather and a weighted sum. Differences use the same item resample on both sides
(paired); the runs of each side are resampled independently.

Without per-item predictions (counts only) the items cannot be resampled. Then a cell's item noise is
drawn as Normal(0, sd) with sd its binomial standard error, *shared* by every cell of the task for pooled
accuracies (perfect correlation: by Cauchy-Schwarz an upper bound on the variance of any weighted mean)
and *independent* per cell for differences (no pairing credit). Runs are resampled as above.

Paired tests (`paired_test`): both sides a single cell with item outcomes -> exact McNemar on the
common items; several runs on a side -> the paired bootstrap's two-sided percentile p-value; counts only
-> not available (NaN; the caller falls back to Welch).
"""
from __future__ import annotations

import numpy as np

from .evaluations import Evaluations
from .stats import mcnemar_exact


def multinomial_weights(rng: np.random.Generator, n_boot: int, n: int) -> np.ndarray:
    """(n_boot, n) counts: how often each of n units is drawn in each of n_boot resamples of size n."""
    draws = rng.integers(0, n, (n_boot, n)) + n * np.arange(n_boot)[:, None]
    return np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float32)


def percentile(reps: np.ndarray, confidence: float = 0.95):
    """Equal-tailed percentile interval of replicates: (lo, hi) floats for a (B,) array, or arrays for a
    (G, B) array (one interval per row); non-finite replicates are ignored."""
    tail = (1 - confidence) / 2
    reps = np.asarray(reps, dtype=float)
    flat = reps.ndim == 1
    reps = np.atleast_2d(reps)
    lo, hi = np.full(len(reps), np.nan), np.full(len(reps), np.nan)
    finite = np.isfinite(reps)
    full = finite.all(axis=1)
    if full.any():
        lo[full], hi[full] = np.quantile(reps[full], [tail, 1 - tail], axis=1)
    for i in np.flatnonzero(~full & finite.any(axis=1)):
        lo[i], hi[i] = np.quantile(reps[i][finite[i]], [tail, 1 - tail])
    return (float(lo[0]), float(hi[0])) if flat else (lo, hi)


def bootstrap_p_value(reps: np.ndarray):
    """Two-sided p-value of 'difference = 0' from bootstrap replicates of the difference (the smallest
    alpha at which the equal-tailed percentile interval excludes 0); per row of a (G, B) array."""
    reps = np.asarray(reps, dtype=float)
    flat = reps.ndim == 1
    reps = np.atleast_2d(reps)
    finite = np.isfinite(reps)
    m = finite.sum(axis=1)
    below = (np.sum(finite & (reps <= 0), axis=1) + 1) / (m + 1)
    above = (np.sum(finite & (reps >= 0), axis=1) + 1) / (m + 1)
    p = np.where(m > 0, np.minimum(1.0, 2 * np.minimum(below, above)), np.nan)
    return float(p[0]) if flat else p


class ClusterBootstrap:
    """Bootstrap replicates of every cell's (correct, scored) item counts; see the module doc."""

    def __init__(self, ev: Evaluations, *, n_boot: int = 2000, rng=None):
        if n_boot < 2:
            raise ValueError(f"n_boot must be >= 2, got {n_boot}")
        self.ev = ev
        self.n_boot = n_boot
        self.rng = np.random.default_rng(rng)
        self.run = ev.cells["run"].to_numpy()
        self.task = ev.cells["task"].to_numpy()
        self.n = ev.cells["n"].to_numpy()
        self.correct = ev.cells["correct"].to_numpy()
        self.method = "items" if ev.items is not None else "counts"
        self._sums: dict[str, np.ndarray] = {}
        self._row_in_task: np.ndarray | None = None

    # -- replicates of every cell ------------------------------------------------------------------------
    def _cell_sums(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """(S, N): (cells, B) replicate counts of correct and scored items. kind: pooled | diff."""
        key = "items" if self.method == "items" else kind
        if key not in self._sums:
            self._sums[key] = self._items_sums() if key == "items" else self._counts_sums(shared=key == "pooled")
            if "N" not in self._sums:
                self._sums["N"] = self._N
        return self._sums[key], self._sums["N"]

    def _items_sums(self) -> np.ndarray:
        cells = self.ev.cells
        S = np.zeros((len(cells), self.n_boot), dtype=np.float32)
        N = np.zeros_like(S)
        for task in sorted(self.ev.items):
            t = self.ev.items[task]
            W = multinomial_weights(self.rng, self.n_boot, len(t.item_ids)).T  # items x B
            S[t.cells] = t.correct.astype(np.float32) @ W
            N[t.cells] = (t.present.astype(np.float32) @ W) if t.present is not None else W.sum(axis=0)
        self._N = N
        return S

    def _counts_sums(self, *, shared: bool) -> np.ndarray:
        cells = self.ev.cells
        n = cells["n"].to_numpy(dtype=float)
        acc = cells["correct"].to_numpy(dtype=float) / n
        smooth = (cells["correct"].to_numpy(dtype=float) + 2) / (n + 4)  # width also at 0/n and n/n
        sd = np.sqrt(smooth * (1 - smooth) / n)
        if shared:
            task_codes, tasks = cells["task"].factorize(sort=True)
            z = self.rng.standard_normal((len(tasks), self.n_boot))[task_codes]
        else:
            z = self.rng.standard_normal((len(cells), self.n_boot))
        S = (n[:, None] * np.clip(acc[:, None] + sd[:, None] * z, 0.0, 1.0)).astype(np.float32)
        self._N = np.repeat(n[:, None], self.n_boot, axis=1).astype(np.float32)
        return S

    # -- statistics ----------------------------------------------------------------------------------------
    def accuracy(self, idx: np.ndarray, *, kind: str = "pooled") -> np.ndarray:
        """(B,) replicates of the pooled accuracy (sum correct / sum scored) over cells `idx`."""
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size == 0:
            return np.full(self.n_boot, np.nan)
        S, N = self._cell_sums(kind)
        r = self.run[idx]
        runs, inverse = (r[:1], None) if (r == r[0]).all() else np.unique(r, return_inverse=True)
        if len(runs) == 1:
            s, m = S[idx].sum(axis=0, dtype=np.float64), N[idx].sum(axis=0, dtype=np.float64)
        else:  # a resampled run brings all its cells: weight each cell by its run's count
            V = multinomial_weights(self.rng, self.n_boot, len(runs))[:, inverse]  # B x cells
            s = np.einsum("bc,cb->b", V, S[idx], dtype=np.float64)
            m = np.einsum("bc,cb->b", V, N[idx], dtype=np.float64)
        return np.divide(s, m, out=np.full(self.n_boot, np.nan), where=m > 0)

    def accuracies(self, groups: list[np.ndarray], *, kind: str = "pooled") -> np.ndarray:
        """(groups, B) replicates of `accuracy` for many cell groups at once: groups within one run are
        summed by one sparse product, the others one by one."""
        from scipy.sparse import csr_matrix

        out = np.full((len(groups), self.n_boot), np.nan)
        S, N = self._cell_sums(kind)
        single = [i for i, g in enumerate(groups) if len(g) and (self.run[g] == self.run[g[0]]).all()]
        if single:
            cols = np.concatenate([groups[i] for i in single])
            rows = np.repeat(np.arange(len(single)), [len(groups[i]) for i in single])
            M = csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(len(single), len(S)))
            s, m = np.asarray(M @ S, dtype=np.float64), np.asarray(M @ N, dtype=np.float64)
            out[single] = np.divide(s, m, out=np.full_like(s, np.nan), where=m > 0)
        for i in sorted(set(range(len(groups))) - set(single)):
            out[i] = self.accuracy(groups[i], kind=kind)
        return out

    def differences(self, a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
        """(pairs, B) replicates of accuracy(a) - accuracy(b), pair by pair (see `difference`)."""
        return self.accuracies(a, kind="diff") - self.accuracies(b, kind="diff")

    def difference(self, idx_a: np.ndarray, idx_b: np.ndarray) -> np.ndarray:
        """(B,) replicates of accuracy(a) - accuracy(b): the same item resample on both sides."""
        return self.accuracy(idx_a, kind="diff") - self.accuracy(idx_b, kind="diff")

    def point(self, idx: np.ndarray) -> float:
        """The pooled accuracy itself (sum correct / sum n over the cells)."""
        idx = np.asarray(idx, dtype=np.int64)
        n = self.n[idx].sum()
        return float(self.correct[idx].sum() / n) if n else float("nan")

    def n_runs(self, idx: np.ndarray) -> int:
        r = self.run[np.asarray(idx, dtype=np.int64)]
        return int(r.size > 0) if r.size == 0 or (r == r[0]).all() else int(np.unique(r).size)

    def n_items(self, idx: np.ndarray) -> int:
        """Distinct items behind the cells (counts only: the largest cell, since items repeat)."""
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size == 0:
            return 0
        if self.method == "counts":
            return int(self.n[idx].max())
        t = self.ev.items[self.task[idx[0]]]
        rows = self._rows(idx)
        return int(t.correct.shape[1] if t.present is None else t.present[rows].any(axis=0).sum())

    def _rows(self, idx: np.ndarray) -> np.ndarray:
        """Rows of the cells in their task's item matrix."""
        if self._row_in_task is None:
            pos = np.full(len(self.ev.cells), -1, dtype=np.int64)
            for t in self.ev.items.values():
                pos[t.cells] = np.arange(len(t.cells))
            self._row_in_task = pos
        return self._row_in_task[idx]

    # -- paired tests ----------------------------------------------------------------------------------------
    def paired_tests(self, a: list[np.ndarray], b: list[np.ndarray], reps: np.ndarray):
        """(p, test, a_only, b_only) arrays for 'accuracy(a) = accuracy(b)' on the same items, one per pair.

        `reps`: (pairs, B) difference replicates (`difference`). a_only / b_only: discordant items (McNemar
        only, else NaN)."""
        m = len(a)
        p, a_only, b_only = np.full(m, np.nan), np.full(m, np.nan), np.full(m, np.nan)
        test = np.full(m, "none", dtype=object)
        if self.method != "items" or m == 0:
            return p, test, a_only, b_only
        sizes = np.array([[len(x), len(y)] for x, y in zip(a, b)]).reshape(-1, 2)
        single = (sizes == 1).all(axis=1)
        several = (sizes > 0).all(axis=1) & ~single
        p[several] = bootstrap_p_value(reps[several]) if several.any() else p[several]
        test[several] = "paired-bootstrap"
        which = np.flatnonzero(single)
        ia = np.array([a[i][0] for i in which], dtype=np.int64)
        ib = np.array([b[i][0] for i in which], dtype=np.int64)
        for task, t in self.ev.items.items():
            sel = self.task[ia] == task if len(which) else np.zeros(0, dtype=bool)
            if not sel.any():
                continue
            ra, rb = self._rows(ia[sel]), self._rows(ib[sel])
            xa, xb = t.correct[ra], t.correct[rb]
            both = True if t.present is None else (t.present[ra] & t.present[rb])
            a_only[which[sel]] = np.sum(xa & ~xb & both, axis=1)
            b_only[which[sel]] = np.sum(~xa & xb & both, axis=1)
        p[which] = mcnemar_exact(a_only[which], b_only[which]) if len(which) else p[which]
        test[which] = "mcnemar"
        return p, test, a_only, b_only

    def describe(self, idx: np.ndarray) -> str:
        """What a cell group's interval resamples: items (or the counts bound), and runs when several."""
        base = "items" if self.method == "items" else "counts-bound"
        return f"{base}+runs" if self.n_runs(idx) > 1 else base

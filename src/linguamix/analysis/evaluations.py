"""Per-run evaluation cells and their per-item outcomes: what the cluster-aware statistics resample.

A *cell* is one run evaluated on one language: (model, task, mixture, eval_lang, seed). A *run* is
(model, task, mixture, seed); the cells of a run share one trained model. The test items of a task are
the same problems in every language, mixture, seed and model (MGSM and mAPICall-Bank are parallel), so a
task has one item axis: `TaskItems.correct[j, i]` is the outcome of the task's j-th cell on item i.

The results table the paper's analyses read (`ResultsTable.rows`) pools the seeds of a cell; this keeps them
apart, so that seed-to-seed spread and run resampling are possible.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

KEY = ["model", "task", "mixture", "eval_lang"]
CELL_COLUMNS = [*KEY, "seed", "n", "correct"]


@dataclass(frozen=True)
class TaskItems:
    """One task's outcome matrix: rows = cells (indices into `Evaluations.cells`), columns = items."""

    cells: np.ndarray
    """int64 indices into Evaluations.cells, one per matrix row."""
    item_ids: np.ndarray
    correct: np.ndarray
    """bool (len(cells), len(item_ids)); False where the item was not scored."""
    present: np.ndarray | None = None
    """bool, same shape: the item was scored in this cell; None = every item in every cell."""


@dataclass(frozen=True)
class Evaluations:
    cells: pd.DataFrame
    """CELL_COLUMNS + `run` (int id of (model, task, mixture, seed)); index 0..C-1."""
    items: dict[str, TaskItems] | None = None
    """Per task, or None when per-item outcomes are unknown (counts only)."""

    @property
    def n_seeds(self) -> int:
        """Most seeds of any trained cell (the pretrained baseline is seed-free: one run)."""
        c = self.cells[self.cells["mixture"] != "pretrained"]
        c = c if len(c) else self.cells
        return int(c.groupby(KEY)["seed"].nunique().max()) if len(c) else 0

    def lookup(self, rows: pd.DataFrame) -> list[np.ndarray]:
        """For each row of a table with the KEY columns, the indices of its cells (all seeds)."""
        keys, groups = self._groups()
        found = keys.get_indexer(pd.MultiIndex.from_frame(rows[KEY])) if len(rows) else np.zeros(0, np.int64)
        empty = np.zeros(0, dtype=np.int64)
        return [groups[i] if i >= 0 else empty for i in found]

    def _groups(self) -> tuple[pd.MultiIndex, list[np.ndarray]]:
        cached = self.__dict__.get("_group_cache")
        if cached is None:
            codes = self.cells.groupby(KEY, sort=False).ngroup().to_numpy()
            order = np.argsort(codes, kind="stable")
            bounds = np.flatnonzero(np.diff(codes[order])) + 1
            groups = np.split(order.astype(np.int64), bounds)
            first = self.cells.iloc[[g[0] for g in groups]]
            cached = (pd.MultiIndex.from_frame(first[KEY]), groups)
            object.__setattr__(self, "_group_cache", cached)
        return cached


def normalise_seed(value) -> str:
    """Seeds as text, integral numbers without a decimal part ('1.0' -> '1'); missing -> ''."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def from_frames(cells: pd.DataFrame, predictions: pd.DataFrame | None = None) -> Evaluations:
    """Evaluations from per-seed cells (CELL_COLUMNS; `seed` optional) and optional per-item predictions
    (KEY + item_id + correct, `seed` optional), already validated against each other."""
    c = cells.copy()
    if "seed" not in c.columns:
        c["seed"] = ""
    c = c[CELL_COLUMNS].reset_index(drop=True)
    c["run"] = c.groupby(["model", "task", "mixture", "seed"], sort=False).ngroup().astype(np.int64)
    if predictions is None or len(predictions) == 0:
        return Evaluations(c, None)
    p = predictions
    if "seed" not in p.columns or not (c["seed"] != "").any():  # cells without seeds: pair on the key alone
        p = p.assign(seed="")
    pos = pd.Series(np.arange(len(c)), index=pd.MultiIndex.from_frame(c[[*KEY, "seed"]]))
    cell_of = pos.reindex(pd.MultiIndex.from_frame(p[[*KEY, "seed"]])).to_numpy()
    if np.isnan(cell_of.astype(float)).any():
        return Evaluations(c, None)  # predictions for cells we do not have: cannot be aligned
    cell_of = cell_of.astype(np.int64)
    correct = p["correct"].to_numpy(dtype=bool)
    item = p["item_id"].astype(str).to_numpy()
    items: dict[str, TaskItems] = {}
    task_of = c["task"].to_numpy()
    for task in pd.unique(task_of):
        rows = np.flatnonzero(task_of == task)
        sel = task_of[cell_of] == task
        ids, col = np.unique(item[sel], return_inverse=True)
        row_pos = np.full(len(c), -1, dtype=np.int64)
        row_pos[rows] = np.arange(len(rows))
        r = row_pos[cell_of[sel]]
        mat = np.zeros((len(rows), len(ids)), dtype=bool)
        mat[r, col] = correct[sel]
        seen = np.zeros_like(mat)
        seen[r, col] = True
        if not seen.any(axis=1).all():
            return Evaluations(c, None)  # some cell of this task has no predictions: counts only
        items[str(task)] = TaskItems(rows, ids, mat, None if seen.all() else seen)
    return Evaluations(c, items)


def pool_seeds(cells: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """One row per KEY: n and correct summed over seeds, the other `columns` taken from the first seed."""
    other = [c for c in columns if c not in (*KEY, "n", "correct", "seed")]
    return (cells.groupby(KEY, sort=False, as_index=False)
            .agg(**{c: (c, "first") for c in other}, n=("n", "sum"), correct=("correct", "sum")))

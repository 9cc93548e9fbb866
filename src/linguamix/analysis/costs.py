"""Where a study's time went: per-stage seconds summed over the collected runs, and their shares."""
from __future__ import annotations

import pandas as pd

from ..timing import LABELS, STAGES


def time_by_stage(timings: pd.DataFrame) -> pd.DataFrame:
    """One row per (scope, stage): scope `all` (every timed run) and then each model; seconds summed over
    the scope's runs, share of the scope's total, runs in the scope. `timings`: ResultsTable.timings."""
    scopes = [("all", timings)] + ([(m, g) for m, g in timings.groupby("model", sort=True)]
                                   if "model" in timings.columns else [])
    rows = []
    for scope, g in scopes:
        seconds = {k: float(g[f"time_{k}_s"].fillna(0).sum()) if f"time_{k}_s" in g else 0.0 for k in STAGES}
        total = sum(seconds.values())
        for k in STAGES:
            rows.append({"scope": scope, "stage": k, "label": LABELS[k], "seconds": round(seconds[k], 3),
                         "share": seconds[k] / total if total > 0 else 0.0, "n_runs": len(g)})
    return pd.DataFrame(rows, columns=["scope", "stage", "label", "seconds", "share", "n_runs"])

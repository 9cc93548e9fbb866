"""The state of a study's runs as `study status` and `plan` show it, read from the run store alone (a run is
done when its directory says so; the orchestrator may be killed at any moment)."""
from __future__ import annotations

import time
from collections import Counter
from typing import Any

from ..config import StudyConfig
from ..mixtures import languages_of
from ..records import RunSpec
from ..runs import expand, run_hash
from ..store import RunDir, Store
from ..timing import format_seconds, shares, shares_line, stage_totals

STATES = ("done", "running", "failed", "pending", "cancelled")


def run_state(cfg: StudyConfig, spec: RunSpec, rd: RunDir) -> dict[str, Any]:
    """The run's effective state under this config (`RunDir.state`: interrupted runs are pending, a finished
    run of another config is flagged `stale`)."""
    return rd.state(run_hash(cfg, spec))


def status_rows(cfg: StudyConfig, specs: list[RunSpec] | None = None,
                store: Store | None = None) -> list[dict[str, Any]]:
    """One row per run: name, kind, model, task, mixture, seed, state, attempts, elapsed_s, reason, host,
    updated, the run's SLURM job and its state now (job_id, job_state; None for a local run), and the
    seconds of each stage so far (timings, linguamix.timing)."""
    store = store or Store(cfg.output_path)
    now = time.time()
    rows = []
    specs = specs if specs is not None else expand(cfg)
    jobs = _slurm_jobs(store, [s.name for s in specs])
    for spec in specs:
        st = run_state(cfg, spec, store.run(spec))
        elapsed = st.get("elapsed_s")
        if st["state"] == "running" and st.get("started_unix"):
            elapsed = round(now - st["started_unix"], 1)
        rows.append({"name": spec.name, "kind": spec.kind, "model": spec.model, "task": spec.task,
                     "mixture": spec.mixture, "seed": spec.seed, "state": st["state"],
                     "attempts": int(st.get("attempts", 0)), "elapsed_s": elapsed, "reason": st.get("reason"),
                     "host": st.get("host"), "updated": st.get("updated"),
                     "job_id": jobs.get(spec.name, (None, None))[0], "job_state": jobs.get(spec.name, (None, None))[1],
                     "timings": stage_totals(store.run(spec).read_timings())})
    return rows


def time_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-stage seconds summed over `status_rows`, their shares, and the runs they come from."""
    totals = stage_totals({"stage": k, "seconds": v} for r in rows for k, v in (r.get("timings") or {}).items())
    timed = sum(any((r.get("timings") or {}).values()) for r in rows)
    return {"seconds": totals, "shares": shares(totals), "total_s": sum(totals.values()), "runs_timed": timed}


def time_line(rows: list[dict[str, Any]]) -> str | None:
    """`time: 1h02m measured in 4 runs: training steps 61 %, ...` (None before any run was timed)."""
    t = time_summary(rows)
    if not t["runs_timed"]:
        return None
    return (f"time: {format_seconds(t['total_s'])} of run time (summed over {t['runs_timed']} runs): "
            f"{shares_line(t['seconds'])}")


def _slurm_jobs(store: Store, names: list[str]) -> dict[str, tuple[str, str]]:
    """{run name: (SLURM job id, its state)} when the study ran on SLURM (one squeue call), else {}."""
    from .executors.slurm_state import job_states, ledger_path

    return job_states(store, names) if ledger_path(store).exists() else {}


def summary_line(rows: list[dict[str, Any]]) -> str:
    n = Counter(r["state"] for r in rows)
    return (f"{len(rows)} runs: {n['done']} done, {n['running']} running, {n['failed']} failed, "
            f"{n['pending']} pending" + (f", {n['cancelled']} cancelled" if n["cancelled"] else ""))


def plan_rows(cfg: StudyConfig, store: Store | None = None) -> list[dict[str, Any]]:
    store = store or Store(cfg.output_path)
    rows = []
    for spec in expand(cfg):
        st = run_state(cfg, spec, store.run(spec))
        model = cfg.model(spec.model)
        langs = list(languages_of(spec.mixture))
        rows.append({
            "name": spec.name, "kind": spec.kind, "model": spec.model, "model_id": model.id,
            "family": model.family, "size_b": model.size_b, "task": spec.task, "mixture": spec.mixture,
            "languages": langs, "n_languages": len(langs), "seed": spec.seed,
            "status": st.get("state", "pending"),
        })
    return rows

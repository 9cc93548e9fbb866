"""What the end of a SLURM job means for its run, and the record of the jobs a study submitted.

A job ends with a result file (submitit's pickle: the run's `Outcome`, or the error it raised), or without
one, when it was killed, ran out of memory or time, was cancelled or lost its node; then SLURM's final state
(squeue, or sacct where there is accounting) and the run directory decide, and the reason names the state
and the log's last lines. The record (`<output>/slurm/submitted.json`: run -> job id, last state, settled)
lets a restarted orchestrator adopt its predecessor's jobs and `study status` show them.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ...config import StudyConfig
from ...store import RunDir, Store, write_json
from . import slurmctl
from .base import NOT_RETRYABLE, Job, Outcome, log_lines

TIME_LIMIT = "time limit reached"
"""How the reason of a run that used up its time-limit requeues begins (not retried: it would end the same)."""


class RunFailed(RuntimeError):
    """Raised inside a submitit job so that SLURM and submitit record the run as failed."""


def next_time_limit(rd: RunDir, session: str) -> int:
    """How many times this run has now reached its time limit in this `study run` (counted in status.json)."""
    seen = rd.status().get("time_limits") or {}
    return (int(seen.get("n", 0)) if seen.get("session") == session else 0) + 1


def time_limit_reason(n: int, time_min: int, max_timeouts: int) -> str:
    return (f"{TIME_LIMIT} {n} time{'s' if n != 1 else ''}; raise executor.slurm.time_min (now {time_min} min) "
            f"or executor.slurm.max_timeouts (now {max_timeouts})")


def load_result(path: Path, wait: bool = False) -> tuple[str, Any]:
    """submitit's result file: ("success", value) or ("error", traceback)."""
    from submitit.core.utils import pickle_load

    for _ in range(15 if wait else 1):
        if path.exists():
            try:
                return pickle_load(path)
            except (EOFError, OSError):  # still being written
                time.sleep(1)
        elif wait:
            time.sleep(1)
    return ("error", f"the job wrote no readable result ({path})")


def judge_result(job: Job, job_id: str, payload: tuple[str, Any]) -> Outcome:
    """The outcome a job's result file holds; an error the run did not record itself is written to its status."""
    kind, value = payload
    if kind == "success" and isinstance(value, dict):
        return Outcome(**value)
    rd = RunDir(job.run_dir)
    st = rd.status()
    lines = [ln.strip() for ln in str(value).splitlines() if ln.strip()]
    reason = st.get("reason") if st.get("state") == "failed" else None
    reason = reason or (lines[-1][:300] if lines else "the job raised an error")
    reason = reason.removeprefix(f"{RunFailed.__module__}.RunFailed: ").removeprefix("RunFailed: ")
    if st.get("state") != "failed":
        rd.set_status("failed", reason=f"job {job_id}: {reason}"[:500])
    return Outcome("failed", None, f"job {job_id}: {reason}", not reason.startswith(NOT_RETRYABLE + (TIME_LIMIT,)))


def judge_end(cfg: StudyConfig, job: Job, job_id: str, state: str, exit_code: str, *, session: str,
              job_log: Path, no_accounting: str | None = None) -> Outcome:
    """A job that ended without a result: judged from SLURM's final `state` and the run directory, which this
    records (the job is gone, nothing else writes it now)."""
    rd = RunDir(job.run_dir)
    if rd.is_complete():
        return Outcome("done", 0)
    st = rd.status()
    mark = {"slurm_job": job_id, "slurm_state": state}
    if state == "CANCELLED":
        reason = f"cancelled on SLURM (job {job_id}); not retried: `study run --retry-cancelled` runs it again"
        rd.set_status("cancelled", reason=reason, **mark)
        return Outcome("cancelled", None, reason, retryable=False)
    s = cfg.executor.slurm
    if state == "TIMEOUT":  # the job could not requeue itself (it was killed before it could)
        n = next_time_limit(rd, session)
        mark["time_limits"] = {"session": session, "n": n}
        if n > s.max_timeouts:
            reason = time_limit_reason(n, s.time_min, s.max_timeouts)
            rd.set_status("failed", reason=reason, **mark)
            return Outcome("failed", None, reason, retryable=False)
        reason = f"time limit ({n}/{s.max_timeouts}) of job {job_id}: resubmitted"
        rd.set_status("pending", reason=reason, **mark)
        return Outcome("preempted", None, reason)
    stopped = st.get("state") == "pending" and str(st.get("reason", "")).startswith(("preempted", "requeued",
                                                                                       "time limit"))
    if state == "PREEMPTED" or (state == "COMPLETED" and stopped):  # SLURM will not run it again: we do
        reason = f"preempted (job {job_id} {state}): resubmitted"
        rd.set_status("pending", reason=reason, **mark)
        return Outcome("preempted", None, reason)
    reason = f"SLURM job {job_id} {state}{_exit(exit_code)}"
    if state == "UNKNOWN":
        reason += ", no longer listed by squeue" + (f" and no accounting ({no_accounting})" if no_accounting else "")
    run_log = [ln for ln in log_lines(rd.log_file, 6) if not ln.startswith("=== ")][-3:]  # not the command lines
    slurm_log = [ln for ln in log_lines(job_log, 40) if ln.startswith(("srun:", "slurmstepd")) and "error" in ln]
    tail = run_log + slurm_log[-2:]
    reason = (reason + ": " + (" | ".join(tail) if tail else "the run's log says nothing more"))[:500]
    rd.set_status("failed", reason=reason, **mark)
    return Outcome("failed", None, reason, retryable=True)


def _exit(code: str) -> str:
    """SLURM's "exit:signal" (ExitCode 137:0, sacct 0:9) in words."""
    status, _, sig = code.partition(":")
    if sig not in ("", "0"):
        return f" (signal {sig})"
    return f" (exit code {status})" if status not in ("", "0") else ""


# -- the record of submitted jobs (for adoption and `study status`) -----------------------------------------
def ledger_path(store: Store) -> Path:
    return store.root / "slurm" / "submitted.json"


def read_ledger(path: Path) -> dict[str, dict[str, Any]]:
    """{run name: {job_id, state, settled, ...}}; an earlier version wrote {run name: job id}."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {name: (e if isinstance(e, dict) else {"job_id": str(e), "state": None, "settled": False})
            for name, e in raw.items()}


def record(path: Path, entries: dict[str, dict[str, Any]]) -> None:
    """Update the record's entries of these runs (the orchestrator is its only writer)."""
    if not entries:
        return
    old = read_ledger(path)
    write_json(path, {**old, **{n: {**old.get(n, {}), **e, "updated": time.time()} for n, e in entries.items()}})


def job_states(store: Store, names: list[str]) -> dict[str, tuple[str, str]]:
    """{run name: (SLURM job id, state)} for `study status`: SLURM's state now where squeue knows the job,
    else the last one the orchestrator saw."""
    ledger = read_ledger(ledger_path(store))
    mine = {n: ledger[n] for n in names if n in ledger}
    if not mine:
        return {}
    live = slurmctl.squeue(sorted({e["job_id"] for e in mine.values()})) or {}
    return {n: (e["job_id"], live.get(e["job_id"], (e.get("state") or "UNKNOWN", ""))[0]) for n, e in mine.items()}

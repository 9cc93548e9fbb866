"""SLURM through submitit: one job array per resource shape (training runs, baseline evaluations); a
preempted or timed-out job checkpoints its training and is requeued.

    slurm           submitit job arrays; GPUs/CPUs/memory/time from the config's executor.slurm
    submitit-local  the same code path on this machine (submitit's LocalExecutor), for testing
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...config import StudyConfig
from ...records import RunSpec
from ...store import RunDir, Store, write_json
from .base import NOT_RETRYABLE, Job, Outcome, _killpg, classify, run_command, spawn


class RunFailed(RuntimeError):
    """Raised inside a submitit job so that SLURM and submitit record the run as failed."""


class RunJob:
    """The callable a submitit job runs: the run's command as a subprocess (so `accelerate launch` can start
    one process per GPU), judged from the run directory. submitit calls `checkpoint()` on SLURM's
    pre-emption/time-out signal: the training is told to save (SIGUSR1), and the same job is resubmitted;
    the rerun resumes from that checkpoint. Not a subclass of submitit's Checkpointable (submitit only
    looks for the method), so that importing this module does not need submitit."""

    def __init__(self, job: Job, *, grace_s: float = 90.0):
        self.job = job
        self.grace_s = grace_s
        self._proc: subprocess.Popen | None = None

    def __call__(self) -> dict[str, Any]:
        import submitit

        env = submitit.JobEnvironment()
        nodes = env.num_nodes
        cmd = run_command(self.job, machine_rank=env.node, num_machines=nodes,
                          main_ip=env.hostnames[0] if nodes > 1 else None)
        t0 = time.time()
        self._proc = spawn(cmd, self.job, launcher=self.job.accelerate_config is not None)
        code = self._proc.wait()
        self._proc = None
        if env.global_rank != 0:  # the other nodes of a multi-node run: node 0 judges and records
            return asdict(Outcome("done" if code == 0 else "failed", code))
        outcome = classify(self.job, code, since=t0)
        if outcome.state == "failed":
            raise RunFailed(outcome.reason)
        return asdict(outcome)

    def checkpoint(self, *args: Any, **kwargs: Any):
        from submitit.helpers import DelayedSubmission

        proc = self._proc
        if proc is not None and proc.poll() is None:
            _killpg(proc, signal.SIGUSR1)  # the trainer finishes its step, saves, exits 75
            try:
                proc.wait(timeout=self.grace_s)
            except subprocess.TimeoutExpired:
                pass
        return DelayedSubmission(RunJob(self.job, grace_s=self.grace_s))

    def __getstate__(self) -> dict[str, Any]:
        return {"job": self.job, "grace_s": self.grace_s, "_proc": None}


def slurm_parameters(cfg: StudyConfig, *, gpus: int, nodes: int, max_parallel: int | None = None,
                     name: str | None = None) -> dict[str, Any]:
    """submitit AutoExecutor parameters for a job array of runs needing `gpus` GPUs on each of `nodes`
    nodes. A job smaller than a node gets the node's CPUs and memory in proportion to its GPUs."""
    s = cfg.executor.slurm
    share = min(1.0, gpus / s.gpus_per_node) if s.gpus_per_node and gpus else 1.0
    params: dict[str, Any] = {
        "name": name or f"lmx-{cfg.name}",
        "timeout_min": s.time_min,
        "nodes": nodes,
        "tasks_per_node": 1,  # one launcher per node; `accelerate launch` starts a process per GPU
        "gpus_per_node": gpus,
        "cpus_per_task": max(1, int(s.cpus_per_task * share)),
        "mem_gb": max(1, int(s.mem_gb * share)),
        "stderr_to_stdout": True,
        "slurm_array_parallelism": max_parallel or s.array_parallelism,
        "slurm_signal_delay_s": 120,  # USR2 two minutes before the limit: time to save a checkpoint
    }
    if s.partition:
        params["slurm_partition"] = s.partition
    if s.account:
        params["slurm_account"] = s.account
    if s.additional:
        params["slurm_additional_parameters"] = dict(s.additional)
    return params


class SubmititExecutor:
    """Job arrays through submitit: one array per resource shape (training runs, baseline evaluations)."""

    def __init__(self, cfg: StudyConfig, *, cluster: str = "slurm", folder: str | Path | None = None,
                 max_parallel: int | None = None, gpus: list[str] | None = None):
        self.cfg = cfg
        self.cluster = cluster
        self.kind = "slurm" if cluster == "slurm" else "submitit-local"
        self.root = Path(folder) if folder else Store(cfg.output_path).root / "slurm"
        self.max_parallel = max_parallel
        self.local_gpus = list(gpus or [])
        self.active: dict[Any, Job] = {}
        self.name = ("SLURM via submitit (job arrays)" if cluster == "slurm" else
                     f"submitit's local executor (up to {self._local_slots()} job(s) at a time)")

    def _local_slots(self) -> int:
        return self.max_parallel or max(1, len(self.local_gpus))

    def resources(self, spec: RunSpec) -> tuple[int, int]:
        if self.cluster != "slurm":
            return (1 if self.local_gpus else 0), 1
        s = self.cfg.executor.slurm
        if spec.kind == "train" and self.cfg.train.accelerate_config:
            return s.gpus_per_node, s.nodes
        return 1, 1  # a single-process run (the baseline evaluation, or no multi-GPU recipe) uses one GPU

    def admit(self, queue: list[Job]) -> int:
        if self.cluster == "slurm":
            return len(queue)  # the array's parallelism limits what runs at once
        return max(0, min(len(queue), self._local_slots() - len(self.active)))

    def submit(self, jobs: list[Job], on_start=None) -> list[Any]:
        import submitit

        handles: dict[int, Any] = {}
        groups: dict[tuple[int, int, str], list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault((job.gpus, job.nodes, job.spec.kind), []).append(i)
        for (gpus, nodes, kind), idx in groups.items():
            ex = submitit.AutoExecutor(folder=self.root / "%j", cluster=self.cluster)
            ex.update_parameters(**slurm_parameters(self.cfg, gpus=gpus, nodes=nodes, max_parallel=self.max_parallel,
                                                    name=f"lmx-{self.cfg.name}-{kind}"))
            grace = max(10.0, ex.parameters.get("slurm_signal_delay_s", 120) - 30)
            with ex.batch():
                subs = [ex.submit(RunJob(jobs[i], grace_s=grace)) for i in idx]
            for i, sj in zip(idx, subs):
                handles[i] = sj
                self.active[sj] = jobs[i]
                if on_start:
                    on_start(jobs[i], f"as job {sj.job_id}" + (f" ({gpus} GPU x {nodes} node)" if gpus else ""))
        self._record({jobs[i].spec.name: str(h.job_id) for i, h in handles.items()})
        return [handles[i] for i in range(len(jobs))]

    def poll(self, handle) -> Outcome | None:
        if not handle.done():
            return None
        job = self.active.pop(handle)
        try:
            return Outcome(**handle.result())
        except Exception as e:  # noqa: BLE001 - FailedJobError, UncompletedJobError (killed, out of memory)
            st = RunDir(job.run_dir).status()
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            reason = st.get("reason") if st.get("state") == "failed" else None
            reason = reason or (lines[-1][:300] if lines else type(e).__name__)
            reason = reason.removeprefix(f"{RunFailed.__module__}.RunFailed: ").removeprefix("RunFailed: ")
            if st.get("state") != "failed":
                RunDir(job.run_dir).set_status("failed", reason=f"job {handle.job_id}: {reason}"[:500])
            return Outcome("failed", None, f"job {handle.job_id}: {reason}", not reason.startswith(NOT_RETRYABLE))

    def wait(self, seconds: float) -> None:
        time.sleep(max(seconds, 5.0) if self.cluster == "slurm" else seconds)

    def stop(self) -> None:
        if self.cluster == "slurm":  # SLURM jobs outlive the orchestrator; a rerun adopts them
            ids = sorted({str(h.job_id) for h in self.active})
            shown = ", ".join(ids[:8]) + (" ..." if len(ids) > 8 else "")
            print(f"study: {len(ids)} SLURM job(s) keep running ({shown}); "
                  "rerun `linguamix study run` to wait for them", file=sys.stderr)
            return
        for h in list(self.active):
            h.cancel(check=False)

    # -- jobs submitted by an earlier orchestrator ---------------------------------------------------
    @property
    def _ledger(self) -> Path:
        return self.root / "submitted.json"

    def _record(self, ids: dict[str, str]) -> None:
        if self.cluster != "slurm" or not ids:
            return
        old = json.loads(self._ledger.read_text()) if self._ledger.exists() else {}
        write_json(self._ledger, {**old, **ids})

    def adopt(self, jobs: list[Job]) -> dict[Any, Job]:
        """Jobs of these runs still queued or running on SLURM (submitted before a restart): wait for
        them instead of submitting the runs twice."""
        if self.cluster != "slurm" or not self._ledger.exists():
            return {}
        ledger = json.loads(self._ledger.read_text())
        wanted = {ledger[j.spec.name]: j for j in jobs if j.spec.name in ledger}
        live = active_slurm_jobs(list(wanted))
        out = {}
        if live:
            import submitit

            for job_id in live:
                handle = submitit.SlurmJob(folder=self.root / "%j", job_id=job_id)
                out[handle] = wanted[job_id]
                self.active[handle] = wanted[job_id]
        return out


def active_slurm_jobs(job_ids: list[str]) -> set[str]:
    """Which of these SLURM job ids are still pending or running (squeue); empty when squeue is absent."""
    if not job_ids:
        return set()
    try:
        r = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(job_ids)], capture_output=True, text=True,
                           timeout=60)
    except (OSError, subprocess.SubprocessError):
        return set()
    listed = {line.strip() for line in r.stdout.splitlines() if line.strip()}
    return {j for j in job_ids if j in listed}

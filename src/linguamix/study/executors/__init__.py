"""Executors: where the runs of a study execute. The orchestrator (`study.loop.run_study`) decides what runs
and when to retry; an executor only starts jobs and reports how each ended. Every executor runs the same
unit of work, `study.pipeline.run_one`, and judges the result from the run directory.

    inline, pool, process   this machine (`local.py`)
    slurm, submitit-local   submitit job arrays (`slurm.py`)

The protocol is `base.Executor`.
"""
from __future__ import annotations

import shutil

from ...config import StudyConfig
from ...errors import ConfigError
from .base import Executor, Job, Outcome, classify, log_tail, make_job, run_command, visible_gpus

EXECUTORS = ("local", "slurm", "submitit-local")


def make_executor(cfg: StudyConfig, kind: str | None = None, *, max_parallel: int | None = None,
                  isolation: str | None = None, gpus_per_run: int | None = None):
    """`local` runs inline on a CPU-only machine with one run at a time, and in subprocesses otherwise
    (`isolation` forces either); `slurm` and `submitit-local` go through submitit."""
    kind = kind or cfg.executor.kind
    max_parallel = max_parallel or cfg.executor.max_parallel
    if kind not in EXECUTORS:
        raise ConfigError(f"--executor {kind}: expected one of {', '.join(EXECUTORS)}")
    if kind in ("slurm", "submitit-local"):
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise ConfigError(f"--executor {kind} needs submitit: pip install 'linguamix[slurm]'") from None
        if kind == "slurm" and not (shutil.which("sbatch") and shutil.which("srun")):
            raise ConfigError("--executor slurm: sbatch/srun not found (not on a SLURM login node?); "
                              "use --executor local, or submitit-local to try the SLURM code path here")
        from .slurm import SubmititExecutor

        return SubmititExecutor(cfg, cluster="slurm" if kind == "slurm" else "local", max_parallel=max_parallel,
                                gpus=visible_gpus() if kind == "submitit-local" else None)
    from .local import InlineExecutor, PoolExecutor, ProcessExecutor

    gpus = visible_gpus()
    if isolation is None:
        isolation = ("inline" if (max_parallel or 1) == 1 else "pool") if not gpus else "process"
    if isolation == "inline":
        if (max_parallel or 1) > 1:
            raise ConfigError("--isolation inline runs one run at a time; drop --max-parallel or use pool/process")
        return InlineExecutor(cfg)
    if isolation == "pool":
        if gpus:
            raise ConfigError("--isolation pool is for CPU-only machines; with GPUs use process (one run per GPU)")
        return PoolExecutor(cfg, workers=max_parallel)
    return ProcessExecutor(cfg, gpus=gpus, max_parallel=max_parallel, gpus_per_run=gpus_per_run)


__all__ = ["EXECUTORS", "Executor", "Job", "Outcome", "classify", "log_tail", "make_executor", "make_job",
           "run_command", "visible_gpus"]

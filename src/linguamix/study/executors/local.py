"""Executors on this machine.

    inline    CPU: one run after another in this process (no start-up cost per run)
    pool      CPU: N long-lived worker processes taking run after run (N = --max-parallel)
    process   one `python -m linguamix study run-one` subprocess per run, one run per visible GPU in
              parallel (or `accelerate launch` over several GPUs for a multi-GPU run)
"""
from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import sys
import time
import traceback
from typing import Any, Iterator

from ...config import StudyConfig
from ...errors import LinguamixError
from ...records import RunSpec
from ...store import RunDir
from .base import Job, Outcome, append_log, classify, run_command, spawn, terminate


class InlineExecutor:
    """One run after another in this process: on CPU the imports are paid once, not per run. A crash
    of a run is caught and retried; a kill of this process leaves the run resumable."""

    kind = "inline"
    name = "local executor (one run at a time, in this process; each run's output in its logs/run.log)"

    def __init__(self, cfg: StudyConfig):
        self.cfg = cfg
        self._results: dict[str, Outcome] = {}

    def resources(self, spec: RunSpec) -> tuple[int, int]:
        return 0, 1

    def admit(self, queue: list[Job]) -> int:
        if _stop_requested():  # SIGTERM reached this process during a run that was not training: stop here
            return 0
        return 1 if queue and not self._results else 0

    def submit(self, jobs: list[Job], on_start=None) -> list[str]:
        for job in jobs:
            if on_start:
                on_start(job, "")
            self._results[job.spec.name] = self._run(job)
        return [job.spec.name for job in jobs]

    def poll(self, handle: str) -> Outcome | None:
        return self._results.pop(handle, None)

    def wait(self, seconds: float) -> None:
        pass

    def stop(self) -> None:
        pass

    def adopt(self, jobs: list[Job]) -> dict[Any, Job]:
        return {}  # nothing outlives a local orchestrator

    def _run(self, job: Job) -> Outcome:
        t0 = time.time()
        return classify(job, _run_in_this_process(self.cfg, job, progress=job.progress), since=t0)


def _run_in_this_process(cfg: StudyConfig, job: Job, *, progress: bool) -> int:
    """`run_one` -> exit status; a run's crash is written to its log, not raised: it must not end the
    study (inline) or the worker (pool)."""
    from ..pipeline import run_one

    rd = RunDir(job.run_dir)
    try:
        with output_to_log(rd):
            return run_one(cfg, job.spec, progress=progress, allow_config_change=job.allow_config_change)
    except LinguamixError as e:
        append_log(rd, f"{type(e).__name__}: {e}\n")
        return e.exit_code
    except Exception:  # noqa: BLE001 - reported through the run's status and log
        append_log(rd, traceback.format_exc())
        return 1
    finally:
        _free_memory()


@contextlib.contextmanager
def output_to_log(rd: RunDir) -> Iterator[None]:
    """What a run prints (its libraries' progress bars and warnings, a C library's output) goes to the run's
    log, as a subprocess run's does: the console keeps one line per run event and the study's bar. Both
    levels are redirected: Python's sys.stdout/sys.stderr and file descriptors 1 and 2."""
    rd.log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    with open(rd.log_file, "a", encoding="utf-8", buffering=1) as log:
        saved = []
        try:
            for fd in (1, 2):
                saved.append((fd, os.dup(fd)))
                os.dup2(log.fileno(), fd)
        except OSError:  # no such descriptor (an embedding host): the Python-level redirect still holds
            pass
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield
        finally:
            log.flush()
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)


def _stop_requested() -> bool:
    trainer = sys.modules.get("linguamix.trainer")  # its SIGTERM handler, once a training has run here
    return bool(trainer is not None and trainer.preempted())


def _free_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class ProcessExecutor:
    """One subprocess per run; with GPUs, each run gets its own (CUDA_VISIBLE_DEVICES), as many in
    parallel as there are GPUs (or `max_parallel`)."""

    kind = "process"

    def __init__(self, cfg: StudyConfig, *, gpus: list[str], max_parallel: int | None = None,
                 gpus_per_run: int | None = None):
        self.cfg = cfg
        self.gpus = list(gpus)
        self.free = list(gpus)
        self.gpus_per_run = gpus_per_run
        self.max_parallel = max_parallel or max(1, len(gpus) // max(1, gpus_per_run or 1))
        self.active: dict[int, tuple[subprocess.Popen, Job, list[str], float]] = {}
        self.name = (f"local executor ({len(gpus)} GPU(s), up to {self.max_parallel} run(s) at a time, "
                     "one subprocess each)" if gpus else f"local executor (CPU, up to {self.max_parallel} "
                     "subprocess(es) at a time)")

    def resources(self, spec: RunSpec) -> tuple[int, int]:
        n = len(self.gpus)
        if n == 0:
            return 0, 1
        if self.gpus_per_run:
            want = self.gpus_per_run if spec.kind == "train" else 1
        else:  # a multi-GPU recipe takes every visible GPU; one that is not uses one
            want = n if spec.kind == "train" and self.cfg.train.accelerate_config else 1
        return min(want, n), 1

    def admit(self, queue: list[Job]) -> int:
        slots, free, n = self.max_parallel - len(self.active), len(self.free), 0
        for job in queue:  # in order: a big run is not overtaken forever by small ones
            if slots <= 0 or job.gpus > free:
                break
            slots, free, n = slots - 1, free - job.gpus, n + 1
        return n

    def submit(self, jobs: list[Job], on_start=None) -> list[int]:
        handles = []
        for job in jobs:
            ids, self.free = self.free[: job.gpus], self.free[job.gpus:]
            env = {"CUDA_VISIBLE_DEVICES": ",".join(ids)} if self.gpus else {}
            if on_start:
                on_start(job, (f"on GPU {','.join(ids)} " if ids else "") + f"(log: {RunDir(job.run_dir).log_file})")
            proc = spawn(run_command(job), job, env=env)
            self.active[proc.pid] = (proc, job, ids, time.time())
            handles.append(proc.pid)
        return handles

    def poll(self, handle: int) -> Outcome | None:
        proc, job, ids, t0 = self.active[handle]
        code = proc.poll()
        if code is None:
            return None
        del self.active[handle]
        self.free += ids
        return classify(job, code, since=t0)

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)

    def stop(self) -> None:
        terminate([p for p, *_ in self.active.values()])

    def adopt(self, jobs: list[Job]) -> dict[Any, Job]:
        return {}  # a killed orchestrator's children got SIGTERM with it (PR_SET_PDEATHSIG)


# -- local, a pool of long-lived CPU workers ------------------------------------------------------------
_WORKER_CONFIGS: dict[str, StudyConfig] = {}


def _pool_init(threads: int, parent: int) -> None:
    """Worker start: it dies with the orchestrator (a killed `study run` leaves no worker behind: the
    run it was on resumes from its last checkpoint on the next `study run`), and takes its share of the
    cores (tiny models run fastest single-threaded, and two workers with one thread each do not
    spin-wait on each other)."""
    import signal

    from .base import die_with_parent

    die_with_parent(signal.SIGKILL)
    if os.getppid() != parent:  # the orchestrator died before the line above
        os._exit(1)
    import torch

    torch.set_num_threads(threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def _pool_run(job: Job) -> int:
    from ...config import load_config

    cfg = _WORKER_CONFIGS.get(job.config_path)
    if cfg is None:
        cfg = _WORKER_CONFIGS[job.config_path] = load_config(job.config_path)
    return _run_in_this_process(cfg, job, progress=False)


class PoolExecutor:
    """Several runs at once on a CPU machine, in worker processes that import torch once and then take
    run after run (a subprocess per run would pay the imports every time): the demo's executor."""

    kind = "pool"

    def __init__(self, cfg: StudyConfig, *, workers: int | None = None, threads: int | None = None):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        cores = os.cpu_count() or 1
        self.workers = workers or max(1, min(cores, 4))
        self.threads = threads or max(1, cores // self.workers)
        self.cfg = cfg
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_pool_init, initargs=(self.threads, os.getpid()))
        self.active: dict[int, tuple[Any, Job, float]] = {}
        self._next = 0
        self.name = (f"local executor ({self.workers} worker process(es), {self.threads} thread(s) each; each run's "
                     "output in its logs/run.log)")

    def resources(self, spec: RunSpec) -> tuple[int, int]:
        return 0, 1

    def admit(self, queue: list[Job]) -> int:
        return max(0, min(len(queue), self.workers - len(self.active)))

    def submit(self, jobs: list[Job], on_start=None) -> list[int]:
        handles = []
        for job in jobs:
            if on_start:
                on_start(job, "")
            self._next += 1
            self.active[self._next] = (self._pool.submit(_pool_run, job), job, time.time())
            handles.append(self._next)
        return handles

    def poll(self, handle: int) -> Outcome | None:
        fut, job, t0 = self.active[handle]
        if not fut.done():
            return None
        del self.active[handle]
        try:
            code = fut.result()
        except Exception as e:  # noqa: BLE001 - a worker died (killed, out of memory)
            append_log(RunDir(job.run_dir), f"worker process failed: {type(e).__name__}: {e}\n")
            code = 1
        return classify(job, code, since=t0)

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)

    def stop(self) -> None:
        """SIGTERM to every worker (a training run saves a checkpoint and returns), then let the pool go."""
        workers = list(getattr(self._pool, "_processes", {}).values())  # CPython's worker processes
        for p in workers:
            if p.is_alive():
                p.terminate()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def adopt(self, jobs: list[Job]) -> dict[Any, Job]:
        return {}

    def close(self) -> None:
        self._pool.shutdown(wait=True)

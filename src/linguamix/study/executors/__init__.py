"""Executors: where the runs of a study execute. The orchestrator (`study.run_study`) decides what runs
and when to retry; an executor only starts jobs and reports how each ended. Every executor runs the same
unit of work, `execute` under the run's lock, and judges the result from the run directory.

    inline          local, CPU: one run after another in this process (no start-up cost per run)
    pool            local, CPU: N long-lived worker processes taking run after run (N = --max-parallel)
    process         local: one `python -m linguamix study run-one` subprocess per run, one run per visible
                    GPU in parallel (or `accelerate launch` over several GPUs for a multi-GPU run)
    slurm           submitit job arrays; GPUs/CPUs/memory/time from the config's executor.slurm; a
                    preempted or timed-out job checkpoints its training and is requeued
    submitit-local  the slurm code path on this machine (submitit's LocalExecutor), for testing

The protocol: `resources(spec) -> (gpus, nodes)`, `admit(queue) -> how many to start now`,
`submit(jobs, on_start) -> handles`, `poll(handle) -> Outcome | None`, `wait(seconds)`, `stop()`.
"""
from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .config import StudyConfig
from .errors import ConfigError, LinguamixError
from .records import RunSpec
from .store import RunDir, Store, now, write_json

EXIT_PREEMPTED = 75  # = train.EXIT_PREEMPTED (not imported: that module pulls in torch)
EXIT_CONFIG = 2      # ConfigError / DataError / argparse: deterministic, never retried
STOP_GRACE_S = 120.0
"""How long a stopped run may take to save its checkpoint before it is killed."""
NOT_RETRYABLE = ("ConfigError", "DataError")


@dataclass(frozen=True)
class Job:
    """One run as an executor sees it."""

    spec: RunSpec
    config_path: str
    """Absolute path of the study config (jobs re-read it; nothing else is passed)."""
    run_dir: str
    gpus: int = 0
    """GPUs per node (0 = CPU)."""
    nodes: int = 1
    accelerate_config: str | None = None
    """Resolved `accelerate` config, set for a training run over more than one GPU."""
    allow_config_change: bool = False
    progress: bool = False


@dataclass(frozen=True)
class Outcome:
    state: str
    """done | failed | preempted"""
    exit_code: int | None = None
    reason: str | None = None
    retryable: bool = True


def make_job(cfg: StudyConfig, config_path: str, spec: RunSpec, rd: RunDir, *, executor,
             allow_config_change: bool = False, progress: bool = False) -> Job:
    gpus, nodes = executor.resources(spec)
    multi = spec.kind == "train" and gpus * nodes > 1
    return Job(spec=spec, config_path=str(Path(config_path).resolve()), run_dir=str(rd.path), gpus=gpus, nodes=nodes,
               accelerate_config=resolve_accelerate_config(cfg) if multi else None,
               allow_config_change=allow_config_change, progress=progress and executor.kind == "inline")


def resolve_accelerate_config(cfg: StudyConfig) -> str:
    """`train.accelerate_config`: a path (relative to the study config), or a bare name (`fsdp2`) looked up
    in `accelerate/` and `configs/accelerate/` beside the config, then in linguamix's shipped configs."""
    name = cfg.train.accelerate_config
    if not name:
        raise ConfigError("field 'train.accelerate_config': a run over several GPUs needs an accelerate config "
                          "(ddp, fsdp2, zero3 or a path)")
    candidates = [cfg.resolve_path(name)]
    if "/" not in name and not name.endswith((".yaml", ".yml")):
        here = Path(__file__).resolve().parent
        candidates += [cfg.resolve_path(f"accelerate/{name}.yaml"), cfg.resolve_path(f"configs/accelerate/{name}.yaml"),
                       here / "configs" / "accelerate" / f"{name}.yaml",
                       here.parents[1] / "configs" / "accelerate" / f"{name}.yaml"]
    for c in candidates:
        if c.is_file():
            return str(c.resolve())
    raise ConfigError(f"field 'train.accelerate_config': '{name}' not found (looked for "
                      f"{', '.join(str(c) for c in candidates)})")


def run_command(job: Job, *, machine_rank: int = 0, num_machines: int = 1, main_ip: str | None = None,
                port: int = 29500) -> list[str]:
    """The command a job runs: `python -m linguamix study run-one`, under `accelerate launch` when the
    run trains on more than one GPU."""
    tail = ["-m", "linguamix", "study", "run-one", job.config_path, "--run", job.spec.name]
    if not job.progress:
        tail.append("--quiet")
    if job.allow_config_change:
        tail.append("--allow-config-change")
    procs = job.gpus * job.nodes
    if job.accelerate_config and procs > 1:
        head = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", job.accelerate_config,
                "--num_processes", str(procs), "--num_machines", str(num_machines)]
        if num_machines > 1:
            head += ["--machine_rank", str(machine_rank), "--main_process_ip", str(main_ip),
                     "--main_process_port", str(port)]
        return head + tail
    return [sys.executable, *tail]


def classify(job: Job, code: int | None, *, since: float = 0.0) -> Outcome:
    """How a job ended, from its exit code and its run directory; a failure the run did not record itself
    (a crash before `execute`, a kill) is written to its status so `study status` shows the reason."""
    rd = RunDir(job.run_dir)
    st = rd.status()
    if code == 0 and rd.is_complete():
        return Outcome("done", 0)
    this_attempt = float(st.get("started_unix") or 0) >= since
    if code == EXIT_PREEMPTED or (this_attempt and st.get("state") == "pending"
                                  and str(st.get("reason", "")).startswith("preempted")):
        return Outcome("preempted", code, st.get("reason") or "preempted: rerun to resume")
    if st.get("state") == "failed" and st.get("reason") and this_attempt:
        reason = st["reason"]
    else:
        if code is not None and code < 0:
            try:
                reason = f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                reason = f"exit code {code}"
        elif code == 0:
            reason = "exited 0 but the run is not complete"
        else:
            reason = f"exit code {code}"
        tail = log_tail(rd)
        reason += f": {tail}" if tail else ""
        rd.set_status("failed", reason=reason[:500])
    retryable = code != EXIT_CONFIG and not reason.startswith(NOT_RETRYABLE)
    return Outcome("failed", code, reason, retryable)


def log_tail(rd: RunDir) -> str:
    """The last non-empty line of the run's log (what a crash printed last), progress bars removed."""
    try:
        with open(rd.log_file, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 4096))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [ln.split("\r")[-1].strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    return lines[-1][:300] if lines else ""


def visible_gpus() -> list[str]:
    """GPU ids this process may use (CUDA_VISIBLE_DEVICES, else every device torch sees)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        return []


# -- local, in this process ----------------------------------------------------------------------------
class InlineExecutor:
    """One run after another in this process: on CPU the imports are paid once, not per run. A crash
    of a run is caught and retried; a kill of this process leaves the run resumable."""

    kind = "inline"
    name = "local executor (one run at a time, in this process)"

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

    def _run(self, job: Job) -> Outcome:
        t0 = time.time()
        return classify(job, _run_in_this_process(self.cfg, job, progress=job.progress), since=t0)


def _run_in_this_process(cfg: StudyConfig, job: Job, *, progress: bool) -> int:
    """`run_one` -> exit status; a run's crash is written to its log, not raised: it must not end the
    study (inline) or the worker (pool)."""
    from .study import run_one

    rd = RunDir(job.run_dir)
    try:
        return run_one(cfg, job.spec, progress=progress, allow_config_change=job.allow_config_change)
    except LinguamixError as e:
        _append_log(rd, f"{type(e).__name__}: {e}\n")
        return e.exit_code
    except Exception:  # noqa: BLE001 - reported through the run's status and log
        _append_log(rd, traceback.format_exc())
        return 1
    finally:
        _free_memory()


def _stop_requested() -> bool:
    trainer = sys.modules.get("linguamix.trainer")  # its SIGTERM handler, once a training has run here
    return bool(trainer is not None and trainer.preempted())


def _append_log(rd: RunDir, text: str) -> None:
    rd.log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(rd.log_file, "a", encoding="utf-8") as f:
        f.write(text)


def _free_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


# -- local, one subprocess per run ---------------------------------------------------------------------
def _prctl():
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()  # resolved here, not in the forked child (no imports between fork and exec)


def spawn(cmd: list[str], job: Job, *, env: dict[str, str] | None = None, launcher: bool = False) -> subprocess.Popen:
    """Start a job's command in its own session, output appended to the run's log. The child gets SIGTERM
    when its parent dies (a killed orchestrator leaves no orphan training on), and ignores SIGUSR2 (SLURM's
    early warning, which submitit handles in the parent); a multi-process launcher also ignores SIGUSR1 so
    that only its workers act on it (they save a checkpoint; the launcher waits for them)."""
    ignore = (signal.SIGUSR2, signal.SIGUSR1) if launcher else (signal.SIGUSR2,)

    def child() -> None:
        for sig in ignore:
            signal.signal(sig, signal.SIG_IGN)
        if _PRCTL is not None:
            _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    rd = RunDir(job.run_dir)
    rd.log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(rd.log_file, "ab") as log:
        log.write(f"\n=== {now()} {' '.join(cmd)}\n".encode())
        log.flush()
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                                start_new_session=True, preexec_fn=child)


def terminate(procs: list[subprocess.Popen], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM each process group (training saves a checkpoint), wait, then SIGKILL what is left."""
    for p in procs:
        if p.poll() is None:
            _killpg(p, signal.SIGTERM)
    deadline = time.time() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            _killpg(p, signal.SIGKILL)
            p.wait()


def _killpg(p: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


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
            proc = spawn(run_command(job), job, env=env, launcher=job.accelerate_config is not None)
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



# -- local, a pool of long-lived CPU workers ------------------------------------------------------------
_WORKER_CONFIGS: dict[str, StudyConfig] = {}


def _pool_init(threads: int) -> None:
    """Worker start: its share of the cores (tiny models run fastest single-threaded, and two workers
    with one thread each do not spin-wait on each other)."""
    import torch

    torch.set_num_threads(threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def _pool_run(job: Job) -> int:
    from .config import load_config

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
                                         initializer=_pool_init, initargs=(self.threads,))
        self.active: dict[int, tuple[Any, Job, float]] = {}
        self._next = 0
        self.name = f"local executor ({self.workers} worker process(es), {self.threads} thread(s) each)"

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
            _append_log(RunDir(job.run_dir), f"worker process failed: {type(e).__name__}: {e}\n")
            code = 1
        return classify(job, code, since=t0)

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


# -- SLURM through submitit ----------------------------------------------------------------------------
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
            reason = reason.removeprefix("linguamix.executors.RunFailed: ").removeprefix("RunFailed: ")
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


# -- choosing one ----------------------------------------------------------------------------------------
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
        return SubmititExecutor(cfg, cluster="slurm" if kind == "slurm" else "local", max_parallel=max_parallel,
                                gpus=visible_gpus() if kind == "submitit-local" else None)
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

"""What every executor shares: the job record, how a job's end is judged from its run directory, the
command a job runs, and how a job's process is started and stopped.

The protocol (`Executor`): `resources(spec) -> (gpus, nodes)`, `admit(queue) -> how many to start now`,
`submit(jobs, on_start) -> handles`, `poll(handle) -> Outcome | None`, `wait(seconds)`, `stop()`, and
`adopt(jobs) -> {handle: job}` for jobs an earlier orchestrator left running (only SLURM has any).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from ...config import StudyConfig
from ...errors import EXIT_CONFIG, EXIT_PREEMPTED, ConfigError
from ...records import RunSpec
from ...store import RunDir, now

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
    """Resolved `accelerate` config, set for a training run over more than one process."""
    allow_config_change: bool = False
    progress: bool = False
    processes: int = 0
    """Processes per node (0 = one per GPU)."""

    @property
    def world(self) -> int:
        """Processes over all nodes."""
        return (self.processes or self.gpus) * self.nodes

    @property
    def launcher(self) -> bool:
        """Whether the job's command is a launcher (`accelerate launch`, `torchrun`) starting the processes."""
        return self.accelerate_config is not None and self.world > 1


@dataclass(frozen=True)
class Outcome:
    state: str
    """done | failed | preempted (resumable: run it again) | cancelled (by the user, on the cluster)"""
    exit_code: int | None = None
    reason: str | None = None
    retryable: bool = True


def make_job(cfg: StudyConfig, config_path: str, spec: RunSpec, rd: RunDir, *, executor,
             allow_config_change: bool = False, progress: bool = False) -> Job:
    gpus, nodes = executor.resources(spec)
    procs = executor.processes(spec) if hasattr(executor, "processes") else gpus  # per node
    multi = spec.kind == "train" and max(procs, gpus) * nodes > 1
    return Job(spec=spec, config_path=str(Path(config_path).resolve()), run_dir=str(rd.path), gpus=gpus, nodes=nodes,
               accelerate_config=resolve_accelerate_config(cfg) if multi else None,
               allow_config_change=allow_config_change, progress=progress and executor.kind == "inline",
               processes=procs if procs != gpus else 0)


def resolve_accelerate_config(cfg: StudyConfig) -> str:
    """`train.accelerate_config`: a path (relative to the study config), or a bare name (`fsdp2`) looked up
    in `accelerate/` and `configs/accelerate/` beside the config, then in linguamix's shipped configs."""
    name = cfg.train.accelerate_config
    if not name:
        raise ConfigError("field 'train.accelerate_config': a run over several GPUs needs an accelerate config "
                          "(ddp, fsdp2, zero3 or a path)")
    candidates = [cfg.resolve_path(name)]
    if "/" not in name and not name.endswith((".yaml", ".yml")):
        package = Path(__file__).resolve().parents[2]  # src/linguamix (shipped configs), then the checkout
        candidates += [cfg.resolve_path(f"accelerate/{name}.yaml"), cfg.resolve_path(f"configs/accelerate/{name}.yaml"),
                       package / "configs" / "accelerate" / f"{name}.yaml",
                       package.parents[1] / "configs" / "accelerate" / f"{name}.yaml"]
    for c in candidates:
        if c.is_file():
            return str(c.resolve())
    raise ConfigError(f"field 'train.accelerate_config': '{name}' not found (looked for "
                      f"{', '.join(str(c) for c in candidates)})")


def run_command(job: Job, *, machine_rank: int = 0, num_machines: int = 1, main_ip: str | None = None,
                port: int = 29500) -> list[str]:
    """The command a job runs: `python -m linguamix study run-one`, under `accelerate launch` when the
    run trains on more than one GPU, under `torchrun` (gloo) when it trains in several CPU processes
    (accelerate's launcher starts only one process on CPU without MPI)."""
    tail = ["-m", "linguamix", "study", "run-one", job.config_path, "--run", job.spec.name]
    if not job.progress:
        tail.append("--quiet")
    if job.allow_config_change:
        tail.append("--allow-config-change")
    procs = job.world
    if job.launcher and not job.gpus:
        head = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs // job.nodes)]
        if num_machines > 1:
            head += ["--nnodes", str(num_machines), "--node_rank", str(machine_rank), "--master_addr", str(main_ip),
                     "--master_port", str(port)]
        else:
            head.append("--standalone")  # a free port: two such jobs may share a node
        return head + tail[:2] + ["--"] + tail[2:]  # "--": torchrun would take `--run` for its `--run-path`
    if job.launcher:
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
        if tail.startswith("RunBusy"):  # the run's status belongs to the process that holds it
            return Outcome("failed", code, reason, retryable=False)
        rd.set_status("failed", reason=reason[:500])
    retryable = code != EXIT_CONFIG and not reason.startswith(NOT_RETRYABLE)
    return Outcome("failed", code, reason, retryable)


def log_tail(rd: RunDir) -> str:
    """The last non-empty line of the run's log (what a crash printed last), progress bars removed."""
    lines = log_lines(rd.log_file, 1)
    return lines[-1] if lines else ""


def log_lines(path: str | Path, n: int) -> list[str]:
    """The last `n` non-empty lines of a log (each at most 300 characters), progress bars removed."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    lines = [ln.split("\r")[-1].strip() for ln in text.splitlines()]
    return [ln[:300] for ln in lines if ln][-n:]


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


class Executor(Protocol):
    """Where runs execute; the orchestrator (`study.loop.run_study`) decides what runs and when to retry."""

    kind: str
    """`inline`, `pool`, `process`, `slurm` or `submitit-local`."""
    name: str
    """One line for the console: where and how runs execute."""

    def resources(self, spec: RunSpec) -> tuple[int, int]:
        """(GPUs per node, nodes) the run gets."""

    def admit(self, queue: Sequence[Job]) -> int:
        """How many of the queued jobs may start now."""

    def submit(self, jobs: Sequence[Job], on_start: Callable[[Job, str], None] | None = None) -> list[Any]:
        """Start the jobs; -> one handle per job, in order."""

    def poll(self, handle: Any) -> Outcome | None:
        """How the job ended, or None while it runs."""

    def wait(self, seconds: float) -> None:
        """Sleep between polls (an executor may sleep longer)."""

    def stop(self) -> None:
        """Stop (or, on SLURM, leave running) the active jobs: the orchestrator is going away."""

    def adopt(self, jobs: Sequence[Job]) -> dict[Any, Job]:
        """Jobs of these runs still running from an earlier orchestrator: {handle: job}."""


def _prctl():
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()  # resolved here, not in the forked child (no imports between fork and exec)


def die_with_parent(sig: int) -> None:
    """In a child process: receive `sig` when the parent dies (Linux PR_SET_PDEATHSIG; a no-op elsewhere).
    Imports nothing, so it is safe between fork and exec (a `preexec_fn`)."""
    if _PRCTL is not None:
        _PRCTL(1, sig)


def spawn(cmd: list[str], job: Job, *, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a job's command in its own session, output appended to the run's log. The child gets SIGTERM
    when its parent dies (a killed orchestrator leaves no orphan training on), and ignores SIGUSR2 (SLURM's
    early warning, which the parent handles) and SIGUSR1 until the trainer installs its handler (a "save now"
    that comes earlier is not a reason to die; a multi-process launcher never installs one, so only its
    workers act on it: they save a checkpoint; the launcher waits for them)."""
    ignore = (signal.SIGUSR2, signal.SIGUSR1)

    def child() -> None:
        for sig in ignore:
            signal.signal(sig, signal.SIG_IGN)
        die_with_parent(signal.SIGTERM)

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


def append_log(rd: RunDir, text: str) -> None:
    rd.log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(rd.log_file, "a", encoding="utf-8") as f:
        f.write(text)

"""SLURM through submitit: one job array per resource shape (training runs, baseline evaluations), one job per
run at a time. A job that SLURM stops resumes from its checkpoint in the same job wherever SLURM allows it.

    slurm           submitit job arrays; CPUs/GPUs/memory/time/partition/... from the config's executor.slurm
    submitit-local  the same code path on this machine (submitit's LocalExecutor), for testing

How a job ends, and what follows (the job decides in `RunJob`, the orchestrator from SLURM's final state):

    done                      the run is complete
    scontrol requeue,         the training saves a checkpoint and exits; SLURM runs the same job again and
      preemption (requeue)    it resumes; linguamix submits nothing
    time limit                the warning signal (executor.slurm.signal_delay_s before the limit) makes the
                              training save; the job requeues itself, at most executor.slurm.max_timeouts times,
                              then the run fails with "time limit reached N times; raise ..."
    scancel                   the run is `cancelled`, not retried (`study run --retry-cancelled` runs it again)
    killed, out of memory,    failed with SLURM's state and the log's last lines, retried up to max_retries;
      node failure            seen with or without `sacct` (squeue, the result file, the log)
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...config import StudyConfig
from ...errors import EXIT_PREEMPTED, LinguamixError
from ...records import RunSpec
from ...store import RunDir, Store
from . import slurmctl
from .base import Job, Outcome, _killpg, classify, run_command, spawn
from .slurm_state import (RunFailed, judge_end, judge_result, ledger_path, load_result, next_time_limit, read_ledger,
                          record, time_limit_reason)

RESULT_GRACE_S = 10.0
"""How long a job SLURM reports finished may take to show its result file (a shared file system lags)."""
MISSING_GRACE_S = 30.0
"""How long a job may be absent from squeue before it is judged from accounting, its files and its log."""
WARNING_SLACK_S = 90.0
"""SLURM sends the warning signal up to about a minute off the requested time."""


# -- inside the job ---------------------------------------------------------------------------------------
class RunJob:
    """The callable a submitit job runs: the run's command as a subprocess (so that `accelerate launch` or
    `torchrun` can start a process per GPU or CPU), judged from the run directory.

    On SLURM it takes the job's signals itself (submitit's handler would resubmit a copy of the job while
    SLURM requeues the original): the time-limit warning (SIGUSR2) is passed on to the training as SIGUSR1
    (it saves a checkpoint and exits 75), SIGTERM reaches the training from SLURM directly. When the training
    has stopped, the job asks SLURM what is happening to it (`_stopped`) and ends without a result when SLURM
    will run it again, so the orchestrator keeps waiting for the same job. Not a subclass of submitit's
    Checkpointable (submitit only looks for `checkpoint`), so that importing this module needs no submitit."""

    # class defaults: a job pickled by an earlier version lacks these attributes
    session, time_min, max_timeouts, signal_delay_s = "", 0, 3, 120.0

    def __init__(self, job: Job, *, grace_s: float = 90.0, session: str = "", time_min: int = 0,
                 max_timeouts: int = 3, signal_delay_s: float = 120.0):
        self.job = job
        self.grace_s = grace_s
        self.session = session
        """The `study run` that submitted the job: time limits are counted per run and session."""
        self.time_min, self.max_timeouts, self.signal_delay_s = time_min, max_timeouts, signal_delay_s
        self._proc: subprocess.Popen | None = None
        self._signals: dict[int, float] = {}
        """Signals SLURM sent the job -> when the first of each came."""

    def __call__(self) -> dict[str, Any]:
        import submitit

        env = submitit.JobEnvironment()
        on_slurm = env.cluster == "slurm"
        self._signals = {}
        nodes = env.num_nodes
        cmd = run_command(self.job, machine_rank=env.node, num_machines=nodes,
                          main_ip=env.hostnames[0] if nodes > 1 else None)
        if on_slurm:  # after submitit's handlers, which it installs before calling us
            for sig in (signal.SIGUSR2, signal.SIGTERM):
                signal.signal(sig, self._on_signal)
        t0 = time.time()
        self._proc = spawn(cmd, self.job)
        code = self._wait()
        self._proc = None
        if env.global_rank != 0:  # the other nodes of a multi-node run: node 0 judges and records
            return asdict(Outcome("done" if code == 0 else "failed", code))
        outcome = classify(self.job, code, since=t0)
        if on_slurm and outcome.state != "done" and (self._signals or outcome.state == "preempted"):
            outcome = self._stopped(env.job_id, outcome)  # raises SystemExit when SLURM runs this job again
        if outcome.state == "failed":
            raise RunFailed(outcome.reason)
        return asdict(outcome)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals.setdefault(signum, time.time())
        if signum == signal.SIGUSR2:
            self._tell_to_save()

    def _tell_to_save(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            _killpg(proc, signal.SIGUSR1)  # the trainer finishes its step, saves, exits 75

    def _wait(self) -> int:
        """Wait for the child by polling, never in a blocking `Popen.wait()`: a signal handler interrupting that
        call could not reap the child (the wait holds Popen's lock). After the warning, SIGUSR1 is repeated,
        since a training that had not yet installed its handler ignored it."""
        proc = self._proc
        assert proc is not None
        told = 0.0
        while (code := proc.poll()) is None:
            if signal.SIGUSR2 in self._signals and time.time() - told > 5.0:
                told = time.time()
                self._tell_to_save()
            time.sleep(0.2)
        return code

    def _stopped(self, job_id: str, outcome: Outcome) -> Outcome:
        """The training stopped on a signal: SLURM is requeueing the job (nothing to do), or it is the time
        limit (requeue within the budget), a preemption notice (requeue), or SLURM ends the job (scancel, a
        node going down: the orchestrator reads SLURM's final state)."""
        rd = RunDir(self.job.run_dir)
        info = slurmctl.show_job(job_id)
        restarted = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
        if _int(info.get("Restarts")) > restarted or info.get("JobState") in slurmctl.REQUEUING:
            rd.set_status("pending", reason=f"requeued by SLURM (job {job_id}): resumes from its checkpoint")
            raise SystemExit(EXIT_PREEMPTED)
        warned = self._signals.get(signal.SIGUSR2)
        left = slurmctl.seconds_left(info, warned) if warned else None
        if info.get("Reason") == "TimeLimit" or (warned and (left is None
                                                             or left <= self.signal_delay_s + WARNING_SLACK_S)):
            n = next_time_limit(rd, self.session)
            mark = {"time_limits": {"session": self.session, "n": n}}
            if n > self.max_timeouts:
                reason = time_limit_reason(n, self.time_min, self.max_timeouts)
                rd.set_status("failed", reason=reason, **mark)
                return Outcome("failed", outcome.exit_code, reason, retryable=False)
            what = f"time limit ({n}/{self.max_timeouts})"
        elif warned or info.get("JobState") == "RUNNING":
            what, mark = "preempted", {}  # a preemption notice, or a signal SLURM did not send: run again
        else:
            raise SystemExit(outcome.exit_code or 1)  # SLURM ends the job: its final state tells why
        ok, msg = slurmctl.requeue(job_id)
        if ok:
            rd.set_status("pending", reason=f"{what}: checkpoint saved; requeued as job {job_id}", **mark)
            raise SystemExit(EXIT_PREEMPTED)
        rd.set_status("pending", reason=f"{what}: checkpoint saved", **mark)
        return Outcome("preempted", outcome.exit_code, f"{what}; SLURM did not requeue job {job_id} ({msg})")

    def checkpoint(self, *args: Any, **kwargs: Any):
        """submitit's hook on its own preemption/time-out signal (submitit-local; on SLURM `_on_signal` handles
        it): tell the training to save, wait until it has exited, resubmit the same job."""
        from submitit.helpers import DelayedSubmission

        proc = self._proc
        if proc is not None and proc.poll() is None:
            _killpg(proc, signal.SIGUSR1)
            wait_exited(proc, self.grace_s)
        return DelayedSubmission(RunJob(self.job, grace_s=self.grace_s, session=self.session,
                                        time_min=self.time_min, max_timeouts=self.max_timeouts,
                                        signal_delay_s=self.signal_delay_s))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_proc": None, "_signals": {}}


def wait_exited(proc: subprocess.Popen, timeout: float) -> int | None:
    """Wait up to `timeout` s until the child has exited; its exit status, or None. Uses waitid(WNOWAIT), which
    sees the exit without reaping: this may run in a signal handler that interrupted `proc.wait()`, whose lock
    a second wait can never take (the child would stay <defunct> for the whole timeout)."""
    deadline = time.time() + timeout
    while True:
        if proc.returncode is not None:
            return proc.returncode
        try:
            info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # reaped meanwhile
            return proc.poll()
        if info is not None:
            proc.poll()  # reaps it when no other wait holds the lock; otherwise that wait does
            return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
        if time.time() >= deadline:
            return None
        time.sleep(0.1)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


# -- submitting ---------------------------------------------------------------------------------------------
def signal_delay(cfg: StudyConfig) -> int:
    """Seconds before the time limit the job is told to save: the configured delay, at most a quarter of the
    limit (a short limit would otherwise be warned at its start)."""
    s = cfg.executor.slurm
    return max(10, min(s.signal_delay_s, s.time_min * 60 // 4))


def slurm_parameters(cfg: StudyConfig, *, gpus: int, nodes: int, max_parallel: int | None = None,
                     name: str | None = None, gpus_per_node: int | None = None) -> dict[str, Any]:
    """submitit AutoExecutor parameters for a job array of runs needing `gpus` GPUs (0: a CPU job, no GPU asked
    for) on each of `nodes` nodes. A job smaller than a node gets the node's CPUs and memory in proportion."""
    s = cfg.executor.slurm
    per_node = s.gpus_per_node if gpus_per_node is None else gpus_per_node
    share = min(1.0, gpus / per_node) if per_node and gpus else 1.0
    params: dict[str, Any] = {
        "name": name or f"lmx-{cfg.name}",
        "timeout_min": s.time_min,
        "nodes": nodes,
        "tasks_per_node": 1,  # one launcher per node; it starts a process per GPU
        "cpus_per_task": max(1, int(s.cpus_per_task * share)),
        "mem_gb": max(1, int(s.mem_gb * share)),
        "stderr_to_stdout": True,
        "slurm_array_parallelism": max_parallel or s.array_parallelism,
        "slurm_signal_delay_s": signal_delay(cfg),
    }
    if gpus:
        params["gpus_per_node"] = gpus
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(s, key):
            params[f"slurm_{key}"] = getattr(s, key)
    if s.additional_parameters:
        params["slurm_additional_parameters"] = dict(s.additional_parameters)
    return params


def describe(params: dict[str, Any]) -> str:
    """What a job asks SLURM for, in one line: '1 CPU, 2 GB, 10 min, no GPU, partition cpu'."""
    cpus, gpus = params["cpus_per_task"], params.get("gpus_per_node", 0)
    parts = [f"{cpus} CPU{'s' if cpus != 1 else ''}", f"{params['mem_gb']} GB", f"{params['timeout_min']} min",
             f"{gpus} GPU{'s' if gpus != 1 else ''}/node" if gpus else "no GPU"]
    if params["nodes"] > 1:
        parts.append(f"{params['nodes']} nodes")
    parts += [f"{k.removeprefix('slurm_')} {params[k]}" for k in ("slurm_partition", "slurm_account", "slurm_qos",
                                                                  "slurm_constraint") if k in params]
    parts += [f"--{k}={v}" for k, v in params.get("slurm_additional_parameters", {}).items()]
    return ", ".join(parts)


class SubmititExecutor:
    """Job arrays through submitit: one array per resource shape (training runs, baseline evaluations); jobs
    are watched with squeue (and sacct where there is accounting), not with submitit's poller."""

    def __init__(self, cfg: StudyConfig, *, cluster: str = "slurm", folder: str | Path | None = None,
                 max_parallel: int | None = None, gpus: list[str] | None = None, out=None):
        self.cfg = cfg
        self.cluster = cluster
        self.kind = "slurm" if cluster == "slurm" else "submitit-local"
        self.root = Path(folder) if folder else ledger_path(Store(cfg.output_path)).parent
        self.max_parallel = max_parallel
        self.local_gpus = list(gpus or [])
        self.out = out or sys.stderr
        self.active: dict[Any, Job] = {}
        self.session = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        self.accounting = slurmctl.Accounting()
        self._seen: dict[str, slurmctl.Seen] = {}
        self._states: dict[str, tuple[str, str]] = {}
        self._states_at = 0.0
        self._stale: dict[str, float] = {}  # job id -> mtime of a result file from before SLURM reran the job
        s = cfg.executor.slurm
        self.gpus_per_node = s.gpus_per_node
        if cluster == "slurm" and s.gpus_per_node:
            found = slurmctl.partition_gpus(s.partition)
            if found == 0:
                self.gpus_per_node = 0
                self._say(f"slurm: partition {s.partition or '(default)'} has no GPUs (sinfo): jobs ask for none")
        shape = describe(slurm_parameters(cfg, gpus=self.resources_for(False)[0], nodes=1,
                                          gpus_per_node=self.gpus_per_node))
        self.name = (f"SLURM via submitit (job arrays; a job: {shape})" if cluster == "slurm" else
                     f"submitit's local executor (up to {self._local_slots()} job(s) at a time)")

    def _say(self, msg: str) -> None:
        print(msg, file=self.out, flush=True)

    def _local_slots(self) -> int:
        return self.max_parallel or max(1, len(self.local_gpus))

    def resources_for(self, multi: bool) -> tuple[int, int]:
        if self.cluster != "slurm":
            return (1 if self.local_gpus else 0), 1
        if multi:
            return self.gpus_per_node, self.cfg.executor.slurm.nodes
        return (1 if self.gpus_per_node else 0), 1  # a single-process run uses one GPU, or none on CPU

    def resources(self, spec: RunSpec) -> tuple[int, int]:
        return self.resources_for(spec.kind == "train" and bool(self.cfg.train.accelerate_config))

    def processes(self, spec: RunSpec) -> int:
        """Processes per node: one per GPU for a multi-GPU training run, `processes_per_node` if set."""
        if self.cluster != "slurm" or not (spec.kind == "train" and self.cfg.train.accelerate_config):
            return 1
        return self.cfg.executor.slurm.processes_per_node or max(1, self.gpus_per_node)

    def admit(self, queue: list[Job]) -> int:
        if self.cluster == "slurm":
            return len(queue)  # the array's parallelism limits what runs at once
        return max(0, min(len(queue), self._local_slots() - len(self.active)))

    def submit(self, jobs: list[Job], on_start=None) -> list[Any]:
        import submitit

        handles: dict[int, Any] = {}
        groups: dict[tuple[int, int, int, str], list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault((job.gpus, job.nodes, job.processes, job.spec.kind), []).append(i)
        s = self.cfg.executor.slurm
        for (gpus, nodes, _, kind), idx in groups.items():
            ex = submitit.AutoExecutor(folder=self.root / "%j", cluster=self.cluster)
            params = slurm_parameters(self.cfg, gpus=gpus, nodes=nodes, max_parallel=self.max_parallel,
                                      name=f"lmx-{self.cfg.name}-{kind}", gpus_per_node=self.gpus_per_node)
            ex.update_parameters(**params)
            delay = params["slurm_signal_delay_s"]
            with ex.batch():
                subs = [ex.submit(RunJob(jobs[i], grace_s=max(10.0, delay - 10), session=self.session,
                                         time_min=s.time_min, max_timeouts=s.max_timeouts, signal_delay_s=delay))
                        for i in idx]
            shape = describe(params)
            if self.cluster == "slurm":
                first = str(subs[0].job_id).split("_")[0]
                self._say(f"slurm: submitted {len(subs)} {kind} run(s) as job {first}"
                          f"{' (an array)' if len(subs) > 1 else ''}; each asks for {shape}")
            for i, sj in zip(idx, subs):
                handles[i] = sj
                self.active[sj] = jobs[i]
                if on_start:
                    on_start(jobs[i], f"as job {sj.job_id}")
        self._record({jobs[i].spec.name: {"job_id": str(h.job_id), "state": "SUBMITTED", "settled": False}
                      for i, h in handles.items()})
        return [handles[i] for i in range(len(jobs))]

    # -- watching ---------------------------------------------------------------------------------------
    def poll(self, handle) -> Outcome | None:
        job = self.active[handle]
        jid = str(handle.job_id)
        if self.cluster != "slurm":  # submitit's local executor: its own watching of its processes is exact
            if not handle.done():
                return None
            self.active.pop(handle)
            return judge_result(job, jid, load_result(handle.paths.result_pickle, wait=True))
        self._refresh()
        seen = self._seen.setdefault(jid, slurmctl.Seen(missing_since=time.time()))
        outcome = self._judge(job, jid, handle, seen)
        if outcome is not None:
            self.active.pop(handle)
            self._record({job.spec.name: {"job_id": jid, "state": seen.state or seen.last or "UNKNOWN",
                                          "settled": True, "outcome": outcome.state}})
        return outcome

    def _judge(self, job: Job, jid: str, handle, seen: slurmctl.Seen) -> Outcome | None:
        result = self._result(handle)
        if result is not None:
            mtime, payload = result
            outcome = judge_result(job, jid, payload)
            if outcome.state == "done" or seen.state not in slurmctl.ACTIVE:
                return outcome
            if seen.state != "COMPLETING" and self._states_at > mtime + RESULT_GRACE_S:
                self._stale[jid] = mtime  # SLURM runs the job again: that result was its previous run's
            return None
        if seen.state in slurmctl.ACTIVE:
            return None
        if seen.state is not None:  # ended: its result file may lag behind SLURM's state
            if time.time() - seen.since < RESULT_GRACE_S:
                return None
            state = seen.state
        else:  # not listed (ended longer than MinJobAge ago, or lost): ask accounting, else judge what is left
            if seen.missing_since is None or time.time() - seen.missing_since < MISSING_GRACE_S:
                return None
            state, seen.reason = self.accounting.states([jid]).get(jid, ("UNKNOWN", ""))
        code = slurmctl.show_job(jid).get("ExitCode", "") or (seen.reason if seen.state is None else "")
        return judge_end(self.cfg, job, jid, state, code, session=self.session, job_log=handle.paths.stdout,
                         no_accounting=self.accounting.unavailable)

    def _refresh(self) -> None:
        """One squeue for every active job, at most every 2 s (the loop polls each job in turn)."""
        if time.time() - self._states_at < 2.0:
            return
        ids = sorted({str(h.job_id) for h in self.active})
        states = slurmctl.squeue(ids)
        if states is None:  # the controller did not answer: judge nothing by its silence
            return
        self._states_at = time.time()
        changed = {}
        for jid in ids:
            seen = self._seen.setdefault(jid, slurmctl.Seen())
            state, reason = states.get(jid, (None, ""))
            if state is None:
                seen.state, seen.missing_since = None, seen.missing_since or time.time()
                continue
            seen.missing_since = None
            if state != seen.state:
                seen.state, seen.last, seen.reason, seen.since = state, state, reason, time.time()
                changed[jid] = state
        if changed:
            names = {str(h.job_id): j.spec.name for h, j in self.active.items()}
            self._record({names[j]: {"job_id": j, "state": s, "settled": False} for j, s in changed.items()})

    def _result(self, handle) -> tuple[float, tuple[str, Any]] | None:
        path = handle.paths.result_pickle
        try:
            path.parent.chmod(path.parent.stat().st_mode)  # refreshes a network file system's cached listing
            mtime = path.stat().st_mtime
        except OSError:
            return None
        if self._stale.get(str(handle.job_id)) == mtime:
            return None
        return mtime, load_result(path)

    def wait(self, seconds: float) -> None:
        time.sleep(max(seconds, 3.0) if self.cluster == "slurm" else seconds)

    def stop(self) -> None:
        if self.cluster == "slurm":  # SLURM jobs outlive the orchestrator; a rerun adopts them
            ids = sorted({str(h.job_id) for h in self.active})
            shown = ", ".join(ids[:8]) + (" ..." if len(ids) > 8 else "")
            self._say(f"study: {len(ids)} SLURM job(s) keep running ({shown}); "
                      "rerun `linguamix study run` to wait for them")
            return
        for h in list(self.active):
            h.cancel(check=False)

    # -- jobs submitted by an earlier orchestrator -------------------------------------------------------
    def _record(self, entries: dict[str, dict[str, Any]]) -> None:
        if self.cluster == "slurm":
            record(self.root / "submitted.json", entries)

    def adopt(self, jobs: list[Job]) -> dict[Any, Job]:
        """Jobs of these runs that an earlier orchestrator submitted and did not see end: those SLURM still
        lists (queued, running, or finished without anyone judging them) or that left a result. The loop then
        waits for them, or judges them at once, instead of submitting the runs twice."""
        if self.cluster != "slurm":
            return {}
        ledger = read_ledger(self.root / "submitted.json")
        wanted = {e["job_id"]: j for j in jobs if (e := ledger.get(j.spec.name)) and not e.get("settled")}
        if not wanted:
            return {}
        listed = slurmctl.squeue(list(wanted))
        if listed is None:
            raise LinguamixError("squeue did not answer: cannot tell which jobs of an earlier `study run` are still "
                                 "on the cluster (not submitting them twice); try again when it answers")
        import submitit

        out = {}
        for job_id, job in wanted.items():
            handle = submitit.SlurmJob(folder=self.root / "%j", job_id=job_id)
            if job_id in listed or handle.paths.result_pickle.exists():
                out[handle] = self.active[handle] = job
        return out



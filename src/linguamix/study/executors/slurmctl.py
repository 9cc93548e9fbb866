"""What linguamix asks SLURM itself, beside submitit's `sbatch`: the states of many jobs at once (`squeue`,
which also lists finished jobs for `MinJobAge` seconds), `sacct` where accounting is on, one job's details
and a requeue (`scontrol`), and a partition's GPUs (`sinfo`). Every call is bounded by a timeout, and a
command that fails is an answer ("unknown"), never an exception: the orchestrator must outlive a slow
controller. submitit's own poller is not used: it asks only `sacct`, and without accounting it never sees a
job that died without writing its result.
"""
from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass

ACTIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_FED",
                    "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"})
"""States of a job SLURM has not finished with; every other state (COMPLETED, FAILED, CANCELLED, TIMEOUT,
OUT_OF_MEMORY, NODE_FAIL, PREEMPTED, BOOT_FAIL, DEADLINE) is an end."""
REQUEUING = frozenset({"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD"})
TIMEOUT_S = 30.0


def _run(cmd: list[str], timeout: float = TIMEOUT_S) -> tuple[int | None, str, str]:
    """(exit status, stdout, stderr); status None when the command is missing or did not answer in time."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as e:
        return None, "", str(e)
    return r.returncode, r.stdout, r.stderr.strip()


def first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def squeue(job_ids: list[str]) -> dict[str, tuple[str, str]] | None:
    """{job id: (state, reason)} for the listed jobs SLURM still knows (pending, running, or finished less than
    MinJobAge ago); array tasks as `ARRAY_TASK`. None when squeue did not answer."""
    out: dict[str, tuple[str, str]] = {}
    for i in range(0, len(job_ids), 200):
        chunk = job_ids[i:i + 200]
        code, stdout, stderr = _run(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T|%r", "-j", ",".join(chunk)])
        if code is None or (code != 0 and "Invalid job id" not in stderr):
            return None  # a single unknown id is an error for squeue: it only means the job is gone
        for line in stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) == 3:
                out[parts[0]] = (parts[1], parts[2])
    return out


class Accounting:
    """`sacct`, where the cluster has accounting; the first failure ("Slurm accounting storage is disabled")
    switches it off for this process, with the reason kept for the console."""

    def __init__(self) -> None:
        self.unavailable: str | None = None

    def states(self, job_ids: list[str]) -> dict[str, tuple[str, str]]:
        """{job id: (state, exit code)} of jobs accounting knows; {} without accounting."""
        if self.unavailable is not None or not job_ids:
            return {}
        code, stdout, stderr = _run(["sacct", "-n", "-X", "-P", "-o", "JobID,State,ExitCode", "-j", ",".join(job_ids)])
        if code != 0:
            self.unavailable = first_line(stderr) or ("sacct not found" if code is None else f"sacct exit {code}")
            return {}
        out = {}
        for line in stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) == 3:
                out[parts[0]] = (parts[1].split()[0] if parts[1] else "UNKNOWN", parts[2])  # "CANCELLED by 0"
        return out


def show_job(job_id: str) -> dict[str, str]:
    """`scontrol show job -o` as {field: value} (JobState, Reason, Restarts, ExitCode, EndTime, ...); {} when
    the job is gone or the controller did not answer."""
    code, stdout, _ = _run(["scontrol", "show", "job", "-o", job_id])
    if code != 0:
        return {}
    fields = {}
    for token in first_line(stdout).split():
        key, eq, value = token.partition("=")
        if eq and key not in fields:
            fields[key] = value
    return fields


def seconds_left(info: dict[str, str], at: float | None = None) -> float | None:
    """Seconds from `at` (default now) to the job's end time, from `show_job`'s EndTime; None if unknown."""
    end = info.get("EndTime", "")
    try:
        return time.mktime(time.strptime(end, "%Y-%m-%dT%H:%M:%S")) - (at if at is not None else time.time())
    except ValueError:
        return None


def requeue(job_id: str) -> tuple[bool, str]:
    """Ask SLURM to run this job again (the same job id, after `cred_expire`); (done?, SLURM's message)."""
    code, stdout, stderr = _run(["scontrol", "requeue", job_id])
    return code == 0, first_line(stderr or stdout) or ("scontrol not found" if code is None else "")


def partition_gpus(partition: str | None) -> int | None:
    """The most GPUs a node of the partition (default: the default partition) advertises in its GRES; 0 for a
    CPU-only partition; None when sinfo did not answer."""
    cmd = ["sinfo", "-h", "-o", "%G"] + (["-p", partition] if partition else [])
    code, stdout, _ = _run(cmd)
    if code != 0 or not stdout.strip():
        return None
    most = 0
    for gres in stdout.split():
        for m in re.finditer(r"gpu(?::[^:,()]+)?:(\d+)", gres):
            most = max(most, int(m.group(1)))
    return most


@dataclass
class Seen:
    """What the orchestrator last saw of one job."""

    state: str | None = None
    """Its state in the last squeue that answered; None when that squeue did not list it."""
    last: str | None = None
    """The last state squeue listed."""
    reason: str = ""
    since: float = 0.0
    """When this state was first seen."""
    missing_since: float | None = None
    """When squeue first did not list the job (it ended longer than MinJobAge ago, or never existed)."""

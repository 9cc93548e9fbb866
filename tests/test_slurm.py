"""The SLURM executor without a cluster: sbatch parameters (CPU-only jobs ask for no GPU), how a job's end is
judged from squeue/sacct/scontrol answers (fake commands), what a job does when SLURM stops it (requeue,
time limit, scancel), the run lock under SLURM, and `study status` with SLURM's job ids. The same paths on a
real cluster: tests/test_slurm_cluster.py."""
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import yaml

from linguamix.cli import main
from linguamix.config import load_config
from linguamix.runs import expand, parse_only, run_config, select
from linguamix.store import RunDir, Store
from linguamix.study import pipeline
from linguamix.study.executors import slurm_state
from linguamix.study.executors.base import Job, Outcome, make_job, run_command
from linguamix.study.executors.slurm import RunJob, SubmititExecutor, slurm_parameters
from linguamix.study.loop import run_study
from linguamix.study.state import status_rows


def _config(tmp_path, slurm=None, **extra):
    doc = {"name": "unit", "output_dir": "out",
           "models": [{"id": "m/a", "name": "a", "family": "qwen3", "size_b": 0.6}],
           "tasks": {"math": {"train": {"source": "synthetic", "format": "synthetic-math"},
                              "test": {"source": "synthetic", "format": "synthetic-math"}}},
           "mixtures": {"design": [["en"], ["en", "sw"]]}, "eval": {"languages": ["en"]},
           "executor": {"kind": "slurm", "slurm": slurm or {}}, **extra}
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path, load_config(path)


def _job(cfg, spec, **kw):
    return Job(spec=spec, config_path="/x/study.yaml", run_dir=str(Store(cfg.output_path).run(spec).path), **kw)


@pytest.fixture()
def fake_slurm(tmp_path, monkeypatch):
    """Stand-ins for SLURM's commands, answering from files in the returned folder: sbatch records the script
    it is given and answers a job id; squeue prints `squeue.txt` (id|STATE|reason lines); sacct fails as on a
    cluster without accounting unless `sacct.txt` exists; `scontrol show job` prints `show_job.txt`,
    `scontrol requeue` appends to `requeued.txt`; sinfo prints `sinfo.txt`."""
    bin_dir, state = tmp_path / "bin", tmp_path / "slurm-state"
    bin_dir.mkdir()
    (state / "sbatch").mkdir(parents=True)
    scripts = {
        "srun": "exit 0",
        "sbatch": f'n=$(ls {state}/sbatch | wc -l)\ncp "$1" {state}/sbatch/$n.sh\n'
                  'echo "Submitted batch job $((4242 + n))"',
        "squeue": f"cat {state}/squeue.txt 2>/dev/null; exit 0",
        "sacct": f'if [ -f {state}/sacct.txt ]; then cat {state}/sacct.txt; exit 0; fi\n'
                 'echo "sacct: error: Slurm accounting storage is disabled" >&2; exit 1',
        "scontrol": f'case "$1" in show) cat {state}/show_job.txt 2>/dev/null;; '
                    f'requeue) echo "$2" >> {state}/requeued.txt;; esac; exit 0',
        "sinfo": f"cat {state}/sinfo.txt 2>/dev/null; exit 0",
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return state


def _sbatch_scripts(state):
    return [p.read_text() for p in sorted((state / "sbatch").iterdir())]


# -- what a job asks for ------------------------------------------------------------------------------------
def test_slurm_parameters_from_the_config(tmp_path):
    _, cfg = _config(tmp_path, slurm={
        "partition": "gpu", "account": "proj", "qos": "high", "constraint": "h100", "gpus_per_node": 8,
        "cpus_per_task": 64, "mem_gb": 512, "time_min": 600, "array_parallelism": 12,
        "additional_parameters": {"mail-type": "END"}})
    full = slurm_parameters(cfg, gpus=8, nodes=1)
    assert full == {"name": "lmx-unit", "timeout_min": 600, "nodes": 1, "tasks_per_node": 1, "gpus_per_node": 8,
                    "cpus_per_task": 64, "mem_gb": 512, "stderr_to_stdout": True, "slurm_array_parallelism": 12,
                    "slurm_signal_delay_s": 120, "slurm_partition": "gpu", "slurm_account": "proj",
                    "slurm_qos": "high", "slurm_constraint": "h100",
                    "slurm_additional_parameters": {"mail-type": "END"}}
    one = slurm_parameters(cfg, gpus=1, nodes=1, max_parallel=3)
    assert (one["cpus_per_task"], one["mem_gb"], one["slurm_array_parallelism"]) == (8, 64, 3)
    # a short limit is warned a quarter of it before its end, not at its start
    _, short = _config(tmp_path, slurm={"time_min": 2, "additional": {"qos": "x"}})  # `additional`: the old name
    assert slurm_parameters(short, gpus=0, nodes=1)["slurm_signal_delay_s"] == 30
    assert short.executor.slurm.additional_parameters == {"qos": "x"}


def test_cpu_only_jobs_ask_for_no_gpu(tmp_path, fake_slurm, capsys):
    _, cfg = _config(tmp_path, slurm={"gpus_per_node": 0, "cpus_per_task": 1, "mem_gb": 2, "time_min": 10,
                                      "partition": "cpu", "qos": "low", "constraint": "avx2",
                                      "additional_parameters": {"exclusive": True}})
    ex = SubmititExecutor(cfg, cluster="slurm")
    assert "1 CPU, 2 GB, 10 min, no GPU, partition cpu" in ex.name
    specs = select(cfg)
    jobs = [make_job(cfg, "s.yaml", s, Store(cfg.output_path).run(s), executor=ex) for s in specs]
    assert {(j.gpus, j.nodes) for j in jobs} == {(0, 1)}
    started = []
    ex.submit(jobs, on_start=lambda job, where: started.append(where))
    scripts = _sbatch_scripts(fake_slurm)
    assert len(scripts) == 2  # the training array and the baseline
    for text in scripts:
        assert "gpus" not in text and "gres" not in text
        for line in ("--cpus-per-task=1", "--mem=2GB", "--time=10", "--partition=cpu", "--qos=low",
                     "--constraint=avx2", "--exclusive"):
            assert f"#SBATCH {line}\n" in text, line
    err = capsys.readouterr().err
    assert "each asks for 1 CPU, 2 GB, 10 min, no GPU, partition cpu, qos low, constraint avx2" in err
    assert all("GPU" not in w for w in started)


def test_a_partition_without_gpus_gets_cpu_jobs(tmp_path, fake_slurm, capsys):
    _, cfg = _config(tmp_path, slurm={"gpus_per_node": 8, "partition": "cpu"})
    (fake_slurm / "sinfo.txt").write_text("(null)\n")
    ex = SubmititExecutor(cfg, cluster="slurm")
    assert ex.resources(expand(cfg)[0]) == (0, 1) and "no GPU" in ex.name
    assert "partition cpu has no GPUs" in capsys.readouterr().err
    (fake_slurm / "sinfo.txt").write_text("gpu:h100:8(S:0-1)\n")
    assert SubmititExecutor(cfg, cluster="slurm").resources(expand(cfg)[0]) == (1, 1)


def test_job_arrays_and_adoption(tmp_path, fake_slurm):
    (tmp_path / "accelerate").mkdir()
    (tmp_path / "accelerate" / "ddp.yaml").write_text("distributed_type: MULTI_GPU\n")
    _, cfg = _config(tmp_path, train={"accelerate_config": "ddp"}, slurm={
        "partition": "gpu", "gpus_per_node": 4, "cpus_per_task": 32, "mem_gb": 256, "time_min": 90,
        "array_parallelism": 2, "additional": {"qos": "high"}})
    ex = SubmititExecutor(cfg, cluster="slurm")
    specs = select(cfg, parse_only(["model=a,task=math"]))
    jobs = [make_job(cfg, "s.yaml", s, Store(cfg.output_path).run(s), executor=ex) for s in specs]
    assert ex.admit(jobs) == len(jobs)
    handles = ex.submit(jobs)
    train = next(t for t in _sbatch_scripts(fake_slurm) if "--array" in t)
    for line in ("--array=0-1%2", "--gpus-per-node=4", "--cpus-per-task=32", "--mem=256GB", "--time=90",
                 "--partition=gpu", "--qos=high", "--signal=USR2@120", "--job-name=lmx-unit-train", "--nodes=1"):
        assert f"#SBATCH {line}\n" in train, line
    base = next(t for t in _sbatch_scripts(fake_slurm) if "--array" not in t)
    assert "#SBATCH --gpus-per-node=1\n" in base and "#SBATCH --cpus-per-task=8\n" in base
    ids = sorted(str(h.job_id) for h in handles)
    assert ids == ["4242", "4243_0", "4243_1"]
    ledger = slurm_state.read_ledger(Store(cfg.output_path).root / "slurm" / "submitted.json")
    assert sorted(e["job_id"] for e in ledger.values()) == ids and set(ledger) == {s.name for s in specs}
    # a restarted orchestrator adopts the job squeue still lists instead of submitting its run again
    (fake_slurm / "squeue.txt").write_text("4243_1|RUNNING|None\n")
    adopted = SubmititExecutor(cfg, cluster="slurm").adopt(jobs)
    assert [str(h.job_id) for h in adopted] == ["4243_1"]
    assert [j.spec.name for j in adopted.values()] == [n for n, e in ledger.items() if e["job_id"] == "4243_1"]


def test_cpu_processes_start_under_torchrun(tmp_path):
    _, cfg = _config(tmp_path)
    spec = expand(cfg)[1]
    job = _job(cfg, spec, accelerate_config="/x/ddp.yaml", processes=2)
    cmd = run_command(job)
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]
    assert cmd[6:9] == ["-m", "linguamix", "--"] and cmd[-3:] == ["--run", spec.name, "--quiet"]
    two = run_command(Job(**{**job.__dict__, "nodes": 2}), machine_rank=1, num_machines=2, main_ip="n01")
    assert two[two.index("--nnodes") + 1] == "2" and two[two.index("--master_addr") + 1] == "n01"


# -- how the orchestrator judges a job that ended ------------------------------------------------------------
def _submitted(tmp_path, fake_slurm, monkeypatch, **slurm):
    monkeypatch.setattr("linguamix.study.executors.slurm.RESULT_GRACE_S", 0.0)
    monkeypatch.setattr("linguamix.study.executors.slurm.MISSING_GRACE_S", 0.0)
    _, cfg = _config(tmp_path, slurm={"gpus_per_node": 0, "time_min": 2, "max_timeouts": 1, **slurm})
    ex = SubmititExecutor(cfg, cluster="slurm")
    spec = expand(cfg)[1]
    rd = Store(cfg.output_path).run(spec)
    rd.init(spec.to_dict(), run_config(cfg, spec))
    job = make_job(cfg, "s.yaml", spec, rd, executor=ex)
    handle = ex.submit([job])[0]
    return ex, handle, rd


def _poll(ex, handle, rounds=4):
    for _ in range(rounds):
        ex._states_at = 0.0  # the next poll asks squeue again
        outcome = ex.poll(handle)
        if outcome is not None:
            return outcome
    return None


def test_a_killed_job_is_judged_without_sacct(tmp_path, fake_slurm, monkeypatch, caplog):
    ex, handle, rd = _submitted(tmp_path, fake_slurm, monkeypatch)
    (fake_slurm / "squeue.txt").write_text("4242|RUNNING|None\n")
    assert _poll(ex, handle, rounds=2) is None
    rd.log_file.parent.mkdir(parents=True, exist_ok=True)
    rd.log_file.write_text("=== 2026 python -m linguamix study run-one\nstep 12 loss 2.1\n")
    (fake_slurm / "squeue.txt").write_text("4242|FAILED|NonZeroExitCode\n")
    (fake_slurm / "show_job.txt").write_text("JobId=4242 JobState=FAILED Reason=NonZeroExitCode ExitCode=137:0\n")
    with caplog.at_level(logging.WARNING):
        outcome = _poll(ex, handle)
    assert outcome is not None and outcome.state == "failed" and outcome.retryable
    assert outcome.reason == "SLURM job 4242 FAILED (exit code 137): step 12 loss 2.1"
    assert rd.status()["state"] == "failed" and rd.status()["reason"] == outcome.reason
    assert "sacct" not in caplog.text  # submitit's poller (sacct on every poll) is not used
    ledger = slurm_state.read_ledger(ex.root / "submitted.json")
    assert ledger[rd.path.name]["settled"] and ledger[rd.path.name]["state"] == "FAILED"


def test_a_job_squeue_forgot_is_judged_from_sacct_or_as_unknown(tmp_path, fake_slurm, monkeypatch):
    ex, handle, rd = _submitted(tmp_path, fake_slurm, monkeypatch)
    outcome = _poll(ex, handle)  # never listed, no accounting
    assert outcome.state == "failed" and outcome.reason.startswith(
        "SLURM job 4242 UNKNOWN, no longer listed by squeue and no accounting (sacct: error: Slurm accounting "
        "storage is disabled)")
    ex, handle, rd = _submitted(tmp_path / "b", fake_slurm, monkeypatch)
    (fake_slurm / "sacct.txt").write_text(f"{handle.job_id}|OUT_OF_MEMORY|0:125\n")
    outcome = _poll(ex, handle)
    assert outcome.state == "failed" and outcome.reason.startswith(f"SLURM job {handle.job_id} OUT_OF_MEMORY")


def test_cancelled_and_timed_out_jobs(tmp_path, fake_slurm, monkeypatch):
    ex, handle, rd = _submitted(tmp_path, fake_slurm, monkeypatch)
    (fake_slurm / "squeue.txt").write_text("4242|CANCELLED|None\n")
    outcome = _poll(ex, handle)
    assert outcome.state == "cancelled" and not outcome.retryable and "--retry-cancelled" in outcome.reason
    assert rd.status()["state"] == "cancelled"
    # killed at its time limit before it could requeue itself: resubmitted within the budget, then failed
    ex, handle, rd = _submitted(tmp_path / "b", fake_slurm, monkeypatch)
    jid = str(handle.job_id)
    (fake_slurm / "squeue.txt").write_text(f"{jid}|TIMEOUT|TimeLimit\n")
    assert _poll(ex, handle).state == "preempted"
    ex.active[handle] = make_job(ex.cfg, "s.yaml", expand(ex.cfg)[1], rd, executor=ex)
    outcome = _poll(ex, handle)
    assert outcome.state == "failed" and not outcome.retryable
    assert outcome.reason == ("time limit reached 2 times; raise executor.slurm.time_min (now 2 min) or "
                              "executor.slurm.max_timeouts (now 1)")


def test_a_job_slurm_requeued_is_waited_for_not_resubmitted(tmp_path, fake_slurm, monkeypatch):
    ex, handle, rd = _submitted(tmp_path, fake_slurm, monkeypatch)
    for state in ("COMPLETING|None", "PENDING|BeginTime", "RUNNING|None"):
        (fake_slurm / "squeue.txt").write_text(f"4242|{state}\n")
        assert _poll(ex, handle, rounds=1) is None
    assert len(_sbatch_scripts(fake_slurm)) == 1


# -- what the job does when SLURM stops it ---------------------------------------------------------------------
def _stopped(tmp_path, fake_slurm, monkeypatch, show_job, *, warned=False, **kw):
    _, cfg = _config(tmp_path, slurm={"gpus_per_node": 0})
    spec = expand(cfg)[1]
    rd = Store(cfg.output_path).run(spec)
    rd.init(spec.to_dict(), run_config(cfg, spec))
    rd.set_status("pending", reason="preempted: checkpoint saved; rerun to resume")
    (fake_slurm / "show_job.txt").write_text(show_job)
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    job = RunJob(_job(cfg, spec), session="s1", time_min=2, signal_delay_s=30, **kw)
    job._signals = {signal.SIGUSR2 if warned else signal.SIGTERM: 0.0}
    return job, rd


def test_a_requeue_by_slurm_ends_the_job_without_a_result(tmp_path, fake_slurm, monkeypatch):
    job, rd = _stopped(tmp_path, fake_slurm, monkeypatch, "JobId=7 JobState=COMPLETING Reason=None Restarts=1\n")
    with pytest.raises(SystemExit, match=str(75)):
        job._stopped("7", Outcome("preempted", 75))
    assert rd.status()["reason"].startswith("requeued by SLURM (job 7)")
    assert not (fake_slurm / "requeued.txt").exists()  # SLURM runs it again: nothing to ask for
    # scancel: no restart, no time limit: SLURM's final state (CANCELLED) decides, no result is written
    job, rd = _stopped(tmp_path / "b", fake_slurm, monkeypatch, "JobId=7 JobState=COMPLETING Reason=None Restarts=0\n")
    with pytest.raises(SystemExit):
        job._stopped("7", Outcome("preempted", 75))
    assert not (fake_slurm / "requeued.txt").exists()


def test_the_time_limit_requeues_the_same_job_until_the_budget_is_spent(tmp_path, fake_slurm, monkeypatch):
    info = "JobId=7 JobState=COMPLETING Reason=TimeLimit Restarts=0\n"
    job, rd = _stopped(tmp_path, fake_slurm, monkeypatch, info, max_timeouts=2)
    for n in (1, 2):
        with pytest.raises(SystemExit, match=str(75)):
            job._stopped("7", Outcome("preempted", 75))
        assert rd.status()["time_limits"] == {"session": "s1", "n": n}
        assert rd.status()["reason"] == f"time limit ({n}/2): checkpoint saved; requeued as job 7"
    assert (fake_slurm / "requeued.txt").read_text().split() == ["7", "7"]
    outcome = job._stopped("7", Outcome("preempted", 75))
    assert outcome.state == "failed" and not outcome.retryable
    assert outcome.reason == ("time limit reached 3 times; raise executor.slurm.time_min (now 2 min) or "
                              "executor.slurm.max_timeouts (now 2)")
    # the orchestrator reads it from the job's error result and does not retry it
    judged = slurm_state.judge_result(job.job, "7", ("error", f"Traceback ...\nRunFailed: {outcome.reason}"))
    assert judged.state == "failed" and not judged.retryable and "time limit reached 3 times" in judged.reason


def test_a_warning_far_from_the_limit_is_a_preemption_notice(tmp_path, fake_slurm, monkeypatch):
    job, rd = _stopped(tmp_path, fake_slurm, monkeypatch, "JobId=7 JobState=RUNNING Reason=None Restarts=0 "
                       "EndTime=2099-01-01T00:00:00\n", warned=True)
    with pytest.raises(SystemExit):
        job._stopped("7", Outcome("preempted", 75))
    assert rd.status()["reason"] == "preempted: checkpoint saved; requeued as job 7"
    assert "time_limits" not in rd.status()


def test_checkpoint_in_a_signal_handler_reaps_the_training(tmp_path):
    """submitit calls `checkpoint` from its signal handler, which interrupts the job's wait for the training.
    The training saves and exits at once; the handler must see that (before: `Popen.wait` could not reap the
    child while the interrupted wait held its lock, and the handler waited its whole grace time)."""
    _, cfg = _config(tmp_path)
    job = _job(cfg, expand(cfg)[1])
    script = textwrap.dedent(f"""
        import signal, subprocess, sys
        from linguamix.study.executors.base import Job
        from linguamix.records import RunSpec
        from linguamix.study.executors.slurm import RunJob
        trap = "import signal, sys, time; signal.signal(signal.SIGUSR1, lambda *a: sys.exit(75)); " \\
               "print('training', flush=True); time.sleep(600)"
        job = RunJob(Job(RunSpec.from_name({job.spec.name!r}), {job.config_path!r}, {job.run_dir!r}), grace_s=600)
        job._proc = subprocess.Popen([sys.executable, "-c", trap], stdout=subprocess.PIPE, start_new_session=True)
        job._proc.stdout.readline()
        signal.signal(signal.SIGALRM, lambda *a: print("resubmits", type(job.checkpoint().function).__name__,
                                                       flush=True))
        signal.alarm(1)
        print("exit", job._proc.wait(), flush=True)  # as submitit's job waits while the signal comes
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.stdout.split("\n")[:2] == ["resubmits RunJob", "exit 75"], r.stderr[-2000:]


# -- the run lock, the loop, the status ------------------------------------------------------------------------
def test_a_slurm_job_does_not_idle_on_a_held_run_lock(tmp_path, monkeypatch):
    _, cfg = _config(tmp_path)
    rd = Store(cfg.output_path).run(expand(cfg)[1])
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setattr(pipeline, "LOCK_WAIT_S", 0.3)
    with pipeline._run_lock(rd):  # held here; a second holder (another open file) must give up
        with pytest.raises(pipeline.RunBusy, match="another process holds this run after 0 s"):
            with pipeline._run_lock(rd):
                pass


class _Cancelling:
    kind, name = "slurm", "a cluster whose user cancels everything"

    def __init__(self):
        self.calls = []

    def resources(self, spec):
        return 0, 1

    def admit(self, queue):
        return len(queue)

    def submit(self, jobs, on_start=None):
        self.calls += [j.spec.name for j in jobs]
        return [j for j in jobs]

    def poll(self, job):
        RunDir(job.run_dir).set_status("cancelled", reason="cancelled on SLURM")
        return Outcome("cancelled", None, "cancelled on SLURM", retryable=False)

    def adopt(self, jobs):
        return {}

    def wait(self, seconds):
        pass

    def stop(self):
        pass


def test_cancelled_runs_stay_cancelled_unless_asked(tmp_path, capsys):
    path, cfg = _config(tmp_path, executor={"kind": "slurm", "max_retries": 3})
    only = parse_only(["mix=en"])
    ex = _Cancelling()
    report = run_study(cfg, str(path), ex, only=only, prepare_data=False, poll_s=0)
    assert len(ex.calls) == 1 and report.cancelled and report.exit_code == 75  # not retried
    again = _Cancelling()
    report = run_study(cfg, str(path), again, only=only, prepare_data=False, poll_s=0)
    assert again.calls == [] and "1 cancelled (skipped; --retry-cancelled runs them)" in capsys.readouterr().err
    forced = _Cancelling()
    run_study(cfg, str(path), forced, only=only, prepare_data=False, poll_s=0, retry_cancelled=True)
    assert len(forced.calls) == 11  # resubmitted each time, up to the requeue limit


def test_status_shows_slurm_job_ids_and_states(tmp_path, fake_slurm, capsys):
    path, cfg = _config(tmp_path)
    names = [s.name for s in expand(cfg)]
    slurm_state.record(slurm_state.ledger_path(Store(cfg.output_path)),
                       {names[0]: {"job_id": "12", "state": "COMPLETED", "settled": True},
                        names[1]: {"job_id": "13_0", "state": "PENDING", "settled": False}})
    (fake_slurm / "squeue.txt").write_text("13_0|RUNNING|None\n")
    rows = {r["name"]: r for r in status_rows(cfg)}
    assert (rows[names[0]]["job_id"], rows[names[0]]["job_state"]) == ("12", "COMPLETED")
    assert (rows[names[1]]["job_id"], rows[names[1]]["job_state"]) == ("13_0", "RUNNING")
    assert rows[names[2]]["job_id"] is None
    assert main(["study", "status", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[-2:] == ["job", "reason"] and "13_0 RUNNING" in "\n".join(out)
    assert json.loads(json.dumps(rows[names[1]]))["job_state"] == "RUNNING"

"""linguamix on a real single-node SLURM cluster (`scripts/slurm-local.sh up`; `.ci/run` starts one where it
has root and apt, otherwise these tests skip with the reason), as a user runs it, with the faults clusters
produce: a tiny CPU study as job arrays (the local executor's results, the orchestrator SIGKILLed and rerun),
`scontrol requeue` and a partition preemption mid-training (the same job resumes from its checkpoint), a
2-minute time limit (checkpoint, requeue, finish; and the reason when the budget is spent), a job whose
processes are SIGKILLed and one that is `scancel`ed without `sacct`, and two training processes in one job.
Every `study run` is bounded by `timeout`."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import paced_env
import yaml

from linguamix.cli import main
from linguamix.config import load_config
from linguamix.runs import expand
from linguamix.store import RunDir, Store

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[1]
STUDY_TIMEOUT_S = 420


@dataclass
class Cluster:
    cpus: int


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    """The cluster `scripts/slurm-local.sh up` started (one for all these tests)."""
    if not shutil.which("sbatch"):
        pytest.skip("no SLURM here: `scripts/slurm-local.sh up` (needs root and apt) starts a one-node cluster")
    r = subprocess.run(["bash", str(REPO / "scripts" / "slurm-local.sh"), "status"], capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        state = "; ".join(line.strip() for line in r.stdout.splitlines() if line.strip())
        pytest.skip(f"the local SLURM cluster is not up (`scripts/slurm-local.sh up` starts one; it needs root and "
                    f"apt): {state}")
    cpus = subprocess.run(["sinfo", "-h", "-N", "-o", "%c"], capture_output=True, text=True).stdout.split()
    return Cluster(cpus=int(cpus[0]))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A tiny random base model (and its tokenizer) every study here trains."""
    from linguamix import tasks
    from linguamix.data import synthetic
    from linguamix.data.loaders.synthetic import load_synthetic
    from linguamix.tinymodel import build_random_tiny, save_model, train_tokenizer

    root = tmp_path_factory.mktemp("slurm_tiny")
    texts = synthetic.pretraining_corpus(["en", "es"], 200)
    for items in load_synthetic("synthetic-math", ["en", "es"], {"n": 20, "seed": 99}).values():
        texts += [tasks.get("math").render(i).prompt + tasks.get("math").render(i).completion for i in items]
    tok = train_tokenizer(texts, 400)
    save_model(build_random_tiny("qwen3", tok, hidden=32, layers=1, heads=1), tok, root / "tiny")
    return root / "tiny"


def study(root: Path, name: str, model: Path, *, design, epochs: int = 2, per_lang: int = 8, select: bool = True,
          slurm: dict | None = None, train: dict | None = None, executor: str = "slurm") -> Path:
    """A tiny math study: one model, the given mixtures (+ the pretrained baseline unless the design is
    filtered with --only), steps of 4 examples."""
    src = lambda n, **kw: {"source": "synthetic", "format": "synthetic-math", "options": {"n": n, **kw}}  # noqa: E731
    doc = {"name": name, "output_dir": str(root / "out"),
           "models": [{"id": str(model), "name": "tiny", "family": "qwen3", "size_b": 0.0001}],
           "tasks": {"math": {"train": src(per_lang + 4), "test": src(3, start=100000), "train_per_lang": per_lang,
                              "val_per_lang": 2, "max_length": 256, "max_new_tokens": 4}},
           "mixtures": {"design": design},
           "train": {"epochs": epochs, "global_batch_size": 4, "learning_rate": 3e-3, "logging_steps": 1,
                     "gradient_checkpointing": False, "select_every_epoch": select, **(train or {})},
           "eval": {"languages": ["en"], "batch_size": 8, "validation_limit": 2},
           "executor": {"kind": executor, "max_retries": 0,
                        "slurm": {"gpus_per_node": 0, "cpus_per_task": 1, "mem_gb": 2, "time_min": 10,
                                  **(slurm or {})}}}
    root.mkdir(parents=True, exist_ok=True)
    (root / "study.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return root / "study.yaml"


def run_cmd(config: Path, *extra: str, limit: int = STUDY_TIMEOUT_S) -> list[str]:
    return ["timeout", str(limit), sys.executable, "-m", "linguamix", "study", "run", str(config), "--quiet", *extra]


def study_run(config: Path, *extra: str, env: dict | None = None, limit: int = STUDY_TIMEOUT_S):
    return subprocess.run(run_cmd(config, *extra, limit=limit), capture_output=True, text=True, timeout=limit + 30,
                          env={**os.environ, **(env or {})})


def start(config: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    log = open(config.parent / "orchestrator.log", "w")
    return subprocess.Popen(run_cmd(config, *extra), stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})


def log_of(config: Path) -> str:
    return (config.parent / "orchestrator.log").read_text()


def wait_for(what: str, check, timeout: float = 180.0, proc: subprocess.Popen | None = None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the orchestrator ended (exit {proc.returncode}) before {what}")
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def ledger(config: Path) -> dict:
    p = Path(load_config(config).output_path) / "slurm" / "submitted.json"
    return json.loads(p.read_text()) if p.exists() else {}


def runs(config: Path) -> dict[str, RunDir]:
    cfg = load_config(config)
    return {s.name: Store(cfg.output_path).run(s) for s in expand(cfg)}


def train_steps(rd: RunDir) -> int:
    return sum("loss" in r for r in rd.read_log("train"))


def job_state(job_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-j", job_id, "-o", "%T"], capture_output=True,
                         text=True).stdout.split()
    return out[0] if out else ""


def same_result(a: RunDir, b: RunDir, rtol: float = 1e-5) -> None:
    """The same trained weights (training runs), test summary and completions."""
    import torch
    from safetensors.torch import load_file

    if (a.model_dir / "model.safetensors").exists():
        wa, wb = (load_file(str(rd.model_dir / "model.safetensors")) for rd in (a, b))
        assert wa.keys() == wb.keys()
        for k in wa:
            torch.testing.assert_close(wb[k], wa[k], rtol=rtol, atol=1e-6)
    assert a.read_summary("test")["languages"] == b.read_summary("test")["languages"]
    completions = [[p["completion"] for p in rd.read_predictions("test")] for rd in (a, b)]
    assert completions[0] == completions[1]


@pytest.fixture()
def cleanup():
    """Cancels what a test left on the cluster (its studies' jobs) and waits until they are gone."""
    names: list[str] = []
    yield names
    for name in names:
        for kind in ("train", "baseline"):
            subprocess.run(["scancel", f"--name=lmx-{name}-{kind}"], capture_output=True, timeout=30)
    deadline = time.time() + 60
    while time.time() < deadline:
        out = subprocess.run(["squeue", "-h", "-t", "PD,R,CG", "-o", "%j"], capture_output=True, text=True).stdout
        if not any(line.strip().startswith(tuple(f"lmx-{n}-" for n in names)) for line in out.splitlines()):
            break
        time.sleep(1)


def local_reference(root: Path, model: Path, **kw) -> dict[str, RunDir]:
    """The same study on the local executor (in this process): the results SLURM's must equal."""
    config = study(root, "local", model, executor="local", **kw)
    assert main(["study", "run", str(config), "--quiet"]) == 0
    return runs(config)


# -- a study as job arrays ------------------------------------------------------------------------------------
def test_a_study_as_job_arrays_matches_local_and_survives_a_killed_orchestrator(cluster, tiny, tmp_path, cleanup,
                                                                               capsys):
    design = [["en"], ["es"], ["en", "es"]]
    reference = local_reference(tmp_path / "local", tiny, design=design)
    config = study(tmp_path / "slurm", "arrays", tiny, design=design)
    cleanup.append("arrays")
    orchestrator = start(config)
    wait_for("every run submitted and a job running", lambda: len(ledger(config)) == 4 and any(
        job_state(e["job_id"]) == "RUNNING" for e in ledger(config).values()), proc=orchestrator)
    orchestrator.send_signal(signal.SIGKILL)
    orchestrator.wait()
    before = {name: e["job_id"] for name, e in ledger(config).items()}
    assert len(before) == 4 and log_of(config).count("slurm: submitted") == 2  # 3 training runs + the baseline

    r = study_run(config)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "study: waiting for" in r.stderr and "slurm: submitted" not in r.stderr, r.stderr[-2000:]
    assert {name: e["job_id"] for name, e in ledger(config).items()} == before  # nothing submitted twice
    for name, rd in runs(config).items():
        assert rd.is_complete() and rd.status()["attempts"] == 1, name
        same_result(reference[name], rd)
    assert main(["study", "status", str(config), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["runs"]
    assert {(r["name"], r["job_id"], r["job_state"]) for r in rows} == {(n, j, "COMPLETED") for n, j in before.items()}
    assert main(["study", "status", str(config)]) == 0
    table = capsys.readouterr().out
    assert "job" in table.splitlines()[0].split() and all(f"{j} COMPLETED" in table for j in before.values())


# -- SLURM stops a training job; the same job resumes ------------------------------------------------------------
MEDIUM = {"design": [["en"]], "epochs": 40, "per_lang": 32, "select": False}
"""320 steps: long enough to be stopped mid-training."""


@pytest.fixture(scope="module")
def medium_reference(tiny, tmp_path_factory):
    rds = local_reference(tmp_path_factory.mktemp("medium"), tiny, **MEDIUM)
    return next(rd for name, rd in rds.items() if "mix=en," in name)


def _stopped_mid_training(config: Path, stop) -> subprocess.CompletedProcess:
    """Run the study's one training run, call `stop(job_id)` once it trains, and wait for the orchestrator."""
    orchestrator = start(config, "--only", "mix=en")
    rd = next(rd for name, rd in runs(config).items() if "mix=en," in name)
    wait_for("the training to log 20 steps", lambda: train_steps(rd) >= 20, proc=orchestrator)
    job_id = next(iter(ledger(config).values()))["job_id"]
    stop(job_id)
    code = orchestrator.wait(timeout=STUDY_TIMEOUT_S)
    return subprocess.CompletedProcess(orchestrator.args, code, log_of(config), log_of(config))


def _resumed_in_the_same_job(config: Path, rd: RunDir, reference: RunDir, r) -> None:
    assert r.returncode == 0, r.stdout[-3000:]
    assert r.stdout.count("slurm: submitted") == 1 and " requeue " not in r.stdout  # linguamix resubmitted nothing
    assert len(ledger(config)) == 1 and len([p for p in (rd.path.parents[1] / "slurm").iterdir() if p.is_dir()]) == 1
    assert rd.is_complete() and rd.status()["attempts"] == 2
    assert json.loads((rd.path / "train_plan.json").read_text())["resumed_from"], "did not resume from a checkpoint"
    same_result(reference, rd)


def test_scontrol_requeue_resumes_the_same_job(cluster, tiny, tmp_path, cleanup, medium_reference):
    config = study(tmp_path, "requeue", tiny, **MEDIUM)
    cleanup.append("requeue")
    r = _stopped_mid_training(config, lambda job_id: subprocess.run(["scontrol", "requeue", job_id], check=True))
    rd = next(rd for name, rd in runs(config).items() if "mix=en," in name)
    _resumed_in_the_same_job(config, rd, medium_reference, r)


def test_a_partition_preemption_resumes_the_same_job(cluster, tiny, tmp_path, cleanup, medium_reference):
    config = study(tmp_path, "preempted", tiny, **MEDIUM, slurm={"partition": "cpu", "cpus_per_task": cluster.cpus})
    cleanup.append("preempted")
    urgent = []

    def preempt(job_id):  # a job of the high-priority partition that needs the whole node
        out = subprocess.run(["sbatch", "--parsable", "-p", "high", "-c", str(cluster.cpus), "-o", "/dev/null",
                              "-J", "lmx-preempted-train", "--wrap", "sleep 2"], capture_output=True, text=True,
                             check=True)
        urgent.append(out.stdout.strip())

    r = _stopped_mid_training(config, preempt)
    rd = next(rd for name, rd in runs(config).items() if "mix=en," in name)
    assert "DUE TO PREEMPTION" in (rd.path.parents[1] / "slurm" / ledger(config)[rd.path.name]["job_id"]
                                   / f"{ledger(config)[rd.path.name]['job_id']}_0_log.out").read_text()
    assert job_state(urgent[0]) == "COMPLETED"
    _resumed_in_the_same_job(config, rd, medium_reference, r)


# -- the time limit ----------------------------------------------------------------------------------------------
def test_a_time_limit_checkpoints_requeues_and_finishes(cluster, tiny, tmp_path, cleanup):
    """A run longer than its 2-minute limit is warned, saves, is requeued as the same job and resumes; with no
    requeue allowed it fails at once and says why. (Once requeued, the job is given 15 minutes, so that a slow
    machine needs no more 2-minute rounds to finish.) Each step is paced to take at least 0.1 s, so the run's
    1,200 steps outlast the 90 s before the warning however fast the machine is."""
    long = {"design": [["en"]], "epochs": 150, "per_lang": 32, "select": False}
    config = study(tmp_path / "a", "limit", tiny, **long, slurm={"time_min": 2})
    spent = study(tmp_path / "b", "limit0", tiny, **long, slurm={"time_min": 2, "max_timeouts": 0})
    cleanup += ["limit", "limit0"]
    env = paced_env(tmp_path, 0.1)
    a, b = start(config, "--only", "mix=en", env=env), start(spent, "--only", "mix=en", env=env)
    rd = next(rd for name, rd in runs(config).items() if "mix=en," in name)
    wait_for("the time limit", lambda: (rd.status().get("time_limits") or {}).get("n") == 1, timeout=300, proc=a)
    job_id = next(iter(ledger(config).values()))["job_id"]
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "TimeLimit=15"], check=True, capture_output=True)
    assert b.wait(timeout=STUDY_TIMEOUT_S) == 1, log_of(spent)[-3000:]
    failed = next(rd for name, rd in runs(spent).items() if "mix=en," in name)
    assert failed.status()["state"] == "failed" and failed.status()["reason"] == (
        "time limit reached 1 time; raise executor.slurm.time_min (now 2 min) or executor.slurm.max_timeouts (now 0)")
    assert "time limit reached 1 time" in log_of(spent)

    assert a.wait(timeout=STUDY_TIMEOUT_S) == 0, log_of(config)[-3000:]
    st = rd.status()
    assert rd.is_complete() and st["time_limits"]["n"] == 1 and st["attempts"] == 2
    assert len(ledger(config)) == 1 and log_of(config).count("slurm: submitted") == 1
    assert json.loads((rd.path / "train_plan.json").read_text())["resumed_from"]
    assert train_steps(rd) >= 150 * 8  # every step trained, in several jobs


# -- faults: a killed job, a cancelled job, without accounting -------------------------------------------------
def _job_pids(job_id: str) -> list[int]:
    """The processes of a running job (its raw id: an array task has its own)."""
    raw = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%A"], capture_output=True, text=True).stdout.strip()
    out = subprocess.run(["scontrol", "listpids", raw], capture_output=True, text=True).stdout.splitlines()[1:]
    return [int(line.split()[0]) for line in out if line.split()]


def test_a_killed_job_fails_with_its_reason_and_a_cancelled_one_is_cancelled_without_sacct(cluster, tiny, tmp_path,
                                                                                          cleanup):
    if cluster.cpus < 2:
        pytest.skip("needs two jobs at once")
    shim = tmp_path / "no-accounting"
    shim.mkdir()
    (shim / "sacct").write_text('#!/bin/sh\necho "sacct: error: Slurm accounting storage is disabled" >&2\nexit 1\n')
    (shim / "sacct").chmod(0o755)
    env = {"PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"}
    config = study(tmp_path, "faults", tiny, **{**MEDIUM, "design": [["en"], ["es"]]})
    cleanup.append("faults")
    orchestrator = start(config, "--only", "kind=train", env=env)
    rds = {name.split("mix=")[1].split(",")[0]: rd for name, rd in runs(config).items() if "pretrained" not in name}
    wait_for("both runs training", lambda: all(train_steps(rd) >= 5 for rd in rds.values()), proc=orchestrator)
    jobs = {mix: ledger(config)[rd.path.name]["job_id"] for mix, rd in rds.items()}
    for pid in _job_pids(jobs["en"]):  # every process of the job, as the kernel's OOM killer or a node would
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    subprocess.run(["scancel", jobs["es"]], check=True)
    code = orchestrator.wait(timeout=STUDY_TIMEOUT_S)
    log = log_of(config)
    assert code == 1, log[-3000:]
    killed, cancelled = rds["en"].status(), rds["es"].status()
    assert killed["state"] == "failed" and killed["reason"].startswith(f"SLURM job {jobs['en']} FAILED"), killed
    assert cancelled["state"] == "cancelled"
    assert cancelled["reason"].startswith(f"cancelled on SLURM (job {jobs['es']})")
    assert "Bypassing sacct" not in log and "1 failed" in log and "1 cancelled" in log
    # a rerun leaves the cancelled run alone
    r = study_run(config, "--only", "mix=es", env=env)
    assert r.returncode == 75 and "1 cancelled (skipped; --retry-cancelled runs them)" in r.stderr, r.stderr[-2000:]
    assert len(ledger(config)) == 2


# -- two processes in one job ---------------------------------------------------------------------------------
def test_two_training_processes_in_a_job_give_the_single_process_result(cluster, tiny, tmp_path, cleanup):
    if cluster.cpus < 2:
        pytest.skip("needs two CPUs on the node")
    small = {"design": [["en", "es"]], "epochs": 2}
    reference = local_reference(tmp_path / "local", tiny, **small)
    config = study(tmp_path / "slurm", "ddp", tiny, **small, train={"accelerate_config": "ddp"},
                   slurm={"cpus_per_task": 2, "processes_per_node": 2})
    cleanup.append("ddp")
    r = study_run(config, "--only", "kind=train")
    assert r.returncode == 0, r.stderr[-3000:]
    name, rd = next((n, rd) for n, rd in runs(config).items() if "pretrained" not in n)
    assert json.loads((rd.path / "train_plan.json").read_text())["world_size"] == 2
    assert "torch.distributed.run --nproc_per_node 2" in rd.log_file.read_text()
    same_result(reference[name], rd, rtol=1e-4)  # two processes sum their gradients in another order

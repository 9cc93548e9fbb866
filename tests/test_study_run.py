"""A whole tiny study on CPU: 2 random-init tiny models x 2 synthetic tasks x 3 mixtures + 4 baselines.

The orchestrator is killed (SIGKILL) after its first finished run and rerun: it must finish the study
without touching the runs that were complete. Then `collect` must give a database whose row counts match
the design, and `plan` the training compute from the tokenized data. A reduced design also runs through
submitit's local executor (the SLURM code path: pickled job, subprocess, judged from the run directory)."""
import hashlib
import json
import subprocess
import sys
import time

import duckdb
import pytest
import yaml

from linguamix.cli import main
from linguamix.config import load_config
from linguamix.store import Store
from linguamix.runs import expand
from linguamix.study.compute import compute_plan

pytestmark = pytest.mark.slow  # trains models / runs studies

EVAL_LANGS = ["en", "es"]
TEST_ITEMS = 3


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    from linguamix import tasks
    from linguamix.data import synthetic
    from linguamix.data.loaders.synthetic import load_synthetic
    from linguamix.tinymodel import build_random_tiny, save_model, train_tokenizer

    root = tmp_path_factory.mktemp("tiny_study")
    texts = synthetic.pretraining_corpus(["en", "es", "ja"], 300)
    for kind, task in (("synthetic-math", "math"), ("synthetic-api", "api")):  # short task prompts
        for items in load_synthetic(kind, ["en", "es", "ja"], {"n": 20, "seed": 99}).values():
            texts += [tasks.get(task).render(i).prompt + tasks.get(task).render(i).completion for i in items]
    tok = train_tokenizer(texts, 600)
    models = []
    for family, name in (("qwen3", "tiny-a"), ("gemma3", "tiny-b")):
        save_model(build_random_tiny(family, tok, hidden=32, layers=1, heads=1), tok, root / name)
        models.append({"id": name, "name": name, "family": family, "size_b": 0.0001})
    src = lambda fmt, n, **kw: {"source": "synthetic", "format": fmt, "options": {"n": n, **kw}}  # noqa: E731
    doc = {"name": "tiny", "output_dir": "out", "models": models,
           "tasks": {t: {"train": src(f"synthetic-{t}", 12), "test": src(f"synthetic-{t}", TEST_ITEMS, start=100000),
                         "train_per_lang": 4, "val_per_lang": 2, "max_length": 512, "max_new_tokens": 4}
                     for t in ("math", "api")},
           "mixtures": {"design": [["en"], ["en", "es"], ["es", "ja"]]},
           "train": {"epochs": 1, "global_batch_size": 8, "learning_rate": 3e-3, "logging_steps": 1,
                     "gradient_checkpointing": False, "select_every_epoch": True},
           "eval": {"languages": EVAL_LANGS, "batch_size": 8, "validation_limit": 2},
           "executor": {"max_retries": 1}}
    path = root / "study.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _fingerprint(rd):
    files = [rd.eval_dir("test") / "summary.json", rd.eval_dir("test") / "predictions.jsonl", rd.path / "status.json"]
    return [(f.stat().st_mtime_ns, hashlib.sha256(f.read_bytes()).hexdigest()) for f in files]


def _quiet(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def test_the_whole_study_survives_a_kill_and_collects(tiny_study, monkeypatch, capsys):
    cfg = load_config(tiny_study)
    store = Store(cfg.output_path)
    specs = expand(cfg)
    assert len(specs) == 2 * 2 * 3 + 4
    log = open(tiny_study.parent / "orchestrator.log", "w")
    orchestrator = subprocess.Popen([sys.executable, "-m", "linguamix", "study", "run", str(tiny_study), "--quiet"],
                                    stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 600
    while time.time() < deadline and orchestrator.poll() is None:
        if any(store.run(s).is_complete() for s in specs):
            break
        time.sleep(0.2)
    orchestrator.kill()  # SIGKILL: no chance to clean up
    orchestrator.wait()
    log.close()
    before = {s.name: _fingerprint(store.run(s)) for s in specs if store.run(s).is_complete()}
    assert before, (tiny_study.parent / "orchestrator.log").read_text()[-2000:]
    # a run caught mid-way is resumable, not running or failed
    _quiet(monkeypatch)
    assert main(["study", "status", str(tiny_study), "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["summary"]["failed"] == 0 and status["summary"]["running"] == 0
    assert status["summary"]["done"] == len(before)
    # what the finished runs measured predicts the rest (a prediction, labelled so)
    assert main(["plan", str(tiny_study), "--totals"]) == 0
    ahead = json.loads(capsys.readouterr().out)["forecast"]
    assert ahead["label"] == "prediction" and ahead["remaining"] == len(specs) - len(before)

    assert main(["study", "run", str(tiny_study), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"{len(before)} complete (skipped)" in err
    assert all(store.run(s).is_complete() for s in specs)
    for name, fp in before.items():  # complete runs were not redone
        rd = store.run(next(s for s in specs if s.name == name))
        assert _fingerprint(rd) == fp and rd.status()["attempts"] == 1

    # every run's time, stage by stage: training runs went through every stage, baselines evaluated only
    assert main(["study", "status", str(tiny_study), "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["time"]["runs_timed"] == len(specs) and sum(status["time"]["shares"].values()) == pytest.approx(1)
    for r in status["runs"]:
        spent = {k for k, v in r["timings"].items() if v > 0}
        assert spent >= ({"model_load", "train_steps", "validation", "test_eval", "saving"} if r["kind"] == "train"
                         else {"model_load", "test_eval"}), r
    tokens = sum(t.get("tokens", 0) for t in store.run(specs[-1]).read_timings() if t["stage"] == "train_steps")
    assert tokens > 0
    assert main(["study", "status", str(tiny_study)]) == 0
    assert "time: " in capsys.readouterr().out

    # the database has one row per run, per run x language, per item
    db = tiny_study.parent / "results.duckdb"
    assert main(["collect", str(tiny_study), "--out", str(db)]) == 0
    con = duckdb.connect(str(db), read_only=True)
    count = lambda table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: E731
    assert count("runs") == len(specs)
    assert count("evaluations") == len(specs) * len(EVAL_LANGS)
    assert count("predictions") == len(specs) * len(EVAL_LANGS) * TEST_ITEMS
    assert con.execute("SELECT count(*) FROM runs WHERE status = 'done' AND kind = 'train' "
                       "AND selection_curve IS NOT NULL").fetchone()[0] == 12
    con.close()

    # plan: training tokens from the data manifests, FLOPs = 6 N T with N from the model config
    from linguamix.models import load_model, matmul_params

    plan = compute_plan(cfg)
    n_a = matmul_params(load_model(str(tiny_study.parent / "tiny-a")))
    row = plan.runs["model=tiny-a,task=math,mix=en+es,seed=0"]
    assert row["matmul_params"] == n_a and row["train_tokens"] > 0 and row["flops"] == 6.0 * n_a * row["train_tokens"]
    assert row["gpu_hours_floor"] == pytest.approx(row["flops"] / 989e12 / 3600)
    assert row["measured_mfu"] is None  # CPU: the trainer logs no MFU
    en, es = (plan.runs[f"model=tiny-a,task=math,mix={m},seed=0"]["train_tokens"] for m in ("en", "es+ja"))
    assert 0 < en < row["train_tokens"] and es > 0
    assert plan.totals["runs_with_compute"] == 12 and plan.totals["flops"] == pytest.approx(
        sum(r["flops"] for r in plan.runs.values() if r["flops"]))


def test_submitit_local_executor(tiny_study, tmp_path, monkeypatch, capsys):
    doc = yaml.safe_load(tiny_study.read_text())
    doc["output_dir"] = str(tmp_path / "out")
    for m in doc["models"]:
        m["id"] = str(tiny_study.parent / m["id"])
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    _quiet(monkeypatch)
    code = main(["study", "run", str(path), "--executor", "submitit-local", "--max-parallel", "2",
                 "--only", "model=tiny-b,task=math,mixture=pretrained|en", "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "submitit's local executor" in err
    assert sum(ln.startswith("[") and "] done " in ln for ln in err.splitlines()) == 2
    cfg = load_config(path)
    store = Store(cfg.output_path)
    done = [s for s in expand(cfg) if store.run(s).is_complete()]
    assert [(s.model, s.task, s.mixture) for s in done] == [("tiny-b", "math", "pretrained"), ("tiny-b", "math", "en")]
    for s in done:  # each ran as a job: its own log line in the run, its own submitit folder
        assert "study run-one" in store.run(s).log_file.read_text()
    assert len([p for p in (store.root / "slurm").iterdir() if p.name[0].isdigit()]) == 2
    assert main(["study", "status", str(path), "--only", "model=tiny-b,task=math"]) == 0
    summary, time_line = capsys.readouterr().out.strip().splitlines()[-2:]
    assert summary == "4 runs: 2 done, 0 running, 0 failed, 2 pending"
    assert time_line.startswith("time: ") and "summed over 2 runs" in time_line  # the jobs timed their stages

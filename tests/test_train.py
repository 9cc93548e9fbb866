"""Training on CPU with tiny random-init models: it runs for both families, it resumes after a crash to
the same result, a SIGTERM checkpoints and exits 75, a finished run is skipped, and selection takes the
epoch with the best MEAN validation accuracy over the mixture's languages."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import paced_env
from safetensors.torch import load_file

from linguamix.config import load_config
from linguamix.records import RunSpec
from linguamix.store import RunDir
from linguamix.study.pipeline import execute
from linguamix.tinymodel import build_random_tiny, save_model, train_tokenizer
from linguamix.data import synthetic


@pytest.fixture(scope="module")
def base_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    tok = train_tokenizer(synthetic.pretraining_corpus(["en", "es", "ja"], 1500), 500)
    paths = {}
    for fam in ("qwen3", "gemma3"):
        paths[fam] = save_model(build_random_tiny(fam, tok, hidden=32, layers=1, heads=1, head_dim=32, seed=0),
                                tok, root / fam)
    return paths


def write_study(tmp_path, base_models, **train):
    doc = {"name": "t", "output_dir": str(tmp_path / "store"),
           "models": [{"id": str(base_models[f]), "name": f"tiny-{f}", "family": f, "size_b": 1e-5}
                      for f in ("qwen3", "gemma3")],
           "tasks": {"math": {"train": {"source": "synthetic", "format": "synthetic-math", "options": {"n": 40}},
                              "test": {"source": "synthetic", "format": "synthetic-math",
                                       "options": {"n": 4, "start": 100000}},
                              "train_per_lang": 32, "val_per_lang": 4, "max_length": 256, "max_new_tokens": 8}},
           "mixtures": {"design": [["en", "es"]]},
           "train": {"epochs": 3, "global_batch_size": 16, "learning_rate": 1e-3, "logging_steps": 1,
                     "gradient_checkpointing": False, **train},
           "eval": {"languages": ["en", "es"], "batch_size": 8}}
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def weights(run: Path) -> dict:
    return load_file(str(run / "model" / "model.safetensors"))


@pytest.mark.parametrize("family", ["qwen3", "gemma3"])
def test_a_few_steps_run_and_change_parameters(tmp_path, base_models, family):
    cfg = load_config(write_study(tmp_path, base_models, epochs=1, max_steps=2, select_every_epoch=False))
    rd = RunDir(tmp_path / "run")
    assert execute(cfg, RunSpec(f"tiny-{family}", "math", "en+es"), rd, progress=False) == 0
    losses = [r["loss"] for r in rd.read_log("train") if "loss" in r]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    before = load_file(str(base_models[family] / "model.safetensors"))
    after = weights(rd.path)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    plan = rd.read_json("train_plan.json")
    assert plan["packed"] and plan["attention"] == "linguamix_varlen" and plan["global_batch"] == 16
    assert rd.is_complete() and rd.read_summary("test")["n_items"] == 8


def _train_cmd(study, out):
    return [sys.executable, "-m", "linguamix", "train", "--config", str(study), "--model", "tiny-qwen3",
            "--task", "math", "--mixture", "en+es", "--out", str(out), "--quiet"]


def _wait_for_checkpoint(out: Path, proc, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if list((out / "train").glob("checkpoint-*/trainer_state.json")):
            return
        if proc.poll() is not None:
            raise AssertionError(f"training ended before a checkpoint: {proc.returncode}")
        time.sleep(0.2)
    raise AssertionError("no checkpoint appeared")


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(tmp_path, base_models):
    study = write_study(tmp_path, base_models, epochs=2)
    full, crashed = tmp_path / "full", tmp_path / "crashed"
    assert execute(load_config(study), RunSpec("tiny-qwen3", "math", "en+es"), RunDir(full), progress=False) == 0
    # paced (>= 0.3 s per micro-batch): the epoch-1 checkpoint exists long enough to be seen on a fast machine
    proc = subprocess.Popen(_train_cmd(study, crashed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **paced_env(tmp_path, 0.3)})
    _wait_for_checkpoint(crashed, proc)
    proc.kill()  # SIGKILL: no chance to save anything more
    proc.wait()
    assert not (crashed / "model").exists()
    r = subprocess.run(_train_cmd(study, crashed), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((crashed / "train_plan.json").read_text())["resumed_from"]
    a, b = weights(full), weights(crashed)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6)
    curve = lambda p: [(c["epoch"], c["avg_acc"]) for c in RunDir(p).read_selection()]  # noqa: E731
    assert curve(crashed) == curve(full) and len(curve(full)) == 2
    assert RunDir(crashed).read_summary("test")["languages"] == RunDir(full).read_summary("test")["languages"]
    # a finished run is never retrained
    mtime = (crashed / "eval" / "test" / "summary.json").stat().st_mtime_ns
    r = subprocess.run(_train_cmd(study, crashed), capture_output=True, text=True)
    assert r.returncode == 0 and "already complete" in r.stderr
    assert (crashed / "eval" / "test" / "summary.json").stat().st_mtime_ns == mtime


def _wait_for_training(out: Path, proc, timeout=120):
    """Until the first optimizer step is logged (logging_steps=1)."""
    log = out / "logs" / "train.jsonl"
    t0 = time.time()
    while time.time() - t0 < timeout:
        if log.exists() and any('"loss"' in line for line in log.read_text().splitlines()):
            return
        if proc.poll() is not None:
            raise AssertionError(f"training ended before its first step: {proc.returncode}")
        time.sleep(0.05)
    raise AssertionError("no training step was logged")


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_75(tmp_path, base_models):
    study = write_study(tmp_path, base_models, epochs=6)
    out = tmp_path / "preempted"
    proc = subprocess.Popen(_train_cmd(study, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **paced_env(tmp_path, 0.3)})  # still training when the signal comes
    _wait_for_training(out, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err[-2000:]
    st = RunDir(out).status()
    assert st["state"] == "pending" and "preempted" in st["reason"]
    saved = max(int(p.name.split("-")[1]) for p in (out / "train").glob("checkpoint-*"))
    assert 1 <= saved < 24  # saved at the step the signal arrived in, long before the end (6 epochs x 4 steps)
    assert all(c["step"] % 4 == 0 for c in RunDir(out).read_selection())  # no selection on a cut epoch
    r = subprocess.run(_train_cmd(study, out), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((out / "train_plan.json").read_text())["resumed_from"].endswith(f"checkpoint-{saved}")
    assert RunDir(out).is_complete()
    assert [c["epoch"] for c in RunDir(out).read_selection()] == [1, 2, 3, 4, 5, 6]


def test_selection_uses_the_mean_over_mixture_languages(tmp_path, base_models, monkeypatch):
    """Scripted validation accuracies: epoch 1 en .75/es 0 (mean .375), epoch 2 en .5/es .5 (mean .5),
    epoch 3 en 1/es 0 (mean .5, a tie: the earlier checkpoint is kept). English alone would pick 3."""
    from linguamix.records import ItemScore
    from linguamix.tasks import math as math_task

    script = {1: {"en": 3, "es": 0}, 2: {"en": 2, "es": 2}, 3: {"en": 4, "es": 0}}
    calls = {"n": 0}

    def fake_score(completion, gold, lang):
        calls["n"] += 1
        epoch = (calls["n"] - 1) // 8 + 1  # 4 items x 2 languages per validation pass
        k = (calls["n"] - 1) % 4
        return ItemScore(None, k < script[epoch][lang], False, False)

    monkeypatch.setattr(math_task.TASK, "score", fake_score)
    cfg = load_config(write_study(tmp_path, base_models))
    rd = RunDir(tmp_path / "sel")
    assert execute(cfg, RunSpec("tiny-qwen3", "math", "en+es"), rd, progress=False, evaluate_test=False) == 0
    curve = rd.read_selection()
    assert [c["avg_acc"] for c in curve] == [0.375, 0.5, 0.5]
    assert [c["acc"]["en"] for c in curve] == [0.75, 0.5, 1.0]
    selected = json.loads((rd.model_dir / "linguamix_selected.json").read_text())
    assert selected["epoch"] == 2 and json.loads((rd.model_dir / "linguamix_best.json").read_text())["epoch"] == 2
    assert len(rd.read_predictions("validation-epoch2")) == 8
    assert not (rd.path / "train").exists()  # training checkpoints are removed once the model is selected


@pytest.mark.slow
def test_two_process_data_parallel_matches_one_process(tmp_path, base_models):
    """torchrun with 2 CPU processes (gloo): each rank trains on its half of every step; the loss is
    normalised by the whole step's tokens, so the result equals the single-process run; only rank 0
    writes the run directory."""
    study = write_study(tmp_path, base_models, epochs=2)
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    assert execute(load_config(study), RunSpec("tiny-qwen3", "math", "en+es"), RunDir(single), progress=False) == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "linguamix", "train",
           "--config", str(study), "--model", "tiny-qwen3", "--task", "math", "--mixture", "en+es", "--out", str(ddp),
           "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((ddp / "train_plan.json").read_text())["world_size"] == 2
    a, b = weights(single), weights(ddp)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-6)
    loss = lambda p: [r["train_loss"] for r in RunDir(p).read_log("train") if "train_loss" in r][-1]  # noqa: E731
    assert loss(ddp) == pytest.approx(loss(single), rel=1e-6)
    assert r.stdout.count("results in") + r.stderr.count("results in") == 1


# -- the epoch-end validation backend -----------------------------------------------------------------
def test_vllm_selection_without_vllm_fails_before_training(tmp_path, base_models, monkeypatch):
    from linguamix import subgen
    from linguamix.errors import ConfigError

    monkeypatch.setattr(subgen, "vllm_importable", lambda: False)
    doc = yaml.safe_load(write_study(tmp_path, base_models).read_text())
    doc["eval"]["backend"] = "vllm"
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(doc))
    rd = RunDir(tmp_path / "run")
    with pytest.raises(ConfigError, match=r"eval.backend is 'vllm' but vLLM is not importable .*set eval.backend: hf"):
        execute(load_config(tmp_path / "study.yaml"), RunSpec("tiny-qwen3", "math", "en+es"), rd, progress=False)
    assert not rd.read_log("train") and not rd.checkpoints.exists()


STAND_IN = '''
import torch
from linguamix.generate import HFGenerator
from linguamix.models import load_model


def hf(model_dir, tok, **options):
    return HFGenerator(load_model(model_dir, dtype=torch.float32, attn_implementation="sdpa"), tok, batch_size=8)
'''


def test_selection_through_a_child_process_equals_selection_here(tmp_path, base_models, monkeypatch):
    """eval.backend vllm's whole path (the epoch's weights saved, generation in a child process, completions
    read back) with HF generate standing in for vLLM in the child: the same curve, the same selection."""
    from linguamix import subgen

    (tmp_path / "standin_train_gen.py").write_text(STAND_IN)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setattr(subgen, "vllm_importable", lambda: True)
    monkeypatch.setattr(subgen, "DEFAULT_FACTORY", "standin_train_gen:hf")
    curves, selected = {}, {}
    for backend in ("hf", "vllm"):
        doc = yaml.safe_load(write_study(tmp_path, base_models, epochs=2).read_text())
        doc["eval"]["backend"] = backend
        (tmp_path / "study.yaml").write_text(yaml.safe_dump(doc))
        rd = RunDir(tmp_path / backend)
        assert execute(load_config(tmp_path / "study.yaml"), RunSpec("tiny-qwen3", "math", "en+es"), rd,
                       progress=False, evaluate_test=False) == 0
        curves[backend] = rd.read_selection()
        selected[backend] = json.loads((rd.model_dir / "linguamix_selected.json").read_text())["epoch"]
        preds = [rd.read_predictions(f"validation-epoch{e}") for e in (1, 2)]
        curves[backend + "-rows"] = [[(r["item_id"], r["completion"]) for r in p] for p in preds]
    assert [c["backend"] for c in curves["hf"]] == ["hf"] * 2 and [c["backend"] for c in curves["vllm"]] == ["vllm"] * 2
    assert all(c["generation_s"] > 0 for c in curves["hf"] + curves["vllm"])
    strip = lambda cs: [{k: v for k, v in c.items() if k not in ("backend", "generation_s")} for c in cs]  # noqa: E731
    assert strip(curves["vllm"]) == strip(curves["hf"]) and selected["vllm"] == selected["hf"]
    assert curves["vllm-rows"] == curves["hf-rows"]
    events = [e for e in RunDir(tmp_path / "vllm").read_log("events") if e.get("event") == "validation_generation"]
    assert len(events) == 2 and all(e["items"] == 8 and e["load_s"] >= 0 for e in events)


def test_tensorboard_event_files_hold_the_curves_and_validation_accuracies(tmp_path, base_models):
    """train.report_to: [tensorboard] -> event files under the run's logs/tensorboard (they survive finalize,
    which removes the checkpoints folder), with the loss, the learning rate, tokens/s and every epoch's
    validation accuracy per language, equal to the selection curve's."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    study = write_study(tmp_path, base_models, epochs=2, report_to=["tensorboard"])
    rd = RunDir(tmp_path / "run")
    assert execute(load_config(study), RunSpec("tiny-qwen3", "math", "en+es"), rd, progress=False) == 0
    events = list((rd.path / "logs" / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and not rd.checkpoints.exists()
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/learning_rate", "train/tokens_per_s", "eval/acc_en", "eval/acc_es",
            "eval/avg_acc"} <= tags
    curve = rd.read_selection()
    for lang in ("en", "es"):
        logged = [(e.step, e.value) for e in acc.Scalars(f"eval/acc_{lang}")]
        assert logged == [(c["step"], pytest.approx(c["acc"][lang])) for c in curve]


def test_report_to_a_missing_integration_is_a_config_error(tmp_path, base_models, monkeypatch):
    import importlib.util

    from linguamix.errors import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    study = write_study(tmp_path, base_models, epochs=1, report_to=["wandb"])
    rd = RunDir(tmp_path / "run")
    with pytest.raises(ConfigError, match="train.report_to: 'wandb' needs the wandb package"):
        execute(load_config(study), RunSpec("tiny-qwen3", "math", "en+es"), rd, progress=False)
    assert not rd.checkpoints.exists() and not rd.read_log("train")

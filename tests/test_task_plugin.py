"""A task from outside the package, in one file (tests/plugins/toy_task.py), found through the
`linguamix.tasks` entry points by a fresh `linguamix` process: data build -> train -> evaluate -> score."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PLUGIN_DIR = Path(__file__).parent / "plugins"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    """PYTHONPATH with the plugin module and a distribution that declares it as an entry point."""
    site = tmp_path_factory.mktemp("site")
    dist = site / "toy_task_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-task-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[linguamix.tasks]\ncopy = toy_task:TASK\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(PLUGIN_DIR), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    sys.path.insert(0, str(PLUGIN_DIR))
    try:
        import toy_task
    finally:
        sys.path.remove(str(PLUGIN_DIR))
    from linguamix.tinymodel import build_random_tiny, save_model, train_tokenizer

    root = tmp_path_factory.mktemp("copy_study")
    items = toy_task.load_digits(None, ["en"], {"n": 300})["en"]
    texts = [toy_task.TASK.render(i).prompt + toy_task.TASK.render(i).completion for i in items]
    tok = train_tokenizer(texts, 300)
    save_model(build_random_tiny("qwen3", tok, hidden=64, layers=2, heads=2, head_dim=32, seed=0), tok, root / "base")
    cfg = {"name": "copy", "output_dir": "runs",
           "models": [{"id": "base", "name": "tiny", "family": "qwen3", "size_b": 0.0001}],
           "tasks": {"copy": {"train": {"source": "toy", "format": "toy-digits", "options": {"n": 60}},
                              "test": {"source": "toy", "format": "toy-digits", "options": {"n": 6, "start": 1000}},
                              "train_per_lang": 40, "val_per_lang": 4, "max_length": 64, "max_new_tokens": 10}},
           "mixtures": {"design": [["en", "es"]]},
           "train": {"epochs": 2, "global_batch_size": 8, "learning_rate": 0.003, "gradient_checkpointing": False,
                     "logging_steps": 5},
           "eval": {"languages": ["en", "es"], "batch_size": 8}}
    (root / "study.yaml").write_text(yaml.safe_dump(cfg))
    return root


def lmx(env, *args):
    r = subprocess.run([sys.executable, "-m", "linguamix", *map(str, args)], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def test_a_task_plugin_runs_the_whole_pipeline(plugin_env, study):
    cfg = study / "study.yaml"
    assert "copy" in lmx(plugin_env, "train", "--help").stdout  # the CLI's choices come from the registry
    built = json.loads(lmx(plugin_env, "data", "build", cfg, "--quiet", "--format", "json").stdout)
    assert [(b["task"], b["mixture"], b["train_per_lang"]) for b in built] == [("copy", "en+es", 40)]

    run = study / "run"
    lmx(plugin_env, "train", "--config", cfg, "--model", "tiny", "--task", "copy", "--mixture", "en+es", "--out", run,
        "--quiet")
    summary = json.loads((run / "eval" / "test" / "summary.json").read_text())
    assert [(r["lang"], r["n"]) for r in summary["languages"]] == [("en", 6), ("es", 6)]
    assert "empty" in summary["languages"][0]  # the task's own summary counts
    assert len((run / "selection.jsonl").read_text().splitlines()) == 2  # one selection pass per epoch

    out = study / "eval"
    lmx(plugin_env, "evaluate", "--model", run, "--task", "copy", "--config", cfg, "--out", out, "--quiet")
    rows = [json.loads(line) for line in (out / "eval" / "test" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all("copied" in r["detail"] for r in rows)

    preds = study / "completions.jsonl"
    preds.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a", "lang": "en", "completion": " 1 2 3 4\nmore", "answer": "1 2 3 4"},
        {"id": "b", "lang": "es", "completion": "1 2 3", "answer": "1 2 3 4"},
        {"id": "c", "lang": "es", "completion": "", "answer": "5 5 5 5"}]) + "\n")
    lmx(plugin_env, "score", "--task", "copy", "--input", preds, "--output", study / "scored.jsonl",
        "--summary", study / "summary.json")
    s = json.loads((study / "summary.json").read_text())
    assert (s["overall"]["n"], s["overall"]["correct"], s["overall"]["empty"]) == (3, 1, 1)


def test_a_plugin_format_is_checked_against_its_task(plugin_env, study, tmp_path):
    doc = yaml.safe_load((study / "study.yaml").read_text())
    doc["tasks"]["copy"]["test"]["format"] = "mgsm"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(doc))
    r = subprocess.run([sys.executable, "-m", "linguamix", "plan", str(tmp_path / "bad.yaml")], env=plugin_env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "field 'tasks.copy.test.format': 'mgsm' does not feed the copy task" in r.stderr

"""`linguamix evaluate` end to end on CPU with a tiny random-init model (a base model, a trained run
directory), the stored rows and summary, one-line errors, and `linguamix bench eval`."""
import json
from pathlib import Path

import pytest
import yaml

from linguamix.analysis.stats import wilson_interval
from linguamix.cli import main
from linguamix.config import load_config
from linguamix.data.build import load_test
from linguamix.errors import ConfigError
from linguamix.evaluate import evaluate, parse_langs, prompt_hash, resolve_request
from linguamix.generate import Generation, GenerationStats
from linguamix.records import Example, Prediction, RunSpec
from linguamix.store import RunDir

LANGS = ["en", "es", "ja"]
ROW_FIELDS = {"item_id", "lang", "prompt_hash", "completion", "prediction", "correct", "strict", "lenient", "gold",
              "detail"}
SUMMARY_FIELDS = {"lang", "n", "correct", "accuracy", "ci_low", "ci_high"}


@pytest.fixture(scope="module")
def base_model(tmp_path_factory) -> Path:
    from linguamix.data import synthetic
    from linguamix.tinymodel import build_random_tiny, save_model, train_tokenizer

    tok = train_tokenizer(synthetic.pretraining_corpus(LANGS, 600), 400)
    out = tmp_path_factory.mktemp("models") / "tiny-qwen3"
    save_model(build_random_tiny("qwen3", tok, hidden=64, layers=2, heads=1), tok, out)
    return out


def write_study(path: Path, model: Path, *, n_test: int = 3, max_new_tokens: int = 6) -> Path:
    cfg = {"name": "evaltest", "output_dir": str(path.parent / "runs"),
           "models": [{"id": str(model), "name": "tiny", "family": "qwen3", "size_b": 0.0001}],
           "tasks": {"math": {"train": {"source": "synthetic", "format": "synthetic-math", "options": {"n": 20}},
                              "test": {"source": "synthetic", "format": "synthetic-math",
                                       "options": {"n": n_test, "start": 100000}},
                              "max_new_tokens": max_new_tokens}},
           "eval": {"languages": LANGS, "batch_size": 4}}
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def check_output(out: Path, n_per_lang: int, langs=LANGS) -> tuple[list[dict], dict]:
    """Files present, rows complete, summary recomputable from the rows."""
    rd = RunDir(out)
    assert rd.status()["state"] == "done"
    rows = rd.read_predictions("test")
    summary = rd.read_summary("test")
    assert len(rows) == n_per_lang * len(langs) == summary["n_items"]
    assert all(ROW_FIELDS <= set(r) for r in rows)
    assert [r["lang"] for r in rows] == [lang for lang in langs for _ in range(n_per_lang)]
    assert all(len(r["prompt_hash"]) == 16 and isinstance(r["correct"], bool) for r in rows)
    assert [s["lang"] for s in summary["languages"]] == list(langs)
    for s in summary["languages"]:
        mine = [r for r in rows if r["lang"] == s["lang"]]
        correct = sum(r["correct"] for r in mine)
        assert SUMMARY_FIELDS <= set(s)
        assert (s["n"], s["correct"], s["accuracy"]) == (len(mine), correct, correct / len(mine))
        assert (s["ci_low"], s["ci_high"]) == pytest.approx(wilson_interval(correct, len(mine)))
    assert summary["overall"]["n"] == len(rows)
    gen = summary["generation"]
    assert gen["items"] == len(rows)
    # the rates are what they claim to be (values are rounded when stored)
    lo, hi = gen["seconds"] + 0.0005, max(gen["seconds"] - 0.0005, 1e-4)  # seconds are stored to 0.001
    assert gen["items"] / lo - 0.01 <= gen["items_per_s"] <= gen["items"] / hi + 0.01
    assert gen["new_tokens"] / lo - 0.1 <= gen["tokens_per_s"] <= gen["new_tokens"] / hi + 0.1
    assert sum(gen["finish"].values()) == len(rows)
    return rows, summary


def test_evaluate_base_model_with_config(base_model, tmp_path, capsys):
    study = write_study(tmp_path / "study.yaml", base_model)
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(base_model), "--config", str(study), "--task", "math",
                 "--out", str(out), "--quiet"]) == 0
    rows, summary = check_output(out, 3)
    manifest = RunDir(out).manifest()
    assert manifest["spec"]["mixture"] == "pretrained" and manifest["spec"]["model"] == "tiny"
    assert manifest["config"]["eval"]["max_new_tokens"] == 6 and summary["backend"] == "hf"
    # the prompts are the training renderer's, hashed
    test = load_test(load_config(study), "math", LANGS)
    assert [r["prompt_hash"] for r in rows] == [prompt_hash(ex.prompt) for lang in LANGS for ex in test[lang]]
    assert [r["item_id"] for r in rows] == [ex.item_id for lang in LANGS for ex in test[lang]]
    printed = capsys.readouterr().out
    assert "lang" in printed and "ci_high" in printed

    # a rerun with the same settings is skipped; other settings into the same directory are refused
    assert main(["evaluate", "--model", str(base_model), "--config", str(study), "--task", "math",
                 "--out", str(out), "--quiet"]) == 0
    assert "already complete" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(base_model), "--config", str(study), "--task", "math",
                 "--out", str(out), "--limit", "1", "--quiet"]) == 2
    assert RunDir(out).read_summary("test")["n_items"] == 9


def test_evaluate_base_model_without_config_on_mgsm(base_model, tmp_path, shared_data):
    out = tmp_path / "mgsm"
    assert main(["evaluate", "--model", str(base_model), "--task", "math", "--test-source",
                 str(shared_data / "mgsm"), "--langs", "en,bn", "--limit", "2", "--max-new-tokens", "4",
                 "--out", str(out), "--quiet"]) == 0
    rows, _ = check_output(out, 2, langs=["en", "bn"])
    assert [r["item_id"] for r in rows[:2]] == [r["item_id"] for r in rows[2:]]  # parallel items
    assert all(isinstance(r["gold"], float) for r in rows)
    assert RunDir(out).manifest()["spec"]["model"] == "tiny-qwen3"


def fake_trained_run(run: Path, base_model: Path, study: Path) -> None:
    """What `linguamix train` leaves behind: run.json (spec + run config) and the selected model/."""
    import shutil

    from linguamix.runs import run_config

    cfg = load_config(study)
    spec = RunSpec(model="tiny", task="math", mixture="en+es", seed=3)
    RunDir(run).init(spec.to_dict(), run_config(cfg, spec))
    shutil.copytree(base_model, RunDir(run).model_dir)


def test_evaluate_trained_run_directory(base_model, tmp_path):
    run = tmp_path / "run"
    fake_trained_run(run, base_model, write_study(tmp_path / "train.yaml", base_model, n_test=2))
    # without --config: the run's own task settings (2 test items, 6 new tokens)
    assert main(["evaluate", "--model", str(run), "--task", "math", "--langs", "en,es", "--out",
                 str(tmp_path / "own"), "--quiet"]) == 0
    check_output(tmp_path / "own", 2, langs=["en", "es"])
    manifest = RunDir(tmp_path / "own").manifest()
    assert manifest["spec"]["mixture"] == "en+es" and manifest["spec"]["seed"] == 3
    assert manifest["config"]["evaluated_model"] == str(RunDir(run).model_dir)
    assert manifest["config"]["trained_run"] == str(run)
    # with --config: that config's test data (4 items) and evaluation languages
    other = write_study(tmp_path / "other.yaml", base_model, n_test=4, max_new_tokens=3)
    assert main(["evaluate", "--model", str(run), "--config", str(other), "--task", "math",
                 "--out", str(tmp_path / "cfg"), "--quiet"]) == 0
    _, summary = check_output(tmp_path / "cfg", 4)
    assert summary["generation"]["max_new_tokens"] == 3
    assert RunDir(tmp_path / "cfg").manifest()["spec"]["mixture"] == "en+es"
    # the run's manifest is never replaced
    assert main(["evaluate", "--model", str(run), "--task", "math", "--out", str(run), "--quiet"]) == 2


def test_run_without_model_is_refused(base_model, tmp_path, capsys):
    study = write_study(tmp_path / "s.yaml", base_model)
    run = tmp_path / "untrained"
    cfg = load_config(study)
    from linguamix.runs import run_config

    spec = RunSpec(model="tiny", task="math", mixture="en", seed=0)
    RunDir(run).init(spec.to_dict(), run_config(cfg, spec))
    assert main(["evaluate", "--model", str(run), "--task", "math", "--out", str(tmp_path / "o")]) == 2
    assert "without a selected model" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("langs, message", [("en,xx", "unknown language code 'xx'"), (" , ", "no language codes"),
                                            ("EN", "unknown language code 'EN'")])
def test_bad_langs_one_line_exit_2_nothing_written(base_model, tmp_path, capsys, langs, message):
    study = write_study(tmp_path / "s.yaml", base_model)
    out = tmp_path / "never"
    assert main(["evaluate", "--model", str(base_model), "--config", str(study), "--task", "math",
                 "--langs", langs, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith("linguamix: error: --langs")
    assert not out.exists()


def test_parse_langs_keeps_order_and_drops_repeats():
    assert parse_langs("ja, en,ja,bn") == ["ja", "en", "bn"]
    with pytest.raises(ConfigError, match="--langs: unknown language code 'zz'"):
        parse_langs("en,zz")


def test_failure_is_recorded_in_status(base_model, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(base_model, broken)
    (broken / "model.safetensors").write_bytes(b"not a checkpoint")
    study = write_study(tmp_path / "s.yaml", broken)
    out = tmp_path / "out"
    assert main(["evaluate", "--model", str(broken), "--config", str(study), "--task", "math", "--out", str(out),
                 "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("linguamix: error: cannot load the model weights") and "\n" not in err
    status = RunDir(out).status()
    assert status["state"] == "failed" and status["reason"]
    assert not RunDir(out).has_summary("test") and not RunDir(out).read_predictions("test")


class ScriptedGenerator:
    """Answers from a script: the gold number (phrase or bare), a wrong one, or nothing."""

    name = "scripted"

    def __init__(self, answers):
        self.answers = answers

    def generate(self, prompts, *, max_new_tokens, stop=(), progress=False):
        self.last_stats = GenerationStats(self.name, len(prompts), 5 * len(prompts), 0.5)
        return [Generation(self.answers[i % len(self.answers)], 10, 5, "eos") for i in range(len(prompts))]


def test_evaluate_scores_rows_and_summarizes(tmp_path):
    examples = {lang: [Example("math", f"q{i}", lang, f"{lang} prompt {i}", "", 12.0) for i in range(4)]
                for lang in ("en", "es")}
    gen = ScriptedGenerator(["Step. The answer is 12.", "so 3 + 9 = 12", "The answer is 13.", "no idea"])
    summary = evaluate(gen, "math", examples, RunDir(tmp_path), max_new_tokens=5, progress=False,
                       extra={"model": "scripted"})
    rows = RunDir(tmp_path).read_predictions("test")
    assert [(r["correct"], r["strict"], r["lenient"]) for r in rows[:4]] == [
        (True, True, True), (True, False, True), (False, False, False), (False, False, False)]
    assert [r["prediction"] for r in rows[:4]] == [12.0, 12.0, 13.0, None]
    assert set(rows[0]) == set(Prediction.__dataclass_fields__)
    en = summary["languages"][0]
    assert (en["lang"], en["n"], en["correct"], en["accuracy"], en["strict_correct"]) == ("en", 4, 2, 0.5, 1)
    assert (en["ci_low"], en["ci_high"]) == pytest.approx(wilson_interval(2, 4))
    assert summary["overall"]["correct"] == 4 and summary["model"] == "scripted"
    assert summary["generation"]["finish"] == {"eos": 8, "stop": 0, "length": 0}
    assert summary["generation"]["items_per_s"] == 16.0


def test_resolve_request_matches_config_model_by_path(base_model, tmp_path):
    study = write_study(tmp_path / "s.yaml", base_model)
    req = resolve_request(str(base_model), config=str(study))
    assert req.model.short_name == "tiny" and req.mixture == "pretrained" and req.run is None
    req = resolve_request("tiny", config=str(study))
    assert req.model_dir == str(base_model)


def test_bench_eval_json(base_model, capsys):
    assert main(["bench", "eval", "--model", str(base_model), "--n", "6", "--max-new-tokens", "3",
                 "--batch-size", "4", "--backends", "hf,hf1", "--format", "json", "--quiet"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["backend"] for r in rows] == ["hf", "hf1"]
    for r in rows:
        assert {"items", "seconds", "items_per_s", "tokens_per_s", "speedup", "same_as_hf"} <= set(r)
        # the rate is items over the timed seconds (both stored rounded: seconds to 0.01, the rate to 0.01)
        assert r["items"] == 6
        assert r["items"] / (r["seconds"] + 0.005) - 0.01 <= r["items_per_s"] <= r["items"] / max(r["seconds"] - 0.005, 1e-3) + 0.01
    assert rows[1]["speedup"] == 1.0 and rows[1]["same_as_hf"] == 1.0  # batched == one at a time


def test_bench_eval_rejects_unknown_backend(capsys):
    assert main(["bench", "eval", "--backends", "hf,tgi"]) == 2
    assert "unknown backend 'tgi'" in capsys.readouterr().err

"""`linguamix demo`: its designs meet the demo's contract, and the whole pipeline runs end to end.

The end-to-end test runs `run_demo` itself (design -> base model -> study with two worker processes ->
collect -> analyze -> report) on a miniature version of the quick config (a base model pretrained for
a few steps, a handful of items), then reruns it: every stage is reused and the results are identical.
The full demo's timing and learning are measured by running it (README, issue notes), not here."""
import json

import duckdb
import pandas as pd
import pytest
import yaml

from linguamix import demo, languages
from linguamix.config import load_config

pytestmark = pytest.mark.slow  # trains models / runs studies


@pytest.mark.parametrize("quick", [False, True])
def test_demo_design_covers_the_contract(tmp_path, quick):
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(demo.demo_config(quick)))
    cfg = load_config(path)
    mixtures = cfg.mixture_list()
    sizes = {len(m.languages) for m in mixtures}
    training_langs = set(languages.training_codes())
    assert len(mixtures) >= 6
    assert {1, 2} <= sizes and sizes & {4, 5}
    assert any(set(m.languages) == training_langs for m in mixtures)  # "all languages"
    assert set(cfg.tasks) == {"math", "api"}
    assert "te" in cfg.eval.languages and all(m.build for m in cfg.models)


ORIGINAL = demo.demo_config


def _miniature(quick: bool):
    doc = ORIGINAL(quick)
    doc["models"][0]["build_options"] = {"corpus_sentences": 300, "tokenizer_task_items": 4, "vocab_size": 600,
                                         "hidden": 32, "heads": 1, "intermediate": 64, "steps": 3}
    for task in doc["tasks"].values():
        task.update(train_per_lang=4, val_per_lang=2, max_new_tokens=8)
        task["train"]["options"]["n"] = 8
        task["test"]["options"]["n"] = 3
    doc["mixtures"]["design"] = doc["mixtures"]["design"][:2] + doc["mixtures"]["design"][-1:]
    doc["train"]["epochs"] = 1
    return doc


def test_demo_runs_end_to_end_and_reuses_every_stage(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "demo_config", _miniature)
    lines: list[str] = []
    out = tmp_path / "demo"
    first = demo.run_demo(out, quick=True, progress=False, say=lines.append)

    for name in ("demo.yaml", "results.duckdb", "demo_summary.json", "report/report.md", "report/index.html",
                 "report/scaling.csv", "base-model-quick/tiny_base.json", "base-model-quick/model.safetensors"):
        assert (out / name).is_file(), name
    assert json.loads((out / "demo_summary.json").read_text())["runs"] == first["runs"] == 3 * 2 + 2
    assert {row["task"] for row in first["learning"]} == {"math", "api"}
    assert any("demo finished in" in line for line in lines)
    with duckdb.connect(str(out / "results.duckdb"), read_only=True) as db:
        evaluations = db.sql("select * from evaluations order by run, eval_lang").fetchall()
    assert len(evaluations) == first["runs"] * 6  # every run evaluated on en es ja bn sw te
    # where the time went: every run timed, the report's section and time.csv from the same numbers
    with duckdb.connect(str(out / "results.duckdb"), read_only=True) as db:
        [(train_s, val_s)] = db.sql("select sum(time_train_steps_s), sum(time_validation_s) from runs").fetchall()
        assert db.sql("select count(*) from runs where time_test_eval_s > 0").fetchall() == [(first["runs"],)]
    report = (out / "report" / "report.md").read_text()
    assert "## Where the time went" in report and f"all runs ({first['runs']})" in report
    shares = pd.read_csv(out / "report" / "time.csv").query("scope == 'all'").set_index("stage")
    assert shares["share"].sum() == pytest.approx(1) and shares.loc["train_steps", "seconds"] == pytest.approx(train_s)
    assert shares.loc["validation", "seconds"] == pytest.approx(val_s)

    base_mtime = (out / "base-model-quick" / "model.safetensors").stat().st_mtime_ns
    lines.clear()
    second = demo.run_demo(out, quick=True, progress=False, say=lines.append)
    assert (out / "base-model-quick" / "model.safetensors").stat().st_mtime_ns == base_mtime
    assert second["learning"] == first["learning"]
    with duckdb.connect(str(out / "results.duckdb"), read_only=True) as db:
        assert db.sql("select * from evaluations order by run, eval_lang").fetchall() == evaluations


def test_the_longest_runs_start_first(tmp_path):
    # with two workers, a 10-language run started last would finish alone at the end
    from linguamix.runs import expand
    from linguamix.study.loop import _work

    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(demo.demo_config(False)))
    cfg = load_config(path)
    order = sorted(expand(cfg), key=lambda s: -_work(cfg, s))
    assert [order[0].task, order[0].mixture.count("+") + 1] == ["api", 10]
    assert order[1].mixture == order[0].mixture and order[1].task == "math"
    assert {s.kind for s in order[-2:]} == {"baseline"}

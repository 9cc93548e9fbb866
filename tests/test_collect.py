"""`linguamix collect`: run directories -> one database (DuckDB or Parquet) whose row counts match the design.

The run store here is written by hand through RunDir (no training): two models x one task x two mixtures,
some runs finished, one failed, one never started."""
import json

import duckdb
import pyarrow.parquet as pq
import pytest
import yaml

from linguamix.cli import main
from linguamix.collect import collect
from linguamix.config import load_config
from linguamix.store import Store
from linguamix.runs import expand, run_config

LANGS = ["en", "es", "sw"]
ITEMS = 4


@pytest.fixture()
def store_cfg(tmp_path):
    doc = {"name": "fake", "output_dir": "out",
           "models": [{"id": "m/a", "name": "a", "family": "qwen3", "size_b": 0.6},
                      {"id": "m/b", "name": "b", "family": "gemma3", "size_b": 1.0}],
           "tasks": {"math": {"train": {"source": "synthetic", "format": "synthetic-math"},
                              "test": {"source": "synthetic", "format": "synthetic-math"}}},
           "mixtures": {"design": [["en"], ["en", "sw"]]}, "eval": {"languages": LANGS}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    cfg = load_config(path)
    store = Store(cfg.output_path)
    specs = expand(cfg)
    for i, spec in enumerate(specs):
        rd = store.run(spec)
        if i == len(specs) - 1:
            continue  # never started
        rd.init(spec.to_dict(), run_config(cfg, spec))
        rd.set_status("running")
        if i == len(specs) - 2:
            rd.set_status("failed", reason="RuntimeError: out of memory")
            continue
        preds = [{"item_id": f"q{k}", "lang": lang, "prompt_hash": f"h{k}", "completion": f"The answer is {k}.",
                  "prediction": k, "correct": k % 2 == 0, "strict": k % 2 == 0, "lenient": k % 2 == 0, "gold": k,
                  "detail": {}} for lang in LANGS for k in range(ITEMS)]
        rd.write_predictions("test", preds)
        rd.write_summary("test", {"n_items": len(preds), "languages": [
            {"lang": lang, "n": ITEMS, "correct": ITEMS // 2, "accuracy": 0.5, "ci_low": 0.15, "ci_high": 0.85}
            for lang in LANGS]})
        if spec.kind == "train":
            rd.write_selection([{"step": 5, "epoch": 1, "avg_acc": 0.25}, {"step": 10, "epoch": 2, "avg_acc": 0.5}])
        rd.set_status("done", selected_epoch=2 if spec.kind == "train" else None)
    return path, cfg, specs


def test_duckdb_tables_match_the_design(store_cfg):
    path, cfg, specs = store_cfg
    res = collect(cfg)
    done = len(specs) - 2
    assert res.path == Store(cfg.output_path).results_db() and res.format == "duckdb"
    assert res.rows == {"runs": len(specs), "evaluations": done * len(LANGS), "predictions": done * len(LANGS) * ITEMS}
    con = duckdb.connect(str(res.path), read_only=True)
    ev = con.execute("SELECT * FROM evaluations").df()
    assert list(ev.columns) == ["model", "family", "size_b", "task", "mixture", "train_langs", "n_train_langs",
                                "eval_lang", "n", "correct", "run", "seed", "accuracy", "ci_low", "ci_high", "split"]
    base = ev[ev.mixture == "pretrained"]
    assert set(base.train_langs) == {""} and set(base.n_train_langs) == {0}
    assert set(ev[ev.mixture == "en+sw"].train_langs) == {"en+sw"}
    runs = con.execute("SELECT name, status, reason, attempts, config_hash, selection_curve, selected_epoch "
                       "FROM runs ORDER BY name").df()
    states = dict(zip(runs.name, runs.status))
    assert states[specs[-1].name] == "pending" and states[specs[-2].name] == "failed"
    assert runs.set_index("name").loc[specs[-2].name, "reason"] == "RuntimeError: out of memory"
    trained = runs[runs.name == specs[1].name].iloc[0]
    assert json.loads(trained.selection_curve)[1]["avg_acc"] == 0.5 and trained.selected_epoch == 2
    assert trained.config_hash and trained.attempts == 1
    preds = con.execute("SELECT prediction, gold, correct FROM predictions WHERE item_id = 'q3' LIMIT 1").fetchone()
    assert preds == ("3", "3", False)  # JSON text, so API calls (dicts) fit the same column
    con.close()
    assert [p.name for p in res.path.parent.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_the_analysis_reads_the_database(store_cfg):
    from linguamix.analysis.inputs import load_results

    _, cfg, specs = store_cfg
    res = collect(cfg)
    table = load_results(res.path)
    assert len(table.rows) == (len(specs) - 2) * len(LANGS)
    assert table.predictions is not None and len(table.predictions) == (len(specs) - 2) * len(LANGS) * ITEMS


def test_collect_replaces_the_old_database_and_writes_parquet(store_cfg, tmp_path, capsys):
    path, cfg, specs = store_cfg
    db = tmp_path / "r.duckdb"
    db.write_text("not a database")  # replaced whole, never appended to
    assert main(["collect", str(path), "--out", str(db)]) == 0
    assert "evaluations 12" in capsys.readouterr().err
    assert duckdb.connect(str(db), read_only=True).execute("SELECT count(*) FROM runs").fetchone() == (len(specs),)
    assert main(["collect", str(path), "--out", str(tmp_path / "pq") + "/"]) == 0
    counts = {t: pq.read_table(tmp_path / "pq" / f"{t}.parquet").num_rows
              for t in ("runs", "evaluations", "predictions")}
    assert counts == {"runs": len(specs), "evaluations": 12, "predictions": 48}

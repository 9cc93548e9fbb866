"""`linguamix simulate` and `linguamix analyze` end to end, and the results reader's checks."""
import hashlib
import json

import pandas as pd
import pytest

from linguamix.analysis import tables
from linguamix.analysis.inputs import REQUIRED_COLUMNS, load_results, validate_results
from linguamix.cli import main
from linguamix.errors import DataError

TINY = """\
name: tiny
models:
  - {id: x/qwen3-0.6b, name: qwen3-0.6b, family: qwen3, size_b: 0.6}
  - {id: x/gemma3-1b, name: gemma3-1b, family: gemma3, size_b: 1.0}
eval: {languages: [en, bn, te]}
"""
FIGURES = ["scaling", "scaling_per_language", "bilingual_deltas", "zero_shot_vs_direct", "heatmap_gemma3",
           "heatmap_qwen3", "regression"]
CSVS = ["scaling.csv", "bilingual_comparisons.csv", "bilingual_deltas.csv", "win_rates.csv", "win_rates_by_task.csv",
        "bilingual_verdicts.csv", "bilingual_verdicts_by_task.csv", "zero_shot_vs_direct.csv", "zero_shot_summary.csv",
        "heatmap_deltas.csv", "seeds.csv", "regression.csv"]


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim")
    (d / "tiny.yaml").write_text(TINY)
    assert main(["simulate", "--design", str(d / "tiny.yaml"), "--out", str(d / "results.csv"), "--seed", "3",
                 "--n-items", "120"]) == 0
    return d / "results.csv"


def table(**changes) -> pd.DataFrame:
    base = [
        {"model": "m", "family": "qwen3", "size_b": 1.0, "task": "math", "mixture": "pretrained", "train_langs": "",
         "n_train_langs": 0, "eval_lang": "en", "n": 10, "correct": 3},
        {"model": "m", "family": "qwen3", "size_b": 1.0, "task": "math", "mixture": "bn+en", "train_langs": "en+bn",
         "n_train_langs": 2, "eval_lang": "bn", "n": 10, "correct": 5},
    ]
    base[1].update(changes)
    return pd.DataFrame(base)


@pytest.mark.slow
def test_analyze_writes_every_output_reproducibly(tiny_results, tmp_path, capsys):
    from linguamix.analysis import figures
    from linguamix.analysis.pipeline import AnalysisOptions, CSV_FILES, csv_text, run_analysis

    t = pd.read_csv(tiny_results, keep_default_na=False)
    assert len(t) == 2 * 2 * 23 * 3 and set(REQUIRED_COLUMNS) <= set(t.columns)
    a = tmp_path / "a"
    assert main(["analyze", str(tiny_results), "--out", str(a), "--n-boot-median", "199",
                 "--n-boot-regression", "99"]) == 0
    expected = (CSVS + ["regression.json", "report.md", "index.html"]
                + [f"{f}.{e}" for f in FIGURES for e in ("png", "svg")])
    assert sorted(p.name for p in a.iterdir()) == sorted(expected)
    # The same input and seed give the same bytes: every CSV, and the figures (SVG and PNG).
    again = run_analysis(load_results(tiny_results), AnalysisOptions(n_boot_median=199, n_boot_regression=99))
    for name, (attr, cols) in CSV_FILES.items():
        df = getattr(again, attr)
        assert (a / name).read_text() == csv_text(df[cols] if cols else df), name
    assert (a / "regression.csv").read_text() == csv_text(again.regression.coefficients)
    figures.save(figures.bilingual_figure(again.bilingual_deltas), tmp_path / "bilingual_deltas")
    for ext in ("png", "svg"):
        assert (tmp_path / f"bilingual_deltas.{ext}").read_bytes() == (a / f"bilingual_deltas.{ext}").read_bytes()

    assert (a / "bilingual_deltas.csv").read_text().splitlines()[0] == "task,setting,median_delta,ci_low,ci_high,n"
    assert (a / "win_rates.csv").read_text().splitlines()[0] == "setting,wins,total,win_rate,ci_low,ci_high"
    reg = pd.read_csv(a / "regression.csv")
    assert list(reg.columns) == ["feature", "coef", "ci_low", "ci_high"]
    assert reg["feature"].tolist() == ["intercept", "log10_model_size", "qwen_family", "math_task", "pretrained_only",
                                       "eval_lang_in_training", "sqrt_L_over_Lmax"]
    info = json.loads((a / "regression.json").read_text())
    assert info["seed"] == 0 and info["n_train"] + info["n_test"] == len(t) and 0 < info["r2_out_of_sample"] <= 1
    wins = pd.read_csv(a / "win_rates.csv")
    # per model and task (4): en = 4 bilingual mixtures; direct = bn+en on bn only (es, ja, sw are not
    # evaluated); cross-lingual = en+es/ja/sw on bn and te, bn+en on te
    assert wins.set_index("setting")["total"].to_dict() == {"en": 16, "direct": 4, "cross_lingual": 28}

    report = (a / "report.md").read_text()
    digest = hashlib.sha256(tiny_results.read_bytes()).hexdigest()
    assert digest in report and "Seed: 0" in report
    for f in FIGURES:
        assert f"({f}.png)" in report
    html = (a / "index.html").read_text()
    assert '<img src="zero_shot_vs_direct.svg"' in html and digest in html and "<table>" in html
    svg = (a / "scaling.svg").read_text()
    assert "Number of training languages" in svg and "Accuracy (%)" in svg  # labelled axes (text kept as text)
    # both interval kinds, named, and the verdicts under both tests; the figures draw the cluster-aware one
    assert "95 % cluster bootstrap CI (items × runs)" in svg
    assert " W[" in report and " C[" in report and "W = the paper's pooled Wilson interval" in report
    assert "paired: better / indist. / worse" in report and "Welch (paper's test): above / indist. / below" in report
    assert "the paper's value (Table 2)" in report
    assert report.startswith("# linguamix analysis report\n\n**Simulated data.**")  # the CSV has p_planted


def test_analyze_rejects_bad_input_in_one_line_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    table().drop(columns=["n", "family"]).to_csv(bad, index=False)
    out = tmp_path / "out"
    assert main(["analyze", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing column(s) family, n" in err and str(bad) in err
    assert not out.exists()


@pytest.mark.parametrize("changes,message", [
    ({"correct": 11}, r"line 3: column 'correct': must be between 0 and n=10, got 11"),
    ({"n": 0}, r"line 3: column 'n': must be > 0"),
    ({"n": "ten"}, r"line 3: column 'n': expected an integer"),
    ({"eval_lang": "xx"}, r"line 3: column 'eval_lang': unknown language code 'xx'"),
    ({"n_train_langs": 3}, r"line 3: column 'n_train_langs': 3 but train_langs 'en\+bn' lists 2"),
    ({"mixture": "en+es"}, r"line 3: column 'mixture': 'en\+es' does not match train_langs"),
    ({"mixture": "pretrained"}, r"line 3: column 'train_langs': must be empty for mixture 'pretrained'"),
    ({"task": "chess"}, r"line 3: column 'task': 'chess' is not one of math, api"),
    ({"family": "gemma3"}, r"line 2: column 'family': model 'm' has several values"),
    ({"eval_lang": "en", "mixture": "pretrained", "train_langs": "", "n_train_langs": 0},
     r"line 3: duplicate of line 2 .*add a 'seed' column"),
])
def test_inconsistent_rows_are_named(tmp_path, changes, message):
    path = tmp_path / "r.csv"
    table(**changes).to_csv(path, index=False)
    with pytest.raises(DataError, match=message):
        load_results(path)


def test_seeds_are_pooled_and_said_so():
    t = pd.concat([table(), table()], ignore_index=True).assign(seed=[0, 0, 1, 1])
    rows, notes = validate_results(t)
    assert len(rows) == 2 and rows["n"].tolist() == [20, 20] and rows["correct"].tolist() == [6, 10]
    assert notes and "pooled" in notes[0]
    assert rows.loc[rows["mixture"] == "bn+en", "train_langs"].item() == "bn+en"  # canonical order


def test_duckdb_with_predictions_enables_mcnemar(tiny_results, tmp_path):
    db = tmp_path / "results.duckdb"
    tiny = tiny_results.parent / "tiny.yaml"
    assert main(["simulate", "--design", str(tiny), "--out", str(db), "--seed", "3", "--n-items", "120"]) == 0
    res = load_results(db)
    pd.testing.assert_frame_equal(res.rows, load_results(tiny_results).rows)  # same seed, same table
    assert res.predictions is not None and len(res.predictions) == res.rows["n"].sum()
    zs = tables.zero_shot_vs_direct(res.rows, res.predictions, test="mcnemar")
    assert len(zs) and (zs["test"] == "mcnemar").all() and zs["p_mcnemar"].notna().all()


def test_predictions_that_disagree_with_the_table_are_an_error(tiny_results, tmp_path):
    pred = tmp_path / "pred.csv"
    assert main(["simulate", "--design", str(tiny_results.parent / "tiny.yaml"), "--out", str(tmp_path / "r.csv"),
                 "--seed", "4", "--n-items", "120", "--predictions", str(pred)]) == 0
    load_results(tmp_path / "r.csv", predictions=pred)  # consistent: fine
    with pytest.raises(DataError, match="predictions disagree with the results table"):
        load_results(tiny_results, predictions=pred)  # drawn with another seed


def test_parquet_input_and_unknown_formats(tiny_results, tmp_path):
    pq = tmp_path / "r.parquet"
    pd.read_csv(tiny_results, keep_default_na=False).to_parquet(pq)
    pd.testing.assert_frame_equal(load_results(pq).rows, load_results(tiny_results).rows)
    # `collect --format parquet` layout: a folder with one file per table; extra columns are ignored
    folder = tmp_path / "collected"
    assert main(["simulate", "--design", str(tiny_results.parent / "tiny.yaml"), "--out", str(tmp_path / "s.csv"),
                 "--seed", "3", "--n-items", "120", "--predictions", str(tmp_path / "p.parquet")]) == 0
    folder.mkdir()
    pd.read_csv(tmp_path / "s.csv", keep_default_na=False).assign(run="x", split="test").to_parquet(
        folder / "evaluations.parquet")
    pd.read_parquet(tmp_path / "p.parquet").assign(completion="...").to_parquet(folder / "predictions.parquet")
    res = load_results(folder)
    assert res.predictions is not None and "completion" not in res.predictions.columns
    pd.testing.assert_frame_equal(res.rows, load_results(tiny_results).rows)
    other = tmp_path / "r.txt"
    other.write_text("x")
    with pytest.raises(DataError, match="unsupported results format"):
        load_results(other)


@pytest.mark.slow
def test_interval_and_english_direct_choices_are_named(tiny_results, tmp_path):
    db = tmp_path / "results.duckdb"
    assert main(["simulate", "--design", str(tiny_results.parent / "tiny.yaml"), "--out", str(db), "--seed", "3",
                 "--n-items", "120"]) == 0
    out = tmp_path / "out"
    assert main(["analyze", str(db), "--out", str(out), "--n-boot-median", "99", "--n-boot-regression", "49",
                 "--n-boot-cluster", "199", "--intervals", "wilson", "--english-direct", "bilingual-mean",
                 "--power-effect", "10", "--power-sims", "2"]) == 0
    assert "95 % pooled Wilson CI (paper)" in (out / "scaling.svg").read_text()
    assert "for en: mean of bilingual en+X" in (out / "zero_shot_vs_direct.svg").read_text()
    report = (out / "report.md").read_text()
    assert report.startswith("# linguamix analysis report\n\n**Simulated data.**")  # said at the top
    assert "`--english-direct bilingual-mean`" in report and "Figures draw W (`--intervals wilson`)" in report
    zs = pd.read_csv(out / "zero_shot_vs_direct.csv")
    en = zs[zs["eval_lang"] == "en"]
    # direct exposure for English = the four bilingual en+X models pooled: several runs, so the paired bootstrap
    assert len(en) and (en["direct_mixture"].str.count(";") == 3).all() and (en["test"] == "paired-bootstrap").all()
    power = pd.read_csv(out / "power.csv")
    assert "regression:sqrt_L_over_Lmax" in set(power["comparison"]) and power["power"].between(0, 1).all()
    assert "## Appendix: statistical power" in report and "[power.csv](power.csv)" in report

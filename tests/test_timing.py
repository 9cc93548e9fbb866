"""Where a run's time goes: stage sums and shares, measured throughput, `study status`'s time columns and
`plan`'s predicted wall-clock, on run directories whose timing rows are written by hand (the numbers are
known, so every figure is checked exactly). A real run's rows: tests/test_train.py and the tiny study."""
import json

import pytest
import yaml

from linguamix.cli import main
from linguamix.config import load_config
from linguamix.records import RunSpec
from linguamix.runs import expand, run_config
from linguamix.store import RunDir, Store
from linguamix.study.forecast import forecast, predict_run
from linguamix.study.state import status_rows, time_summary
from linguamix.timing import STAGES, Stopwatch, shares, shares_line, stage_totals, throughput


def _config(tmp_path, epochs=2):
    doc = {"name": "unit", "output_dir": "out",
           "models": [{"id": "m/a", "name": "a", "family": "qwen3", "size_b": 0.6},
                      {"id": "m/b", "name": "b", "family": "qwen3", "size_b": 1.7}],
           "tasks": {"math": {"train": {"source": "synthetic", "format": "synthetic-math"},
                              "test": {"source": "synthetic", "format": "synthetic-math"}}},
           "mixtures": {"design": [["en"], ["en", "sw"], ["es", "ja", "sw"]]}, "eval": {"languages": ["en", "sw"]},
           "train": {"epochs": epochs}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path, load_config(path)


def _finished(cfg, spec, rows):
    rd = Store(cfg.output_path).run(spec)
    rd.init(spec.to_dict(), run_config(cfg, spec))
    for r in rows:
        rd.log_timing(**r)
    rd.write_summary("test", {"n_items": 1})
    rd.set_status("done")
    return rd


def _train_rows(n_langs, epochs=2):
    """A training run: 1000 tokens in 10 s, 40 tokens per language per validation pass in 0.5 s per language
    (+ 0.1 s of scoring), 300 test tokens in 3 s, 1 s data, 2 s model load, 1 s saving."""
    rows = [dict(stage="data", seconds=1.0), dict(stage="model_load", seconds=2.0),
            dict(stage="train_steps", seconds=10.0, tokens=1000, device="cpu")]
    rows += [dict(stage="validation", seconds=0.5 * n_langs + 0.1, generated_tokens=40 * n_langs,
                  generation_s=0.5 * n_langs, epoch=e) for e in range(1, epochs + 1)]
    return rows + [dict(stage="saving", seconds=1.0),
                   dict(stage="test_eval", seconds=3.0, generated_tokens=300, generation_s=3.0)]


def test_stage_sums_shares_and_throughput():
    rows = _train_rows(2)
    totals = stage_totals(rows + [{"stage": "bogus", "seconds": 5}])
    assert list(totals) == list(STAGES)
    assert totals == {"data": 1.0, "model_load": 2.0, "train_steps": 10.0, "validation": 2.2, "test_eval": 3.0,
                      "saving": 1.0}
    assert sum(shares(totals).values()) == pytest.approx(1.0) and shares(totals)["train_steps"] == pytest.approx(10 / 19.2)
    assert shares(dict.fromkeys(STAGES, 0.0)) == dict.fromkeys(STAGES, 0.0)
    assert shares_line(totals).startswith("training steps 52 %, test evaluation 16 %")
    tp = throughput(rows)
    assert tp["train_tokens_per_s"] == 100.0
    assert tp["generated_tokens"] == 2 * 80 + 300 and tp["generated_tokens_per_s"] == pytest.approx(460 / 5.0)
    assert throughput([])["train_tokens_per_s"] is None and throughput([])["generated_tokens_per_s"] is None
    clock = Stopwatch()
    clock.add("saving", 1.5)
    clock.add("saving", 0.5)
    assert clock.seconds == {"saving": 2.0}
    with pytest.raises(ValueError):
        clock.add("lunch", 1.0)


def test_a_run_directory_refuses_an_unknown_stage(tmp_path):
    with pytest.raises(ValueError):
        RunDir(tmp_path / "r").log_timing("lunch", 1.0)


def test_status_shows_each_runs_time_shares_and_the_studys(tmp_path, capsys):
    path, cfg = _config(tmp_path)
    specs = {s.name: s for s in expand(cfg)}
    one = specs["model=a,task=math,mix=en+sw,seed=0"]
    _finished(cfg, one, _train_rows(2))
    rows = status_rows(cfg)
    mine = next(r for r in rows if r["name"] == one.name)
    assert mine["timings"]["validation"] == pytest.approx(2.2)
    t = time_summary(rows)
    assert t["runs_timed"] == 1 and t["total_s"] == pytest.approx(19.2) and sum(t["shares"].values()) == pytest.approx(1)
    assert main(["study", "status", str(path)]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert {"data%", "load%", "train%", "val%", "test%", "save%"} <= set(header)
    line = next(x for x in out.splitlines() if "done" in x.split())  # the one finished run
    assert "52" in line.split() and "11" in line.split()  # training steps 10/19.2, validation 2.2/19.2
    assert "time: 19.2s of run time (summed over 1 runs): training steps 52 %" in out
    assert main(["study", "status", str(path), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["time"]["seconds"]["train_steps"] == 10.0
    assert next(r for r in doc["runs"] if r["name"] == one.name)["timings"]["test_eval"] == 3.0


def test_predicted_seconds_follow_the_measured_rates(tmp_path):
    path, cfg = _config(tmp_path, epochs=2)
    specs = {s.name: s for s in expand(cfg)}
    _finished(cfg, specs["model=a,task=math,mix=en+sw,seed=0"], _train_rows(2))
    params = {"a": 600, "b": 1200}
    compute = {s.name: {"train_tokens": None if s.kind == "baseline" else 2000 * len(s.train_languages),
                        "matmul_params": params[s.model]} for s in expand(cfg)}
    f = forecast(cfg, compute, gpus=1)
    assert f["label"] == "prediction" and f["remaining"] == len(specs) - 1
    rates = f["rates"]["a"]
    assert rates["train_tokens_per_s"] == 100.0 and rates["val_tokens_per_lang_epoch"] == 40.0
    assert rates["generated_tokens_per_s"] == pytest.approx(92.0) and rates["val_overhead_s"] == pytest.approx(0.1)
    assert rates["test_tokens"] == 300 and rates["fixed_s"] == 4.0
    # a 3-language run of model a: 6000 tokens / 100 + 3 langs x 2 epochs x 40 / 92 + 2 x 0.1 + 300 / 92 + 4
    three = f["per_run"]["model=a,task=math,mix=es+ja+sw,seed=0"]
    assert three == pytest.approx(60 + 240 / 92 + 0.2 + 300 / 92 + 4)
    # model b has no finished run: a's rates scaled by 600/1200 parameters (half as fast)
    b_three = f["per_run"]["model=b,task=math,mix=es+ja+sw,seed=0"]
    assert b_three == pytest.approx(120 + 2 * 240 / 92 + 0.2 + 2 * 300 / 92 + 4)
    assert f["wallclock_s"] == pytest.approx(f["device_s"]) == pytest.approx(sum(f["per_run"].values()))
    # more devices: never longer, never shorter than the longest run or the even split
    f4 = forecast(cfg, compute, gpus=4)
    assert max(f4["per_run"].values()) <= f4["wallclock_s"] < f["wallclock_s"]
    assert f4["wallclock_s"] >= f4["device_s"] / 4
    # unknown tokens: not predicted, and counted as such
    assert predict_run(specs["model=a,task=math,mix=en,seed=0"], None, 2, rates) is None


def test_plan_prints_the_prediction_and_refuses_zero_devices(tmp_path, capsys):
    path, cfg = _config(tmp_path)
    assert main(["plan", str(path), "--totals"]) == 0
    totals = json.loads(capsys.readouterr().out)
    assert totals["forecast"]["label"] == "prediction" and totals["forecast"]["wallclock_s"] is None
    assert main(["plan", str(path)]) == 0
    assert "predicted wall-clock: unavailable" in capsys.readouterr().err
    assert main(["plan", str(path), "--gpus", "0"]) == 2
    assert "--gpus" in capsys.readouterr().err

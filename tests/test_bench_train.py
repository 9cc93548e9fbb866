"""`linguamix bench train` runs all three configurations on the same rows, each in its own process
(throughput is measured, not asserted)."""
import json
import subprocess

import pytest

from linguamix.cli import main
from linguamix.errors import ConfigError


@pytest.mark.slow
def test_bench_train_smoke(capsys):
    assert main(["bench", "train", "--shape", "micro", "--steps", "4", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["config"] for r in rows] == ["linguamix", "trl_padded_gc", "trl_padded"]
    for r in rows:  # the rates are what they claim to be: tokens over the timed seconds
        assert r["steps_timed"] == 1 and r["tokens_per_s"] == pytest.approx(r["tokens"] / r["seconds"], rel=0.01)
        assert r["batch"] == 16 and r["threads"] == 1
        assert r["peak_rss_gib"] > 0  # each configuration's own process peak
    ours = rows[0]
    assert ours["gradient_checkpointing"] is False
    assert ours["vs_trl_padded"] == round(ours["tokens_per_s"] / rows[2]["tokens_per_s"], 2)
    assert ours["rss_vs_trl_padded"] == round(ours["peak_rss_gib"] / rows[2]["peak_rss_gib"], 2)
    assert rows[1]["gradient_checkpointing"] is True and rows[2]["gradient_checkpointing"] is False
    # every configuration sees the same rows: the same number of real (non-padding) tokens per step
    assert len({r["tokens"] for r in rows[1:]}) == 1


def test_bench_train_rejects_unknown_shape(capsys):
    assert main(["bench", "train", "--shape", "qwen9"]) == 2
    assert "unknown shape 'qwen9'" in capsys.readouterr().err


def test_bench_train_rejects_bad_batch(capsys):
    assert main(["bench", "train", "--shape", "micro", "--batch", "0"]) == 2
    assert "--batch must be at least 1" in capsys.readouterr().err


def test_qwen3_cpu_shape_has_the_real_vocabulary():
    from linguamix.bench.train import SHAPES, build_model

    assert SHAPES["qwen3-cpu"]["vocab_size"] == 151936
    cfg = build_model("qwen3-cpu").config
    assert (cfg.model_type, cfg.vocab_size, cfg.hidden_size, cfg.num_hidden_layers) == ("qwen3", 151936, 256, 2)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, cfg.intermediate_size) == (4, 2, 64, 768)


@pytest.mark.slow
def test_batch_sets_the_examples_per_step(capsys):
    per_step = {}
    for batch in (2, 6):
        assert main(["bench", "train", "--shape", "micro", "--steps", "4", "--configs", "linguamix",
                     "--batch", str(batch), "--format", "json"]) == 0
        (row,) = json.loads(capsys.readouterr().out)
        assert row["batch"] == batch
        per_step[batch] = row["tokens_per_step"]
    # rows of 141-701 tokens: six examples always carry more tokens than two
    assert per_step[6] > per_step[2] > 0


@pytest.mark.slow
def test_profile_shares_cover_the_time(capsys):
    from linguamix.bench.profile import CATEGORIES

    assert main(["bench", "train", "--shape", "micro", "--steps", "4", "--configs", "linguamix", "--profile",
                 "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["config"] for r in out["configs"]] == ["linguamix"]
    prof = {r["category"]: r for r in out["profile"]}
    assert set(prof) == set(CATEGORIES)
    assert sum(r["share_pct"] for r in prof.values()) == pytest.approx(100, abs=0.6)
    for cat in ("lm_head_ce", "attention", "mlp", "norm", "optimizer"):  # each labelled region was found
        assert prof[cat]["seconds"] > 0


def test_profile_is_for_the_linguamix_configuration_only():
    from linguamix.bench.train import run_config

    with pytest.raises(ConfigError, match="linguamix configuration only"):
        run_config("trl_padded", "micro", steps=4, profile=True)


def test_a_failing_configuration_is_one_line(monkeypatch):
    from linguamix.bench.train import run_bench, run_isolated

    with pytest.raises(ConfigError) as e:  # the child's ConfigError, as the parent's
        run_bench("micro", steps=4, configs=["nope"])
    assert "configuration 'nope' failed in its process (exit 1)" in str(e.value)
    assert "unknown configuration 'nope'" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(RuntimeError) as e:  # any other failure: the child's last stderr line
        run_isolated("linguamix", "micro", threads=1, steps=4, no_such_option=1)
    assert "unexpected keyword argument 'no_such_option'" in str(e.value) and "\n" not in str(e.value)


def test_the_child_does_not_outlive_the_call(monkeypatch):
    from linguamix.bench import train

    started = []

    class Popen(subprocess.Popen):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            started.append(self)

    monkeypatch.setattr(subprocess, "Popen", Popen)
    with pytest.raises(subprocess.TimeoutExpired):
        train.run_isolated("linguamix", "micro", threads=1, steps=4, timeout=0.5)
    assert len(started) == 1 and started[0].poll() is not None  # killed and reaped

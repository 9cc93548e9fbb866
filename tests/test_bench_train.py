"""`linguamix bench train` runs all three configurations on the same rows (throughput is measured, not asserted)."""
import json

import pytest

from linguamix.cli import main


@pytest.mark.slow
def test_bench_train_smoke(capsys):
    assert main(["bench", "train", "--shape", "micro", "--steps", "4", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["config"] for r in rows] == ["linguamix", "trl_padded_gc", "trl_padded"]
    for r in rows:  # the rates are what they claim to be: tokens over the timed seconds
        assert r["steps_timed"] == 1 and r["tokens_per_s"] == pytest.approx(r["tokens"] / r["seconds"], rel=0.01)
    ours = rows[0]
    assert ours["gradient_checkpointing"] is False
    assert ours["vs_trl_padded"] == round(ours["tokens_per_s"] / rows[2]["tokens_per_s"], 2)
    assert rows[1]["gradient_checkpointing"] is True and rows[2]["gradient_checkpointing"] is False
    # every configuration sees the same rows: the same number of real (non-padding) tokens per step
    assert len({r["tokens"] for r in rows[1:]}) == 1


def test_bench_train_rejects_unknown_shape(capsys):
    assert main(["bench", "train", "--shape", "qwen9"]) == 2
    assert "unknown shape 'qwen9'" in capsys.readouterr().err

"""`linguamix bench train` runs all three configurations on the same rows (throughput is measured, not asserted)."""
import json

from linguamix.cli import main


def test_bench_train_smoke(capsys):
    assert main(["bench", "train", "--shape", "micro", "--steps", "4", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["config"] for r in rows] == ["linguamix", "trl_padded_gc", "trl_padded"]
    assert all(r["tokens_per_s"] > 0 and r["steps_timed"] == 1 for r in rows)
    ours = rows[0]
    assert ours["gradient_checkpointing"] is False and ours["vs_trl_padded"] > 0
    assert rows[1]["gradient_checkpointing"] is True and rows[2]["gradient_checkpointing"] is False
    # every configuration sees the same rows: the same number of real (non-padding) tokens per step
    assert len({r["tokens"] for r in rows[1:]}) == 1


def test_bench_train_rejects_unknown_shape(capsys):
    assert main(["bench", "train", "--shape", "qwen9"]) == 2
    assert "unknown shape 'qwen9'" in capsys.readouterr().err

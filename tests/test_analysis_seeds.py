"""Seeds end to end: a two-seed tiny study through `study run`, `collect` and `analyze`; the analysis keeps
the seeds apart (spread, run resampling, paired bootstrap) while the paper's tables pool them."""
import pandas as pd
import pytest

from linguamix.cli import main

# demo.yaml at `demo --quick` sizes, made smaller still: 1 task, 2 mixtures x 2 seeds + the baseline = 5 runs
CONFIG = """\
name: seeds
output_dir: runs
data_seed: 0
seeds: [0, 1]
models:
  - id: base-model
    name: tiny-qwen3
    family: qwen3
    size_b: 0.001
    build: tiny-quick
    build_options: {corpus_sentences: 300, tokenizer_task_items: 4, vocab_size: 600, hidden: 32, heads: 1,
                    intermediate: 64, steps: 3}
tasks:
  math:
    train: {source: synthetic, format: synthetic-math, options: {n: 8, seed: 0, operand_range: [1, 10]}}
    test: {source: synthetic, format: synthetic-math, options: {n: 6, seed: 0, start: 500000, operand_range: [1, 10]}}
    train_per_lang: 4
    val_per_lang: 2
    max_length: 256
    max_new_tokens: 8
mixtures:
  design: [[en], [en, es]]
train: {epochs: 1, global_batch_size: 4, learning_rate: 0.002, gradient_checkpointing: false}
eval: {languages: [en, es], batch_size: 16}
executor: {kind: local, max_retries: 0}
"""


@pytest.mark.slow
def test_a_two_seed_study_through_collect_and_analyze(tmp_path):
    cfg = tmp_path / "seeds.yaml"
    cfg.write_text(CONFIG)
    assert main(["study", "run", str(cfg), "--quiet"]) == 0
    assert main(["collect", str(cfg)]) == 0
    out = tmp_path / "report"
    assert main(["analyze", str(tmp_path / "runs" / "results.duckdb"), "--out", str(out), "--n-boot-median", "99",
                 "--n-boot-regression", "49", "--n-boot-cluster", "99"]) == 0

    seeds = pd.read_csv(out / "seeds.csv", keep_default_na=False, na_values=[""])
    trained = seeds[seeds["mixture"] != "pretrained"]
    assert len(trained) == 2 * 2 and (trained["n_seeds"] == 2).all() and trained["seed_sd"].notna().all()
    assert (seeds.loc[seeds["mixture"] == "pretrained", "n_seeds"] == 1).all()  # the baseline is seed-free
    assert (trained["n"] == 2 * 6).all()  # the paper's tables pool the seeds' items

    scaling = pd.read_csv(out / "scaling.csv")
    one = scaling[(scaling["level"] == "language") & (scaling["n_train_langs"] == 1)]
    assert (one["n_runs"] == 2).all() and one["seed_sd"].notna().all() and (one["n_items"] == 6).all()

    comp = pd.read_csv(out / "bilingual_comparisons.csv")
    assert len(comp) == 2 and (comp["paired_test"] == "paired-bootstrap").all()  # two seeds a side: no McNemar
    assert comp["p_paired"].between(0, 1).all() and comp["p_welch"].between(0, 1).all()
    report = (out / "report.md").read_text()
    assert "Training seeds: 2 per configuration" in report and "## 7. Seed-to-seed spread" in report

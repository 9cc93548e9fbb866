"""`linguamix power`: simulated power agrees with the closed form where one exists, and the command's
JSON gives power and mde per comparison."""
import json
import math

import pytest
from scipy.stats import norm

from linguamix.analysis.noise import Noise
from linguamix.analysis.power import PowerOptions, power_analysis
from linguamix.analysis.simulate import load_design
from linguamix.cli import main

SIMPLE = """\
name: simple
models:
  - {id: x/m, name: m, family: qwen3, size_b: 1.0}
tasks: {math: {train: {source: synthetic, format: synthetic-math}, test: {source: synthetic, format: synthetic-math}}}
mixtures: {design: [[en], [en, es], [en, ja], [en, bn], [en, sw]]}
eval: {languages: [es, ja, bn, sw]}
"""
QUIET = Noise(lang_sd=0.0, run_sd=0.0, noise_sd=0.0, rho=0.0)  # independent items, no training noise


@pytest.fixture()
def simple(tmp_path):
    path = tmp_path / "simple.yaml"
    path.write_text(SIMPLE)
    return path


def closed_form(p0: float, effect: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided test of two independent proportions (normal approximation), counting only
    rejections in the effect's direction, as the simulation does."""
    p1 = p0 + effect
    se = math.sqrt(p0 * (1 - p0) / n + p1 * (1 - p1) / n)
    return float(norm.cdf(effect / se - norm.ppf(1 - alpha / 2)))


@pytest.mark.slow
def test_two_independent_proportions_match_the_closed_form(simple):
    # Bilingual vs English-only on 250 independent items a side, no training noise: the textbook case of
    # two independent proportions. 4 direct and 12 cross-lingual comparisons per simulated study, every
    # one with the same English-only accuracy.
    design = load_design(str(simple), n_items=250)
    options = PowerOptions(n_sims=100, seed=1, test="welch", noise=QUIET, families=("comparisons",), find_mde=False)
    table = power_analysis(design, 8.0, options).set_index("comparison")
    assert list(table.index) == ["bilingual_vs_english_only:direct", "bilingual_vs_english_only:cross_lingual"]
    for _, row in table.iterrows():
        expected = closed_form(row["baseline_accuracy"], 0.08, 250)
        assert 0.3 < expected < 0.8  # a case where power is neither trivially 0 nor 1
        assert abs(row["power"] - expected) < 0.05, (row.to_dict(), expected)
        assert row["size"] == pytest.approx(0.05, abs=0.03)  # no effect: the nominal rejection rate


@pytest.mark.slow
def test_power_json_gives_power_and_mde_per_comparison(simple, capsys):
    assert main(["power", "--design", str(simple), "--effect", "10", "--n-sims", "6", "--format", "json",
                 "--lang-sd", "0", "--run-sd", "0", "--noise-sd", "0", "--rho", "0", "--n-items", "250"]) == 0
    rows = json.loads(capsys.readouterr().out)
    # no English evaluation and no zero-shot case in this design; its regression is estimable
    assert [r["comparison"] for r in rows] == ["bilingual_vs_english_only:direct",
                                               "bilingual_vs_english_only:cross_lingual", "regression:sqrt_L_over_Lmax"]
    for r in rows:
        assert 0 <= r["power"] <= 1 and r["effect_pts"] == 10 and r["n_sims"] in (6, 12)
        assert r["mde"] is None or 0 < r["mde"] <= 30


def test_power_rejects_bad_options(simple):
    design = load_design(str(simple), n_items=50)
    from linguamix.errors import ConfigError

    with pytest.raises(ConfigError, match="--n-sims must be >= 2"):
        power_analysis(design, 3.0, PowerOptions(n_sims=1))
    with pytest.raises(ConfigError, match="--effect must be >= 0"):
        power_analysis(design, -1.0, PowerOptions(n_sims=2))

"""The options of `linguamix analyze` (light: the CLI reads them to make its flags without pandas)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class AnalysisOptions(BaseModel):
    """How `linguamix analyze` analyses a results table (its flags are these fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, allow_inf_nan=False)

    seed: int = 0
    """Seeds the bootstrap resamples and the regression's 70/30 split."""
    n_boot_median: int = Field(default=9999, ge=1)
    """Bootstrap resamples of each median delta (scipy.stats.bootstrap, BCa)."""
    n_boot_regression: int = Field(default=2000, ge=1)
    """Bootstrap resamples of the regression coefficients (percentile intervals)."""
    train_fraction: float = Field(default=0.7, gt=0, lt=1)
    """Share of evaluation instances the regression is fit on; R^2 is reported on the rest."""
    alpha: float = Field(default=0.05, gt=0, lt=1)
    """Significance level of the zero-shot vs direct tests (intervals are always 95 %)."""
    ks: tuple[int, ...] = (4, 6, 9)
    """Diversity levels of the zero-shot analysis (numbers of training languages), comma-separated."""
    zero_shot_test: Literal["paired", "welch", "mcnemar"] = "paired"
    """Test deciding the zero-shot verdict: `paired` (McNemar / paired bootstrap where per-item predictions
    exist, else Welch) or `welch` (the paper's t-test on item outcomes, as if the items were independent);
    `mcnemar` is the old name of `paired`."""
    reference: str = "en"
    """The language of the English-only baseline and of the bilingual en+X mixtures."""
    english_direct: Literal["english-only", "bilingual-mean"] = "english-only"
    """Direct exposure for the reference language in the zero-shot analysis: `english-only` or
    `bilingual-mean` (the bilingual reference+X models pooled)."""
    n_boot_cluster: int = Field(default=2000, ge=1)
    """Replicates of the cluster bootstrap (items x runs) behind every cluster-aware interval and paired
    bootstrap test."""
    intervals: Literal["cluster", "wilson"] = "cluster"
    """Intervals drawn in the figures: `cluster` (cluster-aware bootstrap) or `wilson` (the paper's pooled)."""
    power_effect: float | None = Field(default=None, gt=0)
    """With a value (accuracy points): also run `linguamix power` on this input's design (report appendix)."""
    power_sims: int = Field(default=50, ge=2)
    """Simulated studies per effect size of that power analysis."""

    @field_validator("ks", mode="before")
    @classmethod
    def _comma_separated(cls, v):
        if isinstance(v, str):
            try:
                return tuple(int(k) for k in v.split(",") if k.strip())
            except ValueError:
                raise ValueError(f"expected comma-separated integers, e.g. 4,6,9, got {v!r}") from None
        return v

    @field_validator("reference")
    @classmethod
    def _known_language(cls, v: str):
        from .. import languages

        if not languages.is_known(v):
            raise ValueError(f"unknown language code {v!r}")
        return v

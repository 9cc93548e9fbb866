"""The simulator's noise model (a module of its own so that the CLI can show its defaults cheaply)."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class Noise:
    """The noise of linguamix.analysis.simulate; the defaults are calibrated on the paper's R^2 (0.805)."""

    lang_sd: float = 0.12
    """Per (model, task, evaluation language): a language's own difficulty, shared by every mixture."""
    run_sd: float = 0.02
    """Per training run (model, task, mixture, seed), shared by the run's evaluation languages."""
    noise_sd: float = 0.02
    """Per trained cell (run x evaluation language)."""
    rho: float = 0.5
    """Latent correlation of one item's outcomes across the cells of a model and task (item difficulty)."""

    def check(self) -> None:
        for name in ("lang_sd", "run_sd", "noise_sd"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.rho < 1:
            raise ConfigError(f"rho must be in [0, 1), got {self.rho}")

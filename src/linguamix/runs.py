"""The runs of a study: a config expanded into `RunSpec`s (models x tasks x mixtures x seeds, plus one
pretrained baseline per model x task), and the hash of everything that determines each run's result.

A design fact, like the mixtures: the orchestrator runs these, `collect` tabulates them, `plan` prices them.
"""
from __future__ import annotations

from typing import Any

from .config import StudyConfig
from .errors import ConfigError
from .mixtures import PRETRAINED, Mixture
from .records import RunSpec
from .store import config_hash


def expand(cfg: StudyConfig) -> list[RunSpec]:
    """Every run of the study, baselines first within each (model, task)."""
    runs: list[RunSpec] = []
    mixtures = cfg.mixture_list()
    for model in cfg.models:
        for task in cfg.tasks:
            # Greedy decoding makes the base model's evaluation seed-free: one baseline per model x task.
            runs.append(RunSpec(model=model.short_name, task=task, mixture=PRETRAINED, seed=cfg.seeds[0]))
            for mixture in mixtures:
                for seed in cfg.seeds:
                    runs.append(RunSpec(model=model.short_name, task=task, mixture=mixture.id, seed=seed))
    return runs


def run_config(cfg: StudyConfig, spec: RunSpec) -> dict[str, Any]:
    """The part of the study config that determines this run's result (hashed into its manifest)."""
    out: dict[str, Any] = {
        "study": cfg.name,
        "model": cfg.model(spec.model).model_dump(mode="json"),
        "task": cfg.task(spec.task).model_dump(mode="json"),
        "eval": cfg.eval.model_dump(mode="json"),
        "seed": spec.seed,
    }
    if spec.kind == "train":
        out["mixture"] = Mixture.from_id(spec.mixture).languages
        out["train"] = cfg.train.model_dump(mode="json")
    return out


def run_hash(cfg: StudyConfig, spec: RunSpec) -> str:
    """The config hash `RunDir.init` stores for this run under the current config."""
    return config_hash({"spec": spec.to_dict(), "config": run_config(cfg, spec)})


ONLY_KEYS = ("model", "task", "mixture", "kind", "seed")


def parse_only(values: list[str] | None) -> dict[str, set[str]]:
    """`--only task=math,model=a|b` (repeatable; `|` separates alternatives) -> {key: allowed values}."""
    out: dict[str, set[str]] = {}
    for value in values or []:
        for part in filter(None, (p.strip() for p in value.split(","))):
            key, sep, alts = part.partition("=")
            key = {"mix": "mixture"}.get(key.strip(), key.strip())
            if not sep or key not in ONLY_KEYS or not alts.strip():
                raise ConfigError(f"--only {value!r}: expected KEY=VALUE[|VALUE...] with KEY one of "
                                  f"{', '.join(ONLY_KEYS)} (got {part!r})")
            out.setdefault(key, set()).update(a.strip() for a in alts.split("|") if a.strip())
    return out


def select(cfg: StudyConfig, only: dict[str, set[str]] | None = None) -> list[RunSpec]:
    """The runs of the design that match every `--only` key; a value that matches nothing is an error."""
    specs = expand(cfg)
    for key, allowed in (only or {}).items():
        have = {str(getattr(s, key)) for s in specs}
        if key == "mixture":  # accept the languages in any order: `es+en` means `en+es`
            allowed = {a if a == PRETRAINED else Mixture.from_id(a).id for a in allowed}
        unknown = sorted(allowed - have)
        if unknown:
            raise ConfigError(f"--only {key}={'|'.join(unknown)}: not in the design (have: "
                              f"{', '.join(sorted(have)[:12])}{' ...' if len(have) > 12 else ''})")
        specs = [s for s in specs if str(getattr(s, key)) in allowed]
    return specs


def find_run(cfg: StudyConfig, name: str) -> RunSpec:
    for spec in expand(cfg):
        if spec.name == name:
            return spec
    raise ConfigError(f"--run {name!r}: no such run in the study '{cfg.name}' (see `linguamix plan`)")

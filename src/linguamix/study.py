"""The study: expand a config into runs (models x tasks x mixtures x seeds, plus one pretrained
baseline per model x task) and report their state from the run store."""
from __future__ import annotations

from typing import Any

from .config import StudyConfig
from .mixtures import PRETRAINED, Mixture
from .records import RunSpec
from .store import Store


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


def plan_rows(cfg: StudyConfig, store: Store | None = None) -> list[dict[str, Any]]:
    store = store or Store(cfg.output_path)
    rows = []
    for spec in expand(cfg):
        st = store.run(spec).status()
        model = cfg.model(spec.model)
        langs = [] if spec.kind == "baseline" else list(Mixture.from_id(spec.mixture).languages)
        rows.append({
            "name": spec.name, "kind": spec.kind, "model": spec.model, "model_id": model.id,
            "family": model.family, "size_b": model.size_b, "task": spec.task, "mixture": spec.mixture,
            "languages": langs, "n_languages": len(langs), "seed": spec.seed,
            "status": st.get("state", "pending"),
        })
    return rows

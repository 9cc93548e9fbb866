"""The runs of a study: a config expanded into `RunSpec`s (models x tasks x mixtures x seeds, plus one
pretrained baseline per model x task), and the hash of everything that determines each run's result.

A design fact, like the mixtures: the orchestrator runs these, `collect` tabulates them, `plan` prices them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import StudyConfig
from .errors import ConfigError
from .mixtures import PRETRAINED, Mixture
from .records import RunSpec
from .store import Store, config_hash


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
        out["train"] = cfg.train.model_dump(mode="json", exclude={"report_to"})  # where curves go: not results
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


# -- config drift: runs made under another configuration ------------------------------------------------
@dataclass(frozen=True)
class Changed:
    """A run whose directory was made with another configuration than the current one."""

    spec: RunSpec
    fields: tuple[str, ...]
    """What differs, as `section.field: old -> new`."""
    complete: bool


def config_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """`key.path: old -> new` for every value that differs between two JSON-like documents."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old:
                out.append(f"{path}: (absent) -> {new[key]!r}")
            elif key not in new:
                out.append(f"{path}: {old[key]!r} -> (absent)")
            else:
                out += config_diff(old[key], new[key], path)
        return out
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        old, new = list(old), list(new)
    return [] if old == new else [f"{prefix or '<config>'}: {old!r} -> {new!r}"]


def changed_runs(cfg: StudyConfig, specs: list[RunSpec], store: Store) -> list[Changed]:
    """The runs among `specs` whose directory holds results or state of another configuration (and that
    were not accepted under this one)."""
    out = []
    for spec in specs:
        rd = store.run(spec)
        manifest = rd.manifest()
        if not manifest:
            continue
        now = run_hash(cfg, spec)
        if manifest.get("config_hash") == now or rd.status().get("accepted_config_hash") == now:
            continue
        fields = config_diff(manifest.get("config", {}), run_config(cfg, spec)) or ["the run's spec"]
        out.append(Changed(spec, tuple(fields), rd.is_complete()))
    return out


def describe_changed(changed: list[Changed], limit: int = 4) -> str:
    """One line: how many runs changed, the first few with what changed."""
    shown = "; ".join(f"{c.spec.name} ({', '.join(c.fields[:3])}{' ...' if len(c.fields) > 3 else ''})"
                      for c in changed[:limit])
    more = f"; +{len(changed) - limit} more" if len(changed) > limit else ""
    return f"{len(changed)} run(s) were made with another configuration: {shown}{more}"


def find_run(cfg: StudyConfig, name: str) -> RunSpec:
    for spec in expand(cfg):
        if spec.name == name:
            return spec
    raise ConfigError(f"--run {name!r}: no such run in the study '{cfg.name}' (see `linguamix plan`)")

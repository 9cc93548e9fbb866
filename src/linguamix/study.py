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


def execute(cfg: StudyConfig, spec: RunSpec, rd, *, progress: bool = True, allow_config_change: bool = False,
            evaluate_test: bool = True) -> int:
    """Run one run to completion: train (unless it is the pretrained baseline), select, evaluate the
    selected model on the test languages. Idempotent: a complete run is skipped, a partial one resumes.
    Returns the process exit code (0, or train.EXIT_PREEMPTED after a SIGTERM)."""
    from accelerate import PartialState

    from . import train as train_stage
    from .data.build import load_test
    from .evaluate import evaluate, make_generator
    from .models import load_tokenizer, model_path

    if rd.is_complete():
        return 0
    state = PartialState()
    if state.is_main_process:
        rd.init(spec.to_dict(), run_config(cfg, spec), allow_config_change=allow_config_change)
        rd.set_status("running")
    state.wait_for_everyone()
    try:
        model_cfg = cfg.model(spec.model)
        path = model_path(model_cfg, cfg.base_dir)
        selected: dict = {}
        if spec.kind == "train":
            res = train_stage.train(cfg, spec, rd, model_path=path, progress=progress)
            if res.preempted:
                if state.is_main_process:
                    rd.set_status("pending", reason="preempted: checkpoint saved; rerun to resume")
                return train_stage.EXIT_PREEMPTED
            path = str(res.model_dir)
            selected = {"selected_epoch": res.best_epoch, "selected_val_avg_acc": res.best_avg_acc}
        if evaluate_test and state.is_main_process:
            tok = load_tokenizer(path, trust_remote_code=model_cfg.trust_remote_code)
            test = load_test(cfg, spec.task, cfg.eval.languages)
            gen = make_generator(cfg.eval.backend, path, tok, batch_size=cfg.eval.batch_size,
                                 trust_remote_code=model_cfg.trust_remote_code)
            evaluate(gen, spec.task, test, rd, max_new_tokens=cfg.task(spec.task).max_new_tokens,
                     progress=progress, extra={"model": path, **selected})
        if state.is_main_process:
            rd.set_status("done" if evaluate_test else "pending", **selected)
        state.wait_for_everyone()
        return 0
    except BaseException as e:
        if state.is_main_process and not isinstance(e, KeyboardInterrupt):
            rd.set_status("failed", reason=f"{type(e).__name__}: {e}".splitlines()[0][:500])
        raise

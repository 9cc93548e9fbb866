"""Train one run: a base model on one mixture with the paper's recipe, selecting the checkpoint by
mean validation accuracy over the mixture's languages.

    linguamix train --model ID_OR_PATH --task math|api --mixture ID --out RUN_DIR [--config CONFIG]
    accelerate launch --config_file configs/accelerate/fsdp2.yaml -m linguamix train ...   (multi-GPU)

`train` = `setup` (data, model, trainer, resume state) -> `fit` -> `finalize` (the selected checkpoint
becomes the run's model). Rerunning resumes from the last checkpoint; a SIGTERM (SLURM preemption)
saves one and the run exits with EXIT_PREEMPTED so the orchestrator requeues; a finished run is never
retrained. `build_trainer` is the one place a trainer is assembled: `linguamix bench train` measures
exactly what runs train with.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from . import tasks
from .config import StudyConfig, TrainConfig
from .mixtures import Mixture
from .records import Example, RunSpec
from .store import RunDir, write_json

SELECTED = "linguamix_selected.json"
"""Written into the run's model/ folder last: the run's training is finished."""


@dataclass(frozen=True)
class TrainResult:
    model_dir: Path
    best_epoch: int | None
    best_avg_acc: float | None
    preempted: bool = False


@dataclass
class Setup:
    """What `fit` and `finalize` need, made by `setup`."""

    trainer: Any
    tok: Any
    resume: str | None
    curve: list[dict[str, Any]] = field(default_factory=list)
    selects: bool = True
    timing: Callable[..., None] = lambda stage, seconds, **counts: None
    """RunDir.log_timing on the main process, a no-op on the others."""


def train(cfg: StudyConfig, spec: RunSpec, rd: RunDir, *, model_path: str, progress: bool = True) -> TrainResult:
    from .trainer import install_sigterm_handler, preempted, restore_signal_handlers

    if (rd.model_dir / SELECTED).exists():  # finished before: never retrained
        sel = json.loads((rd.model_dir / SELECTED).read_text())
        return TrainResult(rd.model_dir, sel.get("epoch"), sel.get("avg_acc"))
    previous = install_sigterm_handler()
    try:
        s = setup(cfg, spec, rd, model_path=model_path, progress=progress)
        fit(s)
        if preempted():
            return TrainResult(rd.model_dir, None, None, preempted=True)
        return finalize(s, rd)
    finally:
        restore_signal_handlers(previous)


def fit(s: Setup) -> None:
    """The trainer's loop; its wall time less the validation and checkpoint saves inside it is the
    `train_steps` stage (recorded on a crash or preemption too: the time was spent)."""
    t0, before = time.perf_counter(), dict(s.trainer.clock.seconds)
    try:
        s.trainer.train(resume_from_checkpoint=s.resume)
    finally:
        inside = sum(v - before.get(k, 0.0) for k, v in s.trainer.clock.seconds.items())
        world = s.trainer.accelerator.num_processes
        s.timing("train_steps", time.perf_counter() - t0 - inside, tokens=s.trainer.tokens_trained * world,
                 steps=s.trainer.state.global_step, resumed_from=s.resume, world_size=world, device=_device_name())


def _device_name() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def setup(cfg: StudyConfig, spec: RunSpec, rd: RunDir, *, model_path: str, progress: bool) -> Setup:
    """The mixture's data (built once, by the main process), the model, the trainer, and the resume state
    (the selection curve truncated to the checkpoint training restarts from)."""
    import torch

    from .data.build import ensure_mixture, read_split
    from .data.tokenize import load_tokenizer
    from .models import check_special_tokens, load_model
    from .store import Store
    from .trainer import Validation, process_state

    tc, task_cfg, model_cfg = cfg.train, cfg.task(spec.task), cfg.model(spec.model)
    check_report_to(tc.report_to)  # before any data, model or training
    if tc.select_every_epoch:
        check_validation_backend(cfg)
    state = process_state()
    main = state.is_main_process
    timing = rd.log_timing if main else Setup.timing
    t0 = time.perf_counter()
    tok = load_tokenizer(model_path, trust_remote_code=model_cfg.trust_remote_code, revision=model_cfg.revision)
    with state.main_process_first():
        built = ensure_mixture(cfg, spec.task, Mixture.from_id(spec.mixture), tok, Store(cfg.output_path),
                               progress=progress and main)
    rows = read_split(built.train_file)
    val = _examples(read_split(built.validation_file))
    if cfg.eval.validation_limit:
        val = {lang: exs[: cfg.eval.validation_limit] for lang, exs in val.items()}
    timing("data", time.perf_counter() - t0, examples=len(rows))
    t0 = time.perf_counter()
    model = load_model(model_path, dtype=torch.float32, attn_implementation=attention(tc, model_cfg.attn_implementation),
                       trust_remote_code=model_cfg.trust_remote_code, revision=model_cfg.revision)
    check_special_tokens(model, tok, model_path)
    timing("model_load", time.perf_counter() - t0, what="base model")

    resume = usable_checkpoint(rd, main=main)
    resumed_step = json.loads((Path(resume) / "trainer_state.json").read_text())["global_step"] if resume else 0
    curve = [c for c in rd.read_selection() if c["step"] <= resumed_step]
    best_file = rd.checkpoints / "best" / "linguamix_best.json"
    best_avg = max([c["avg_acc"] for c in curve] + ([json.loads(best_file.read_text())["avg_acc"]]
                                                    if best_file.exists() else []) + [-1.0])

    def on_result(entry: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        curve.append(entry)
        rd.write_selection(curve)
        rd.write_predictions(f"validation-epoch{entry['epoch']}", rows)
        if entry["is_best"]:
            write_json(best_file, entry)

    task = tasks.get(spec.task)
    validation = Validation(examples=val, score=task.score, max_new_tokens=task_cfg.max_new_tokens, stop=task.stop,
                            batch_size=cfg.eval.batch_size, on_result=on_result, best_dir=str(rd.checkpoints / "best"),
                            best_avg=best_avg, backend=cfg.eval.backend,
                            generate=_subprocess_generate(cfg, rd, task_cfg.max_new_tokens, task.stop, main),
                            weights_dir=str(rd.checkpoints / "validation-weights")) if tc.select_every_epoch else None
    examples = [{"input_ids": r["input_ids"], "completion_mask": r["completion_mask"]} for r in rows]
    trainer, info = build_trainer(model, tok, examples, recipe=tc, seed=spec.seed, output_dir=str(rd.checkpoints),
                                  validation=validation, progress=progress and main,
                                  log_fn=(lambda row: rd.log("train", row)) if main else None, timing_fn=timing,
                                  report_to=tc.report_to, logs_dir=rd.log_file.parent, run_name=spec.name)
    if main:
        rd.write_json("train_plan.json", {
            **info, "examples_per_language": built.manifest["splits"]["train"]["examples_per_language"],
            "attention": model.config._attn_implementation, "resumed_from": resume})
    return Setup(trainer, tok, resume, curve, validation is not None, timing)


def check_validation_backend(cfg: StudyConfig) -> None:
    """`eval.backend: vllm` selects through vLLM: it must be importable here (the child process runs this
    Python), and the saved weights must be a whole model (a LoRA run saves only its adapter)."""
    from .errors import ConfigError
    from .subgen import vllm_importable

    if cfg.eval.backend != "vllm":
        return
    if not vllm_importable():
        raise ConfigError("eval.backend is 'vllm' but vLLM is not importable by this Python (the epoch-end "
                          "validation generates with it): pip install 'linguamix[vllm]' (CPU: see "
                          "docs/evaluation.md), or set eval.backend: hf")
    if cfg.train.lora is not None:
        raise ConfigError("eval.backend 'vllm' with train.lora: the epoch-end validation through vLLM needs "
                          "full weights (a LoRA checkpoint holds only the adapter); set eval.backend: hf")


def _subprocess_generate(cfg: StudyConfig, rd: RunDir, max_new_tokens: int, stop: Sequence[str], main: bool):
    """With eval.backend vllm: (saved weights folder, prompts) -> completions from vLLM in a child process
    (subgen), its timings logged as an event. None with eval.backend hf (HF generate in the trainer)."""
    if cfg.eval.backend != "vllm":
        return None
    from .subgen import generate_in_subprocess

    def generate(model_dir: str, prompts: list[str]) -> tuple[list[str], int | None]:
        r = generate_in_subprocess(model_dir, prompts, max_new_tokens=max_new_tokens, stop=stop,
                                   work_dir=rd.checkpoints / "validation")
        if main:
            rd.log("events", {"event": "validation_generation", "backend": "vllm", "items": len(prompts),
                              "seconds": round(r.seconds, 3), **r.stats})
        return r.texts, r.stats.get("new_tokens")

    return generate


def finalize(s: Setup, rd: RunDir) -> TrainResult:
    """The selected checkpoint (else the final weights) becomes the run's model/; the training
    checkpoints go. The model folder appears whole (written beside it, then renamed)."""
    from .trainer import process_state

    state = process_state()
    state.wait_for_everyone()
    t0 = time.perf_counter()
    src = rd.checkpoints / "best"
    if not s.selects or not src.exists():
        src = rd.checkpoints / "final"
        s.trainer.save_model(str(src))  # every rank takes part (sharded weights are gathered)
    best = max(s.curve, key=lambda c: (c["avg_acc"], -c["step"])) if s.curve else None
    if state.is_main_process:
        tmp = rd.path / "model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        s.tok.save_pretrained(tmp)
        write_json(tmp / SELECTED, {"epoch": best and best["epoch"], "step": best and best["step"],
                                    "avg_acc": best and best["avg_acc"], "curve": s.curve})
        shutil.rmtree(rd.model_dir, ignore_errors=True)
        tmp.rename(rd.model_dir)
        shutil.rmtree(rd.checkpoints, ignore_errors=True)
        s.timing("saving", time.perf_counter() - t0, what="model")
    state.wait_for_everyone()
    return TrainResult(rd.model_dir, best and best["epoch"], best and best["avg_acc"])


# -- the trainer ------------------------------------------------------------------------------------
def attention(recipe: TrainConfig, configured: str | None = None) -> str:
    """The attention implementation training uses: the model config's choice, else linguamix's varlen
    kernel on the fast path (registered here), else SDPA."""
    from . import fastpath

    impl = configured or (fastpath.ATTN_NAME if recipe.padding_free and recipe.fast_path else "sdpa")
    if impl == fastpath.ATTN_NAME:
        fastpath.register_attention()
    return impl


def build_trainer(model, tok, examples: list[dict[str, Any]], *, recipe: TrainConfig, seed: int, output_dir: str,
                  validation=None, log_fn: Callable[[dict[str, Any]], None] | None = None,
                  callbacks: Sequence[Any] = (), progress: bool = False, save_at_epoch_end: bool = True,
                  timing_fn: Callable[..., None] | None = None, report_to: Sequence[str] = (),
                  logs_dir: Path | None = None, run_name: str | None = None,
                  **sft_overrides: Any) -> tuple[Any, dict[str, Any]]:
    """A LinguamixTrainer for `examples` (input_ids + completion_mask) under `recipe`: fused kernels on the
    fast path, the memory plan (token budget, gradient checkpointing), LoRA if asked, the step plan
    (exactly `global_batch_size` examples per optimizer step) and TRL's SFTConfig. -> (trainer, plan facts).
    `report_to`: tensorboard (event files under `logs_dir/tensorboard`, outside the checkpoints that
    finalize removes) and/or wandb, as transformers' integrations log them."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig

    from . import fastpath
    from .trainer import LinguamixTrainer, StepPlan, process_state

    state = process_state()
    cuda = torch.cuda.is_available()
    packed = recipe.padding_free and recipe.fast_path
    kernels = fastpath.apply_kernels(model) if packed else []
    budget, grad_ckpt = fastpath.auto_memory_plan(model, state.device, max(len(e["input_ids"]) for e in examples),
                                                  gradient_checkpointing=recipe.gradient_checkpointing)
    budget = recipe.max_tokens_per_micro_batch or budget
    if recipe.lora is not None:
        from peft import LoraConfig, get_peft_model

        if packed:
            fastpath.patch_fused_forward(model)  # before PEFT wraps the model
        lora = recipe.lora
        model = get_peft_model(model, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                 target_modules=lora.target_modules, task_type="CAUSAL_LM"))
    world = state.num_processes
    global_batch = min(recipe.global_batch_size, len(examples))  # a toy set smaller than one step: one step/epoch
    global_batch -= global_batch % world
    plan = StepPlan([len(e["input_ids"]) for e in examples], [sum(e["completion_mask"][1:]) for e in examples],
                    global_batch=global_batch, world=world, rank=state.process_index, seed=seed, epochs=recipe.epochs,
                    packed=packed, token_budget=budget,
                    micro_batch_size=recipe.micro_batch_size or max(1, recipe.global_batch_size // world))
    args = SFTConfig(**{
        "output_dir": output_dir, "num_train_epochs": recipe.epochs, "max_steps": recipe.max_steps or -1,
        "per_device_train_batch_size": 1, "gradient_accumulation_steps": plan.k,
        "learning_rate": recipe.learning_rate, "lr_scheduler_type": recipe.lr_scheduler,
        "warmup_steps": recipe.warmup_ratio, "weight_decay": recipe.weight_decay,
        # the same maths in one kernel on CUDA
        "optim": "adamw_torch_fused" if cuda and recipe.optimizer == "adamw_torch" else recipe.optimizer,
        "bf16": cuda and recipe.precision in ("auto", "bf16"),  # bf16 autocast over fp32 master weights
        **_checkpointing_arg(SFTConfig, grad_ckpt),
        "logging_steps": recipe.logging_steps, "logging_first_step": True, "save_strategy": "no",
        "eval_strategy": "no", "save_total_limit": 1, "report_to": list(report_to), "seed": seed, "data_seed": seed,
        "remove_unused_columns": False, "dataset_kwargs": {"skip_prepare_dataset": True}, "max_length": None,
        "padding_free": False, "logging_nan_inf_filter": False, "disable_tqdm": not progress,
        "dataloader_num_workers": 0, "use_cpu": not cuda, "ddp_find_unused_parameters": False,
        **({"run_name": run_name} if run_name else {}), **sft_overrides})
    dataset = Dataset.from_dict({"input_ids": [e["input_ids"] for e in examples],
                                 "labels": [[t if m else -100 for t, m in zip(e["input_ids"], e["completion_mask"])]
                                            for e in examples]})
    trainer = LinguamixTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok, examples=examples,
                               plan=plan, packed=packed, validation=validation, log_fn=log_fn,
                               callbacks=list(callbacks), save_at_epoch_end=save_at_epoch_end, timing_fn=timing_fn)
    _route_tensorboard(trainer, logs_dir)
    info = {"examples": len(examples), "global_batch": plan.global_batch, "steps_per_epoch": plan.steps_per_epoch,
            "epochs": recipe.epochs, "micro_batches_per_step": plan.k, "token_budget": budget if packed else None,
            "gradient_checkpointing": grad_ckpt, "packed": packed, "world_size": world, "bf16": args.bf16,
            "kernels": kernels, "optimizer": args.optim}
    return trainer, info


def check_report_to(report_to: Sequence[str]) -> None:
    """Each `train.report_to` integration importable here, before any data or model is loaded."""
    import importlib.util

    from .errors import ConfigError

    needs = {"tensorboard": ("tensorboard", "linguamix[tensorboard]"), "wandb": ("wandb", "linguamix[wandb]")}
    for name in report_to:
        module, extra = needs[name]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"train.report_to: '{name}' needs the {module} package: pip install '{extra}'")


def _route_tensorboard(trainer, logs_dir: Path | None) -> None:
    """TensorBoard writes to `logs_dir/tensorboard` (transformers' default is under the output directory,
    the checkpoints folder that finalize removes)."""
    from transformers.integrations import TensorBoardCallback

    for cb in trainer.callback_handler.callbacks:
        if isinstance(cb, TensorBoardCallback) and logs_dir is not None:
            cb.logging_dir = str(Path(logs_dir) / "tensorboard")


def _checkpointing_arg(cls, on: bool) -> dict[str, bool]:
    """transformers renamed `gradient_checkpointing` to `activation_checkpointing` (5.x)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": on}


def _examples(rows: list[dict[str, Any]]) -> dict[str, list[Example]]:
    out: dict[str, list[Example]] = {}
    for r in rows:
        out.setdefault(r["lang"], []).append(Example(task="", item_id=r["item_id"], lang=r["lang"], prompt=r["prompt"],
                                                     completion=r["completion"], gold=r["gold"]))
    return out


def usable_checkpoint(rd: RunDir, *, main: bool = True) -> str | None:
    """The newest training checkpoint that can be read; a broken one (a crash while it was written, a
    truncated file) is moved to `train.corrupt/` with a one-line notice, and the one before it is used
    (or training restarts when none is left)."""
    ckpts = sorted((p for p in rd.checkpoints.glob("checkpoint-*") if p.name.split("-", 1)[1].isdigit()),
                   key=lambda p: int(p.name.split("-", 1)[1]), reverse=True)
    for ckpt in ckpts:
        problem = checkpoint_problem(ckpt)
        if problem is None:
            return str(ckpt)
        if main:
            aside = rd.path / "train.corrupt" / ckpt.name
            aside.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(aside, ignore_errors=True)
            ckpt.rename(aside)
            notice = f"{ckpt}: unusable checkpoint ({problem}); moved to {aside}, resuming from the one before"
            print(f"linguamix: {notice}", flush=True)
            rd.log("events", {"event": "corrupt_checkpoint", "checkpoint": str(ckpt), "problem": problem})
    return None


def checkpoint_problem(ckpt: Path) -> str | None:
    """Why a trainer checkpoint cannot be resumed from, or None: its state file parses, every safetensors
    header and every torch zip archive (optimizer, scheduler, RNG states) is whole."""
    import zipfile

    from safetensors import SafetensorError, safe_open

    state = ckpt / "trainer_state.json"
    try:
        int(json.loads(state.read_text())["global_step"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"{state.name}: {type(e).__name__}"
    for f in sorted(ckpt.iterdir()):
        try:
            if f.suffix == ".safetensors":
                with safe_open(str(f), "pt") as weights:
                    weights.keys()
            elif f.suffix in (".pt", ".pth", ".bin"):
                with zipfile.ZipFile(f) as z:
                    z.namelist()
        except (SafetensorError, zipfile.BadZipFile, OSError) as e:
            return f"{f.name}: {str(e).splitlines()[0][:120] or type(e).__name__}"
    return None

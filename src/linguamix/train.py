"""Train one run: a base model on one mixture with the paper's recipe, selecting the checkpoint by
mean validation accuracy over the mixture's languages.

    linguamix train --model ID_OR_PATH --task math|api --mixture ID --out RUN_DIR [--config CONFIG]
    accelerate launch --config_file configs/accelerate/fsdp2.yaml -m linguamix train ...   (multi-GPU)

Rerunning the same command resumes from the last checkpoint; a SIGTERM (SLURM preemption) saves one
and exits with EXIT_PREEMPTED so the orchestrator requeues; a finished run is never retrained.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import tasks
from .config import StudyConfig
from .mixtures import Mixture
from .records import Example, RunSpec
from .store import RunDir, write_json

EXIT_PREEMPTED = 75
"""EX_TEMPFAIL: stopped by a signal after saving a checkpoint; run the same command again."""


@dataclass(frozen=True)
class TrainResult:
    model_dir: Path
    best_epoch: int | None
    best_avg_acc: float | None
    preempted: bool = False


def _examples(rows: list[dict[str, Any]]) -> dict[str, list[Example]]:
    out: dict[str, list[Example]] = {}
    for r in rows:
        out.setdefault(r["lang"], []).append(Example(task="", item_id=r["item_id"], lang=r["lang"], prompt=r["prompt"],
                                                     completion=r["completion"], gold=r["gold"]))
    return out


def _latest_checkpoint(folder: Path) -> str | None:
    ckpts = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    return str(max(ckpts, key=lambda p: int(p.name.split("-")[1]))) if ckpts else None


def _precision(cfg: StudyConfig, cuda: bool) -> bool:
    """bf16 autocast over fp32 master weights on GPU (small AdamW updates at lr 1e-5 survive); fp32 on CPU."""
    p = cfg.train.precision
    return cuda and p in ("auto", "bf16")


def _checkpointing_arg(cls, on: bool) -> dict[str, bool]:
    """transformers renamed `gradient_checkpointing` to `activation_checkpointing` (5.x)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": on}


def train(cfg: StudyConfig, spec: RunSpec, rd: RunDir, *, model_path: str, progress: bool = True) -> TrainResult:
    import torch

    from datasets import Dataset
    from trl import SFTConfig

    from . import fastpath
    from .data.build import ensure_mixture, read_split
    from .models import check_special_tokens, load_model, load_tokenizer
    from .store import Store
    from .trainer import (LinguamixTrainer, StepPlan, Validation, install_sigterm_handler, preempted,
                          process_state)

    tc, task_cfg, model_cfg = cfg.train, cfg.task(spec.task), cfg.model(spec.model)
    state = process_state()
    main = state.is_main_process
    if (rd.model_dir / "linguamix_selected.json").exists():
        sel = json.loads((rd.model_dir / "linguamix_selected.json").read_text())
        return TrainResult(rd.model_dir, sel.get("epoch"), sel.get("avg_acc"))
    install_sigterm_handler()

    # 1. data: the mixture's train/validation files (built once, by the main process)
    tok = load_tokenizer(model_path, trust_remote_code=model_cfg.trust_remote_code, revision=model_cfg.revision)
    mixture = Mixture.from_id(spec.mixture)
    with state.main_process_first():
        built = ensure_mixture(cfg, spec.task, mixture, tok, Store(cfg.output_path), progress=progress and main)
    train_rows = read_split(built.train_file)
    val = _examples(read_split(built.validation_file))
    if cfg.eval.validation_limit:
        val = {lang: exs[: cfg.eval.validation_limit] for lang, exs in val.items()}

    # 2. model: fast path = padding-free varlen attention + fused linear cross-entropy
    cuda = torch.cuda.is_available()
    packed = tc.padding_free and tc.fast_path
    attn = model_cfg.attn_implementation or (fastpath.register_attention() if packed else "sdpa")
    if attn == fastpath.ATTN_NAME:
        fastpath.register_attention()
    model = load_model(model_path, dtype=torch.float32, attn_implementation=attn,
                       trust_remote_code=model_cfg.trust_remote_code, revision=model_cfg.revision)
    check_special_tokens(model, tok, model_path)
    kernels = fastpath.apply_kernels(model) if packed else []
    longest = max(len(r["input_ids"]) for r in train_rows)
    budget, grad_ckpt = fastpath.auto_memory_plan(model, state.device, longest,
                                                  gradient_checkpointing=tc.gradient_checkpointing)
    if tc.max_tokens_per_micro_batch:
        budget = tc.max_tokens_per_micro_batch
    if tc.lora is not None:
        from peft import LoraConfig, get_peft_model

        if packed:
            fastpath.patch_fused_forward(model)  # before PEFT wraps the model
        model = get_peft_model(model, LoraConfig(r=tc.lora.r, lora_alpha=tc.lora.alpha, lora_dropout=tc.lora.dropout,
                                                 target_modules=tc.lora.target_modules, task_type="CAUSAL_LM"))

    # 3. the step plan: exactly global_batch_size examples per optimizer step
    examples = [{"input_ids": r["input_ids"], "completion_mask": r["completion_mask"]} for r in train_rows]
    world = state.num_processes
    micro = tc.micro_batch_size or max(1, tc.global_batch_size // world)
    global_batch = min(tc.global_batch_size, len(examples))  # a toy set smaller than one step: one step per epoch
    global_batch -= global_batch % world
    plan = StepPlan([len(e["input_ids"]) for e in examples], [sum(e["completion_mask"][1:]) for e in examples],
                    global_batch=global_batch,
                    world=world, rank=state.process_index, seed=spec.seed, epochs=tc.epochs, packed=packed,
                    token_budget=budget, micro_batch_size=micro)

    # 4. resume: the curve and the best checkpoint so far, truncated to the checkpoint we restart from
    resume = _latest_checkpoint(rd.checkpoints)
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

    validation = Validation(examples=val, score=tasks.get(spec.task).score, max_new_tokens=task_cfg.max_new_tokens,
                            stop=tasks.get(spec.task).STOP, batch_size=cfg.eval.batch_size, on_result=on_result,
                            best_dir=str(rd.checkpoints / "best"), best_avg=best_avg) if tc.select_every_epoch else None
    args = SFTConfig(
        output_dir=str(rd.checkpoints), num_train_epochs=tc.epochs, max_steps=tc.max_steps or -1,
        per_device_train_batch_size=1, gradient_accumulation_steps=plan.k, learning_rate=tc.learning_rate,
        lr_scheduler_type=tc.lr_scheduler, warmup_steps=tc.warmup_ratio, weight_decay=tc.weight_decay,
        optim="adamw_torch_fused" if cuda and tc.optimizer == "adamw_torch" else tc.optimizer,  # same maths, one kernel
        bf16=_precision(cfg, cuda), **_checkpointing_arg(SFTConfig, grad_ckpt),
        logging_steps=tc.logging_steps, logging_first_step=True, save_strategy="no", eval_strategy="no",
        save_total_limit=1, report_to=[], seed=spec.seed, data_seed=spec.seed, remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True}, max_length=None, padding_free=False,
        logging_nan_inf_filter=False, disable_tqdm=not (progress and main), dataloader_num_workers=0,
        use_cpu=not cuda, ddp_find_unused_parameters=False)
    dataset = Dataset.from_dict({"input_ids": [e["input_ids"] for e in examples],
                                 "labels": [[t if m else -100 for t, m in zip(e["input_ids"], e["completion_mask"])]
                                            for e in examples]})
    trainer = LinguamixTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok,
                               examples=examples, plan=plan, packed=packed, validation=validation,
                               save_every_steps=None, log_fn=(lambda row: rd.log("train", row)) if main else None)
    if main:
        rd.write_json("train_plan.json", {
            "examples": len(examples), "examples_per_language": built.manifest["splits"]["train"]["examples_per_language"],
            "global_batch": plan.global_batch, "steps_per_epoch": plan.steps_per_epoch, "epochs": tc.epochs,
            "micro_batches_per_step": plan.k, "token_budget": budget if packed else None,
            "gradient_checkpointing": grad_ckpt, "packed": packed, "attention": attn, "world_size": world,
            "bf16": args.bf16, "kernels": kernels, "optimizer": args.optim, "resumed_from": resume})
    trainer.train(resume_from_checkpoint=resume)

    if preempted():
        return TrainResult(rd.model_dir, None, None, preempted=True)

    # 5. the selected checkpoint becomes the run's model; the training checkpoints go
    state.wait_for_everyone()
    src = rd.checkpoints / "best"
    if validation is None or not src.exists():
        src = rd.checkpoints / "final"
        trainer.save_model(str(src))  # every rank takes part (sharded weights are gathered)
    if main:
        best = max(curve, key=lambda c: (c["avg_acc"], -c["step"])) if curve else None
        tmp = rd.path / "model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        tok.save_pretrained(tmp)
        write_json(tmp / "linguamix_selected.json", {"epoch": best and best["epoch"], "step": best and best["step"],
                                                     "avg_acc": best and best["avg_acc"], "curve": curve})
        shutil.rmtree(rd.model_dir, ignore_errors=True)
        tmp.rename(rd.model_dir)
        shutil.rmtree(rd.checkpoints, ignore_errors=True)
    state.wait_for_everyone()
    best = max(curve, key=lambda c: (c["avg_acc"], -c["step"])) if curve else None
    return TrainResult(rd.model_dir, best and best["epoch"], best and best["avg_acc"])


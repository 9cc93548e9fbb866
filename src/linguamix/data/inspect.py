"""Looking at a task's data before spending GPU hours on it, and counting its tokens.

    linguamix data stats CONFIG [--task T] [--tokenizer PATH]     -> data_stats
    linguamix data show CONFIG --task T --split S --lang L --n N  -> show_examples
    linguamix plan CONFIG --tokenizer PATH                        -> training_tokens (study.compute)

Everything here reads the data the way `data build` does (`build.prepare`, `build.load_test`), so what
is shown and counted is exactly what a model is trained and tested on.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..config import StudyConfig
from ..errors import ConfigError, DataError
from ..records import Example
from ..store import Store
from . import loaders, pools
from .build import render_all, load_test_with_sources, prepare, training_languages
from .tokenize import encode_example

SPLITS = ("train", "validation", "test")


def _apis(examples: list[Example]) -> int | None:
    names = {ex.gold["api_name"] for ex in examples if isinstance(ex.gold, dict) and "api_name" in ex.gold}
    return len(names) if names else None


def _split_row(task: str, split: str, lang: str, examples: list[Example], tok, counted: str,
               en_mean: float | None) -> dict[str, Any]:
    n = [len(encode_example(tok, ex.prompt, ex.completion if counted != "prompt" else "")[0]) for ex in examples]
    a = np.asarray(n if n else [0])
    return {"task": task, "split": split, "lang": lang, "examples": len(examples), "apis": _apis(examples),
            "tokens_of": counted, "tokens_total": int(a.sum()), "tokens_mean": round(float(a.mean()), 1),
            "tokens_p50": float(np.percentile(a, 50)), "tokens_p90": float(np.percentile(a, 90)),
            "tokens_max": int(a.max()), "tokens_vs_en": round(float(a.mean()) / en_mean, 2) if en_mean else None}


def _source_rows(task: str, split: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for s in rows:
        reasons = "; ".join(f"{n} {why}" for why, n in sorted(s["dropped"].items(), key=lambda kv: -kv[1]))
        out.append({"task": task, "split": split, "file": s["file"], "lang": s["lang"], "rows": s["rows"],
                    "taken": s["taken"], "dropped": s["rows"] - s["taken"], "reasons": reasons})
    return out


def data_stats(cfg: StudyConfig, task: str, tok, store: Store, *, progress: bool = False) -> dict[str, list]:
    """{"splits": per split and language, "sources": per file and language, "warnings": [line, ...]}.

    splits: examples, distinct gold APIs (API task) and tokens (train/validation: prompt + completion +
    EOS as trained; test: the prompt); sources: rows read, taken and dropped with the reasons; warnings:
    the loaders' and every count that differs from the task's `expected` counts."""
    tc = cfg.task(task)
    pool = prepare(cfg, task, tok, store, langs=training_languages(cfg), progress=progress)
    splits: list[dict[str, Any]] = []
    for split, ids in (("train", pool.selection.train_ids), ("validation", pool.selection.val_ids)):
        exs = {lang: [e[i] for i in ids] for lang, e in pool.examples.items()}
        en = np.mean([len(encode_example(tok, x.prompt, x.completion)[0]) for x in exs["en"]]) \
            if "en" in exs and exs["en"] else None
        splits += [_split_row(task, split, lang, x, tok, "prompt+completion+eos", en) for lang, x in exs.items()]
    test, test_loaded = load_test_with_sources(cfg, task, cfg.eval.languages)
    en = np.mean([len(encode_example(tok, x.prompt, "")[0]) for x in test["en"]]) if test.get("en") else None
    splits += [_split_row(task, "test", lang, x, tok, "prompt", en) for lang, x in test.items()]
    sources = _source_rows(task, "train", pool.meta["source_rows"]) + \
        _source_rows(task, "test", getattr(test_loaded, "sources", []))
    sources.append(_pool_row(task, pool, tc))
    warnings = list(pool.meta.get("warnings", [])) + list(getattr(test_loaded, "warnings", []))
    first_lang = next(iter(pool.examples))
    pool_examples = list(pool.examples[first_lang].values())
    exp = tc.expected
    checks = [("training pool items per language", exp.train, pool.meta["n_pool"], "train"),
              ("distinct training APIs", exp.train_apis, _apis(pool_examples), "train_apis")]
    first_test = next(iter(test.values()), [])
    checks += [("test items per language", exp.test, len(first_test), "test"),
               ("distinct test APIs", exp.test_apis, _apis(first_test), "test_apis")]
    for what, want, got, field in checks:
        if want is not None and got != want:
            warnings.append(f"{task}: {got} {what}, the config expects {want} (tasks.{task}.expected.{field})")
    return {"splits": splits, "sources": sources, "warnings": warnings}


def _pool_row(task: str, pool, tc) -> dict[str, Any]:
    """The parallel pool as one more source row: what the pool and the length filter took and dropped."""
    sel = pool.selection
    chosen = len(sel.train_ids) + len(sel.val_ids)
    unused = pool.meta["n_pool"] - len(sel.dropped_too_long) - chosen
    reasons = [f"{len(pool.missing)} missing in some language (allow_missing)" if pool.missing else "",
               f"{len(sel.dropped_too_long)} longer than max_length {tc.max_length} in some language"
               if sel.dropped_too_long else "",
               f"{unused} not drawn (train_per_lang {tc.train_per_lang})" if unused > 0 else ""]
    return {"task": task, "split": "train+validation", "file": "(parallel pool)", "lang": ",".join(pool.examples),
            "rows": pool.meta["n_pool"] + len(pool.missing), "taken": chosen,
            "dropped": pool.meta["n_pool"] + len(pool.missing) - chosen, "reasons": "; ".join(r for r in reasons if r)}


def show_examples(cfg: StudyConfig, task: str, split: str, lang: str, n: int, tok, store: Store, *,
                  progress: bool = False) -> list[dict[str, Any]]:
    """The first `n` examples of a split in one language, exactly as the model sees them: train and
    validation in their seeded order (as `data build` selects them), test in file order."""
    if split not in SPLITS:
        raise ConfigError(f"--split must be one of {', '.join(SPLITS)}, got '{split}'")
    if n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}")
    if split == "test":
        if lang not in cfg.eval.languages:
            raise ConfigError(f"language '{lang}' is not evaluated by this study (eval.languages: "
                              f"{', '.join(cfg.eval.languages)})")
        # every evaluated language is loaded, as evaluation does: the parallel checks run here too
        examples = load_test_with_sources(cfg, task, list(cfg.eval.languages))[0][lang][:n]
    else:
        langs = training_languages(cfg)
        if lang not in langs:
            raise ConfigError(f"language '{lang}' is not trained by any mixture of this study (training "
                              f"languages: {', '.join(langs)})")
        pool = prepare(cfg, task, tok, store, langs=langs, progress=progress)
        ids = pool.selection.train_ids if split == "train" else pool.selection.val_ids
        examples = [pool.examples[lang][i] for i in ids[:n]]
    out = []
    for ex in examples:
        row: dict[str, Any] = {"id": ex.item_id, "lang": ex.lang, "split": split, "prompt": ex.prompt,
                               "completion": ex.completion, "gold": ex.gold}
        if tok is not None:
            ids_, mask = encode_example(tok, ex.prompt, ex.completion)
            row.update(prompt_tokens=len(ids_) - sum(mask), completion_tokens=sum(mask))
        out.append(row)
    return out


# -- plan: training tokens without building the mixtures ----------------------------------------------
def training_tokens(cfg: StudyConfig, task: str, tok, store: Store, *,
                    progress: bool = False) -> tuple[dict[str, dict[str, int]], str]:
    """({lang: {"tokens", "examples"}} of the selected training items, how they were obtained).

    A local (or generated) training source is read and counted exactly, the length filter applied,
    nothing written. A source that is not on this machine (a hub id) is estimated from the task's
    `train.sample`: the sample's mean tokens per item and language x the items per language; languages
    the sample lacks are left out. ({}, why) when neither is possible."""
    tc = cfg.task(task)
    langs = training_languages(cfg)
    if tc.train.format in loaders.NEEDS_NO_SOURCE or loaders.local_source(tc.train, task=task, base_dir=cfg.base_dir):
        pool = prepare(cfg, task, tok, store, langs=langs, progress=progress, cache=False)
        ids = pool.selection.train_ids
        return ({lang: {"tokens": sum(len(encode_example(tok, ex[i].prompt, ex[i].completion)[0]) for i in ids),
                        "examples": len(ids)} for lang, ex in pool.examples.items()},
                f"counted: {len(ids)} items x {len(pool.examples)} languages")
    sample = tc.train.sample
    if sample is None:
        return {}, f"{tc.train.source} is not on this machine and tasks.{task}.train has no `sample` to estimate from"
    n_items = tc.train_per_lang or (tc.expected.train - tc.val_per_lang if tc.expected.train else None)
    if n_items is None:
        return {}, f"tasks.{task}: train_per_lang is null and expected.train is not set: no item count to scale to"
    held = [lang for lang in (sample.languages or langs) if lang in langs]
    try:
        loaded = loaders.load(sample, task=task, langs=held, base_dir=cfg.base_dir)
    except DataError as e:
        return {}, f"sample not readable: {e}"
    parallel, _ = pools.check_parallel(render_all(task, loaded), source=f"{task} sample ({sample.source})",
                                       allow_missing=True)
    lengths = {lang: [len(encode_example(tok, ex.prompt, ex.completion)[0]) for ex in exs.values()]
               for lang, exs in parallel.items()}
    keep = [k for k in range(len(next(iter(lengths.values())))) if max(v[k] for v in lengths.values()) <= tc.max_length]
    if not keep:
        return {}, f"every sample item is longer than max_length {tc.max_length}"
    est = {lang: {"tokens": round(float(np.mean([v[k] for k in keep]) * n_items)), "examples": n_items}
           for lang, v in lengths.items()}
    missing = [lang for lang in langs if lang not in est]
    return est, (f"estimate: mean of {len(keep)} sample items ({sample.source}) x {n_items} items"
                 + (f"; no sample in {', '.join(missing)}" if missing else ""))

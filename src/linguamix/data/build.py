"""The mixture builder: (task, mixture, tokenizer) -> train and validation Parquet + a manifest.

    linguamix data build CONFIG [--task T] [--mixture ID]

1. Load the task's training pool in every training language of the study and check it is parallel.
2. Render each item with the task's renderer (the same code evaluation uses) and tokenize it.
3. Select items by a seeded order of item ids: validation first, then training. An item longer than
   `max_length` tokens in ANY language is dropped in ALL languages, so every mixture of the study holds
   the same items in every one of its languages (equal, parallel mixtures).
4. A mixture takes its languages' copies of the selected items. Output is cached by a hash of what
   determines it; building twice gives byte-identical files.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import languages, tasks
from ..config import StudyConfig, TaskConfig
from ..errors import DataError
from ..mixtures import Mixture
from ..records import Example
from ..store import DataDir, Store, config_hash, read_json, read_parquet, write_json, write_parquet
from . import loaders, pools
from .tokenize import encode_example, tokenizer_fingerprint

DATA_VERSION = 1
"""Bump when the rendering or file layout changes: it is part of every cache key."""


def _schema():
    import pyarrow as pa

    return pa.schema([("item_id", pa.string()), ("lang", pa.string()), ("prompt", pa.string()),
                      ("completion", pa.string()), ("gold", pa.string()), ("input_ids", pa.list_(pa.int32())),
                      ("completion_mask", pa.list_(pa.int8())), ("n_tokens", pa.int32())])


def training_languages(cfg: StudyConfig, extra: Mixture | None = None) -> list[str]:
    """Every language any mixture of the study trains on, in table order."""
    used = {c for m in cfg.mixture_list() for c in m.languages} | set(extra.languages if extra else ())
    return [c for c in languages.codes() if c in used]


def _render_all(task: str, loaded: dict[str, list]) -> dict[str, list[Example]]:
    render = tasks.get(task).render
    return {lang: [render(item) for item in items] for lang, items in loaded.items()}


@dataclass
class TaskPool:
    """The rendered, parallel, selected items of one task for one tokenizer."""

    task: str
    data_dir: DataDir
    selection: pools.Selection
    examples: dict[str, dict[str, Example]]
    files: list[dict[str, str]]
    meta: dict[str, Any]


def _key(cfg: StudyConfig, task: str, tok_fp: str, langs: list[str]) -> str:
    tc: TaskConfig = cfg.task(task)
    return config_hash({"v": DATA_VERSION, "task": task, "train": tc.train.model_dump(mode="json"),
                        "n_train": tc.train_per_lang, "n_val": tc.val_per_lang, "max_length": tc.max_length,
                        "tokenizer": tok_fp, "langs": langs, "seed": cfg.data_seed})


def data_dir(cfg: StudyConfig, task: str, tok, store: Store, langs: list[str]) -> DataDir:
    return DataDir(store.data_dir(task, _key(cfg, task, tokenizer_fingerprint(tok), langs)))


def prepare(cfg: StudyConfig, task: str, tok, store: Store, *, langs: list[str], progress: bool = False) -> TaskPool:
    """Load, render and select a task's training pool (the selection is cached)."""
    tc = cfg.task(task)
    ddir = data_dir(cfg, task, tok, store, langs)
    loaded = loaders.load(tc.train, task=task, langs=langs, base_dir=cfg.base_dir)
    allow_missing = bool(tc.train.options.get("allow_missing", False))
    parallel, missing = pools.check_parallel(_render_all(task, loaded), source=f"{task} training data",
                                             allow_missing=allow_missing)
    first = next(iter(parallel.values()))
    if ddir.selection_file.exists():
        doc = read_json(ddir.selection_file)
        selection = pools.Selection(tuple(doc["train_ids"]), tuple(doc["val_ids"]),
                                    tuple(doc["dropped_too_long"]), doc.get("longest", {}))
    else:
        bar = _bar(progress, total=len(first), desc=f"{task}: length filter")

        def lengths(ids: list[str]) -> dict[str, dict[str, int]]:
            out = {lang: {i: len(encode_example(tok, exs[i].prompt, exs[i].completion)[0]) for i in ids}
                   for lang, exs in parallel.items()}
            if bar is not None:
                bar.update(len(ids))
            return out

        selection = pools.select(list(first), n_train=tc.train_per_lang, n_val=tc.val_per_lang,
                                 seed=cfg.data_seed, lengths=lengths, max_length=tc.max_length,
                                 source=f"{task} training pool ({len(first)} items)")
        if bar is not None:
            bar.close()
        write_json(ddir.selection_file, {
            "task": task, "languages": langs, "tokenizer": tokenizer_fingerprint(tok), "seed": cfg.data_seed,
            "max_length": tc.max_length, "n_pool": len(first), "missing_in_some_language": missing,
            "dropped_too_long": list(selection.dropped_too_long), "longest": selection.longest,
            "val_ids": list(selection.val_ids), "train_ids": list(selection.train_ids)})
    meta = {"key": ddir.path.name, "tokenizer": tokenizer_fingerprint(tok), "languages": langs,
            "missing_in_some_language": len(missing)}
    return TaskPool(task, ddir, selection, parallel, getattr(loaded, "files", []), meta)  # a plugin may return a dict


def _rows(tok, examples: dict[str, Example], ids: tuple[str, ...], lang: str) -> list[dict[str, Any]]:
    rows = []
    for i in ids:
        ex = examples[i]
        input_ids, mask = encode_example(tok, ex.prompt, ex.completion)
        rows.append({"item_id": i, "lang": lang, "prompt": ex.prompt, "completion": ex.completion,
                     "gold": json.dumps(ex.gold, ensure_ascii=False, sort_keys=True), "input_ids": input_ids,
                     "completion_mask": mask, "n_tokens": len(input_ids)})
    return rows


def _token_stats(rows: list[dict[str, Any]]) -> dict[str, float]:
    n = np.array([r["n_tokens"] for r in rows]) if rows else np.zeros(1)
    return {"total": int(n.sum()), "mean": round(float(n.mean()), 2), "p50": float(np.percentile(n, 50)),
            "p90": float(np.percentile(n, 90)), "max": int(n.max())}


@dataclass(frozen=True)
class BuiltMixture:
    mixture: str
    train_file: Path
    validation_file: Path
    manifest: dict[str, Any]


def build_mixture(pool: TaskPool, mixture: Mixture, tok) -> BuiltMixture:
    """Write the mixture's train/validation Parquet files and manifest (reused when present)."""
    d = pool.data_dir
    if not d.has_mixture(mixture.id):
        missing = [lang for lang in mixture.languages if lang not in pool.examples]
        if missing:
            raise DataError(f"mixture {mixture.id}: language(s) {missing} are not in the {pool.task} pool")
        manifest: dict[str, Any] = {"task": pool.task, "mixture": mixture.id, "languages": list(mixture.languages),
                                    "data_version": DATA_VERSION, **pool.meta, "sources": pool.files,
                                    "dropped_too_long": len(pool.selection.dropped_too_long), "splits": {}}
        for split, ids in (("train", pool.selection.train_ids), ("validation", pool.selection.val_ids)):
            rows = [r for lang in mixture.languages for r in _rows(tok, pool.examples[lang], ids, lang)]
            write_parquet(d.split_file(mixture.id, split), rows, _schema())
            manifest["splits"][split] = {
                "examples_per_language": len(ids), "examples": len(rows), "item_ids_sha256": pools.ids_digest(ids),
                "tokens": {lang: _token_stats([r for r in rows if r["lang"] == lang]) for lang in mixture.languages}}
        write_json(d.manifest_file(mixture.id), manifest)
    return BuiltMixture(mixture.id, d.split_file(mixture.id, "train"), d.split_file(mixture.id, "validation"),
                        read_json(d.manifest_file(mixture.id)))


def ensure_mixture(cfg: StudyConfig, task: str, mixture: Mixture, tok, store: Store, *,
                   pool: TaskPool | None = None, progress: bool = False) -> BuiltMixture:
    """The mixture's data, from the cache when it was built before (no source is read then)."""
    langs = training_languages(cfg, mixture)
    d = data_dir(cfg, task, tok, store, langs)
    if d.has_mixture(mixture.id):
        return BuiltMixture(mixture.id, d.split_file(mixture.id, "train"), d.split_file(mixture.id, "validation"),
                            read_json(d.manifest_file(mixture.id)))
    pool = pool or prepare(cfg, task, tok, store, langs=langs, progress=progress)
    return build_mixture(pool, mixture, tok)


def read_split(path: Path) -> list[dict[str, Any]]:
    rows = read_parquet(path).to_pylist()
    for r in rows:
        r["gold"] = json.loads(r["gold"])
    return rows


def load_test(cfg: StudyConfig, task: str, langs: list[str]) -> dict[str, list[Example]]:
    """The task's test set, rendered, parallel across the requested languages."""
    loaded = loaders.load(cfg.task(task).test, task=task, langs=langs, base_dir=cfg.base_dir)
    parallel, _ = pools.check_parallel(_render_all(task, loaded), source=f"{task} test data")
    return {lang: list(exs.values()) for lang, exs in parallel.items()}


def _bar(enabled: bool, total: int | None, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="item", leave=False)


def build_all(cfg: StudyConfig, task: str, tok, store: Store, mixtures: list[Mixture], *,
              progress: bool = False) -> list[BuiltMixture]:
    """Build (or reuse) every requested mixture; the pool is loaded once, and only if something is missing."""
    extra = [m for m in mixtures if not set(m.languages) <= set(training_languages(cfg))]
    langs = training_languages(cfg, extra[0]) if len(extra) == 1 else training_languages(cfg)
    if len(extra) > 1:
        langs = [c for c in languages.codes() if c in set(langs).union(*(m.languages for m in extra))]
    d = data_dir(cfg, task, tok, store, langs)
    pool = None
    out = []
    it = mixtures
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(mixtures, desc=f"{task}: mixtures", unit="mixture")
    for m in it:
        if not d.has_mixture(m.id) and pool is None:
            pool = prepare(cfg, task, tok, store, langs=langs, progress=progress)
        out.append(build_mixture(pool, m, tok) if pool is not None else
                   BuiltMixture(m.id, d.split_file(m.id, "train"), d.split_file(m.id, "validation"),
                                read_json(d.manifest_file(m.id))))
    return out


def _stats(rows: list[tuple[str, str, str, int]], task: str, split: str) -> list[dict[str, Any]]:
    """rows of (lang, item_id, text, n_tokens) -> per-language statistics, fertility relative to English."""
    by_lang: dict[str, list[tuple[int, int]]] = {}
    for lang, _, text, n in rows:
        by_lang.setdefault(lang, []).append((len(text), n))
    base = by_lang.get("en")
    out = []
    for lang, vals in by_lang.items():
        chars = np.array([c for c, _ in vals])
        toks = np.array([t for _, t in vals])
        out.append({"task": task, "split": split, "lang": lang, "n": len(vals),
                    "chars_mean": round(float(chars.mean()), 1), "tokens_mean": round(float(toks.mean()), 1),
                    "tokens_p50": float(np.percentile(toks, 50)), "tokens_p90": float(np.percentile(toks, 90)),
                    "tokens_max": int(toks.max()), "tokens_per_char": round(float(toks.sum() / max(chars.sum(), 1)), 3),
                    "tokens_vs_en": round(float(toks.mean() / np.mean([t for _, t in base])), 2) if base else None})
    return out


def data_stats(cfg: StudyConfig, task: str, tok, store: Store, *, progress: bool = False) -> list[dict[str, Any]]:
    """Per-language counts and token statistics of the selected train/validation items and the test set."""
    langs = training_languages(cfg)
    pool = prepare(cfg, task, tok, store, langs=langs, progress=progress)
    out = []
    for split, ids in (("train", pool.selection.train_ids), ("validation", pool.selection.val_ids)):
        rows = [(lang, i, ex.prompt + ex.completion, len(encode_example(tok, ex.prompt, ex.completion)[0]))
                for lang, exs in pool.examples.items() for i in ids for ex in (exs[i],)]
        out += _stats(rows, task, split)
    test = load_test(cfg, task, cfg.eval.languages)
    rows = [(lang, ex.item_id, ex.prompt, len(encode_example(tok, ex.prompt, "")[0]))
            for lang, exs in test.items() for ex in exs]
    out += _stats(rows, task, "test (prompt)")
    return out

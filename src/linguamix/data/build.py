"""The mixture builder: (task, mixture, tokenizer) -> train and validation Parquet + a manifest.

    linguamix data build CONFIG [--task T] [--mixture ID]

1. Load the task's training pool in every training language of the study and check it is parallel.
2. Render each item with the task's renderer (the same code evaluation uses) and tokenize it.
3. Select items by a seeded order of item ids: validation first, then training. An item longer than
   `max_length` tokens in ANY language is dropped in ALL languages, so every mixture of the study holds
   the same items in every one of its languages (equal, parallel mixtures).
4. A mixture takes its languages' copies of the selected items. Output is cached by a hash of what
   determines it, the sha256 of every source file included (an edited source rebuilds, and the new
   manifest's `rebuilt` says which files changed); building twice gives byte-identical files.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import languages, tasks
from ..config import StudyConfig, TaskConfig
from ..errors import DataError, StorageError
from ..mixtures import Mixture
from ..records import Example
from ..store import DataDir, Store, atomic_dir, config_hash, read_json, read_parquet, write_json, write_parquet
from . import loaders, pools
from .tokenize import encode_example, tokenizer_fingerprint

DATA_VERSION = 2
"""Bump when the rendering or file layout changes: it is part of every cache key (2: API-Bank training rows in
the level-1 form, mCoT-MATH from its lang-id file, source checksums in the key)."""


def _schema():
    import pyarrow as pa

    return pa.schema([("item_id", pa.string()), ("lang", pa.string()), ("prompt", pa.string()),
                      ("completion", pa.string()), ("gold", pa.string()), ("input_ids", pa.list_(pa.int32())),
                      ("completion_mask", pa.list_(pa.int8())), ("n_tokens", pa.int32())])


def training_languages(cfg: StudyConfig, extra: Mixture | None = None) -> list[str]:
    """Every language any mixture of the study trains on, in table order."""
    used = {c for m in cfg.mixture_list() for c in m.languages} | set(extra.languages if extra else ())
    return [c for c in languages.codes() if c in used]


def render_all(task: str, loaded: dict[str, list]) -> dict[str, list[Example]]:
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
    settings: dict[str, Any] = field(default_factory=dict)
    checksums: list[dict[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Ids dropped because some language lacks them (`allow_missing`)."""


def _settings(cfg: StudyConfig, task: str, tok_fp: str, langs: list[str]) -> dict[str, Any]:
    tc: TaskConfig = cfg.task(task)
    return {"v": DATA_VERSION, "task": task, "train": tc.train.model_dump(mode="json", exclude={"sample"}),
            "n_train": tc.train_per_lang, "n_val": tc.val_per_lang, "max_length": tc.max_length,
            "tokenizer": tok_fp, "langs": langs, "seed": cfg.data_seed}


def source_checksums(cfg: StudyConfig, task: str, store: Store) -> list[dict[str, str]]:
    """sha256 of every file of the task's local training source (none for a hub id or generated data)."""
    src = loaders.local_source(cfg.task(task).train, task=task, base_dir=cfg.base_dir)
    return loaders.source_checksums(src, store.checksum_memo())


def _key(settings: dict[str, Any], checksums: list[dict[str, str]]) -> str:
    # content-addressed: an edited source file gives a new key, so nothing built from the old one is reused
    return config_hash({**settings, "sources": checksums} if checksums else settings)


def data_dir(cfg: StudyConfig, task: str, tok, store: Store, langs: list[str]) -> DataDir:
    settings = _settings(cfg, task, tokenizer_fingerprint(tok), langs)
    return DataDir(store.data_dir(task, _key(settings, source_checksums(cfg, task, store))))


def _rebuild_reason(store: Store, task: str, settings: dict[str, Any], key: str,
                    checksums: list[dict[str, str]]) -> dict[str, Any] | None:
    """Why this key is new although the same settings were built before: which source files changed."""
    index_file = store.data_index(task)
    index = read_json(index_file) if index_file.exists() else {}
    sid = config_hash(settings)
    before = index.get(sid)
    if not before or before.get("key") == key:
        return None
    old = {f["path"]: f["sha256"] for f in before.get("sources", [])}
    new = {f["path"]: f["sha256"] for f in checksums}
    changed = sorted(p for p in new if p in old and old[p] != new[p])
    added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
    parts = [f"{label}: {', '.join(names[:5])}{f' (+{len(names) - 5} more)' if len(names) > 5 else ''}"
             for label, names in (("changed", changed), ("added", added), ("removed", removed)) if names]
    return {"previous_key": before.get("key"), "because": "source files " + "; ".join(parts) if parts else
            "source files differ"}


def _remember(store: Store, task: str, settings: dict[str, Any], key: str, checksums: list[dict[str, str]]) -> None:
    index_file = store.data_index(task)
    index = read_json(index_file) if index_file.exists() else {}
    index[config_hash(settings)] = {"key": key, "sources": checksums}
    write_json(index_file, index)


def prepare(cfg: StudyConfig, task: str, tok, store: Store, *, langs: list[str], progress: bool = False,
            cache: bool = True) -> TaskPool:
    """Load, render and select a task's training pool (the selection is cached unless `cache` is False)."""
    tc = cfg.task(task)
    fp = tokenizer_fingerprint(tok)
    settings = _settings(cfg, task, fp, langs)
    checksums = source_checksums(cfg, task, store)
    ddir = DataDir(store.data_dir(task, _key(settings, checksums)))
    loaded = loaders.load(tc.train, task=task, langs=langs, base_dir=cfg.base_dir)
    allow_missing = bool(tc.train.options.get("allow_missing", False))
    label = f"{task} training data ({tc.train.source})"
    parallel, missing = pools.check_parallel(render_all(task, loaded), source=label, allow_missing=allow_missing,
                                             positional=loaded.positional, check_golds=loaded.check_golds,
                                             where=loaded.where)
    first = next(iter(parallel.values()))
    if cache and ddir.selection_file.exists():
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
                                 source=label)
        if bar is not None:
            bar.close()
        if cache:
            write_json(ddir.selection_file, {
                "task": task, "languages": langs, "tokenizer": fp, "seed": cfg.data_seed,
                "max_length": tc.max_length, "n_pool": len(first), "missing_in_some_language": missing,
                "dropped_too_long": list(selection.dropped_too_long), "longest": selection.longest,
                "val_ids": list(selection.val_ids), "train_ids": list(selection.train_ids)})
    meta = {"key": ddir.path.name, "tokenizer": fp, "languages": langs, "n_pool": len(first),
            "missing_in_some_language": len(missing), "source_rows": loaded.sources, "warnings": loaded.warnings}
    return TaskPool(task, ddir, selection, parallel, loaded.files, meta, settings, checksums, missing)


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


def build_mixture(pool: TaskPool, mixture: Mixture, tok, store: Store | None = None) -> BuiltMixture:
    """Write the mixture's train/validation Parquet files and manifest (reused when present).

    The mixture's folder is written whole or not at all (`store.atomic_dir`): a crash or a full disk
    leaves the previous complete mixture or none."""
    d = pool.data_dir
    if not d.has_mixture(mixture.id):
        missing = [lang for lang in mixture.languages if lang not in pool.examples]
        if missing:
            raise DataError(f"mixture {mixture.id}: language(s) {missing} are not in the {pool.task} pool")
        manifest: dict[str, Any] = {"task": pool.task, "mixture": mixture.id, "languages": list(mixture.languages),
                                    "data_version": DATA_VERSION, **pool.meta, "sources": pool.files,
                                    "source_checksums": pool.checksums,
                                    "dropped_too_long": len(pool.selection.dropped_too_long), "splits": {}}
        if store is not None and pool.settings:
            manifest["rebuilt"] = _rebuild_reason(store, pool.task, pool.settings, d.path.name, pool.checksums)
        final = d.mixture_dir(mixture.id)
        try:
            with atomic_dir(final) as tmp:
                for split, ids in (("train", pool.selection.train_ids), ("validation", pool.selection.val_ids)):
                    rows = [r for lang in mixture.languages for r in _rows(tok, pool.examples[lang], ids, lang)]
                    write_parquet(tmp / d.split_file(mixture.id, split).name, rows, _schema())
                    manifest["splits"][split] = {
                        "examples_per_language": len(ids), "examples": len(rows),
                        "item_ids_sha256": pools.ids_digest(ids),
                        "tokens": {lang: _token_stats([r for r in rows if r["lang"] == lang])
                                   for lang in mixture.languages}}
                write_json(tmp / d.manifest_file(mixture.id).name, manifest)
        except (OSError, StorageError) as e:
            why = e.strerror if isinstance(e, OSError) else str(e).rsplit("(", 1)[-1].rstrip(")")
            raise StorageError(f"{final}: cannot write the mixture ({why or e}); nothing of it was kept") from None
        if store is not None and pool.settings:
            _remember(store, pool.task, pool.settings, d.path.name, pool.checksums)
    return BuiltMixture(mixture.id, d.split_file(mixture.id, "train"), d.split_file(mixture.id, "validation"),
                        read_json(d.manifest_file(mixture.id)))


def ensure_mixture(cfg: StudyConfig, task: str, mixture: Mixture, tok, store: Store, *,
                   pool: TaskPool | None = None, progress: bool = False) -> BuiltMixture:
    """The mixture's data, from the cache when it was built from the same source files (their checksums,
    remembered by size and mtime, are the only thing read then)."""
    langs = training_languages(cfg, mixture)
    d = data_dir(cfg, task, tok, store, langs)
    if d.has_mixture(mixture.id):
        return BuiltMixture(mixture.id, d.split_file(mixture.id, "train"), d.split_file(mixture.id, "validation"),
                            read_json(d.manifest_file(mixture.id)))
    pool = pool or prepare(cfg, task, tok, store, langs=langs, progress=progress)
    return build_mixture(pool, mixture, tok, store)


def read_split(path: Path) -> list[dict[str, Any]]:
    rows = read_parquet(path).to_pylist()
    for r in rows:
        r["gold"] = json.loads(r["gold"])
    return rows


def load_test(cfg: StudyConfig, task: str, langs: list[str]) -> dict[str, list[Example]]:
    """The task's test set, rendered, parallel across the requested languages."""
    return load_test_with_sources(cfg, task, langs)[0]


def load_test_with_sources(cfg: StudyConfig, task: str, langs: list[str]) -> tuple[dict[str, list[Example]], Any]:
    """`load_test` and the loader's record of what it read (`loaders.Loaded`: files, rows taken)."""
    tc = cfg.task(task)
    loaded = loaders.load(tc.test, task=task, langs=langs, base_dir=cfg.base_dir)
    parallel, _ = pools.check_parallel(render_all(task, loaded), source=f"{task} test data ({tc.test.source})",
                                       positional=loaded.positional, check_golds=loaded.check_golds,
                                       where=loaded.where)
    return {lang: list(exs.values()) for lang, exs in parallel.items()}, loaded


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
        out.append(build_mixture(pool, m, tok, store) if pool is not None else
                   BuiltMixture(m.id, d.split_file(m.id, "train"), d.split_file(m.id, "validation"),
                                read_json(d.manifest_file(m.id))))
    return out

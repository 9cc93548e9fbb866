"""Parallel pools: the same item ids in every language, sampled and split by id, length-filtered
across languages so that every mixture stays equal and parallel."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from ..errors import DataError


def check_parallel(items: dict[str, list], *, source: str, allow_missing: bool = False) -> tuple[dict[str, dict], list[str]]:
    """{lang: [item]} -> ({lang: {id: item}} with one shared id order, ids dropped).

    Languages must hold the same ids. With `allow_missing` (translated sets whose rejects were left out)
    an id missing in any language is dropped from all of them instead, and reported.
    """
    by_lang: dict[str, dict] = {}
    for lang, rows in items.items():
        seen: dict = {}
        for item in rows:
            if item.item_id in seen:
                raise DataError(f"{source}: item id '{item.item_id}' appears twice in language '{lang}'")
            seen[item.item_id] = item
        by_lang[lang] = seen
    if not by_lang:
        raise DataError(f"{source}: no languages loaded")
    langs = list(by_lang)
    common = set.intersection(*(set(v) for v in by_lang.values()))
    dropped = sorted(set().union(*(set(v) for v in by_lang.values())) - common)
    if dropped and not allow_missing:
        examples = []
        for item_id in dropped[:5]:
            missing = [lang for lang in langs if item_id not in by_lang[lang]]
            examples.append(f"'{item_id}' missing in {','.join(missing)}")
        counts = ", ".join(f"{lang}={len(by_lang[lang])}" for lang in langs)
        raise DataError(f"{source}: pools are not parallel ({counts}); first mismatches: {'; '.join(examples)}"
                        f"{f' (+{len(dropped) - 5} more)' if len(dropped) > 5 else ''}")
    order = [i for i in by_lang[langs[0]] if i in common]
    return {lang: {i: by_lang[lang][i] for i in order} for lang in langs}, dropped


def shuffle_key(seed: int, item_id: str) -> str:
    """A per-item sort key: a seeded order that does not change when items are added or removed."""
    return hashlib.sha256(f"{seed}\x00{item_id}".encode()).hexdigest()


@dataclass(frozen=True)
class Selection:
    """Which items train and validate, the same for every language and every mixture of the study."""

    train_ids: tuple[str, ...]
    val_ids: tuple[str, ...]
    dropped_too_long: tuple[str, ...] = ()
    longest: dict[str, int] = field(default_factory=dict, compare=False)
    """Longest kept example (tokens) per language."""


def select(ids: Sequence[str], *, n_train: int | None, n_val: int, seed: int,
           lengths: Callable[[list[str]], dict[str, dict[str, int]]] | None = None,
           max_length: int | None = None, chunk: int = 512, source: str = "pool") -> Selection:
    """Seeded split by item id: validation first, then training; over-long items dropped everywhere.

    `lengths(ids) -> {lang: {id: n_tokens}}` is asked in chunks, in the seeded order, so a huge pool
    (mCoT-MATH has ~580k items per language) is only tokenized as far as needed.
    """
    order = sorted(ids, key=lambda i: shuffle_key(seed, i))
    wanted = n_val + (n_train if n_train is not None else len(order))
    kept: list[str] = []
    too_long: list[str] = []
    longest: dict[str, int] = {}
    for start in range(0, len(order), chunk):
        if len(kept) >= wanted:
            break
        batch = order[start:start + chunk]
        if lengths is None or max_length is None:
            kept.extend(batch)
            continue
        per_lang = lengths(batch)
        for item_id in batch:
            worst = max(per_lang[lang][item_id] for lang in per_lang)
            if worst > max_length:
                too_long.append(item_id)  # dropped in every language at once: mixtures stay parallel
                continue
            kept.append(item_id)
            for lang in per_lang:
                longest[lang] = max(longest.get(lang, 0), per_lang[lang][item_id])
    kept = kept[:wanted]
    if len(kept) < n_val + 1:
        raise DataError(f"{source}: only {len(kept)} item(s) left after the length filter "
                        f"(max_length={max_length}, dropped {len(too_long)}); need at least {n_val + 1}")
    if n_train is not None and len(kept) < wanted:
        raise DataError(f"{source}: {len(kept)} items available after the length filter, need "
                        f"{n_val} validation + {n_train} training")
    return Selection(train_ids=tuple(kept[n_val:]), val_ids=tuple(kept[:n_val]),
                     dropped_too_long=tuple(too_long), longest=longest)


def ids_digest(ids: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]

"""Parallel pools: the same item ids in every language, sampled and split by id, length-filtered
across languages so that every mixture stays equal and parallel."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from ..errors import DataError


def check_parallel(items: dict[str, list], *, source: str, allow_missing: bool = False, positional: bool = False,
                   check_golds: bool = False, where: dict[str, str] | None = None) -> tuple[dict[str, dict], list[str]]:
    """{lang: [item]} -> ({lang: {id: item}} with one shared id order, ids dropped).

    Languages must hold the same ids. With `allow_missing` (translated sets whose rejects were left out)
    an id missing in any language is dropped from all of them instead, and reported.
    `positional`: the ids are only positions in the files (MGSM, MSVAMP have no ids), so an item's gold
    must also agree in every language, and a language with more or fewer items fails (its ids are
    shifted: nothing can be dropped); the message names the first item that has no counterpart.
    `check_golds`: ids are identities, and an item's gold must agree in every language it is in.
    """
    where = where or {}
    by_lang: dict[str, dict] = {}
    for lang, rows in items.items():
        seen: dict = {}
        for item in rows:
            if item.item_id in seen:
                raise DataError(f"{_at(source, where, lang)}: item id '{item.item_id}' appears twice in language "
                                f"'{lang}'")
            seen[item.item_id] = item
        if not seen:
            raise DataError(f"{_at(source, where, lang)}: no items in language '{lang}'")
        by_lang[lang] = seen
    if not by_lang:
        raise DataError(f"{source}: no languages loaded")
    langs = list(by_lang)
    if positional:
        _check_positional(by_lang, source, where)
    common = set.intersection(*(set(v) for v in by_lang.values()))
    dropped = sorted(set().union(*(set(v) for v in by_lang.values())) - common)
    if dropped and not allow_missing:
        examples = []
        for item_id in dropped[:5]:
            missing = [lang for lang in langs if item_id not in by_lang[lang]]
            examples.append(f"'{item_id}' missing in {','.join(missing)}")
        counts = ", ".join(f"{lang}={len(by_lang[lang])}" for lang in langs)
        raise DataError(f"{source}: pools are not parallel ({counts}); first mismatches: {'; '.join(examples)}"
                        f"{f' (+{len(dropped) - 5} more)' if len(dropped) > 5 else ''} (options.allow_missing: "
                        f"true drops such items in every language)")
    order = [i for i in by_lang[langs[0]] if i in common]
    if check_golds:
        bad = [(i, lang) for i in order for lang in langs[1:]
               if gold_identity(by_lang[lang][i]) != gold_identity(by_lang[langs[0]][i])]
        if bad:
            shown = "; ".join(f"'{i}': {langs[0]}={_show(gold_identity(by_lang[langs[0]][i]))}, "
                              f"{lang}={_show(gold_identity(by_lang[lang][i]))}" for i, lang in bad[:3])
            raise DataError(f"{_at(source, where, bad[0][1])}: the gold of {len(bad)} item(s) differs between "
                            f"languages, first {shown} ({source})")
    return {lang: {i: by_lang[lang][i] for i in order} for lang in langs}, dropped


def _at(source: str, where: dict[str, str], lang: str) -> str:
    return where.get(lang) or source


def gold_identity(item) -> Any:
    """What must be equal in every language's copy of one item: the final number (math), the API name
    and argument names (API calls: values may be translated)."""
    gold = getattr(item, "gold", None)
    if gold is None:
        gold = getattr(item, "answer", None)
        if gold is None and hasattr(item, "api_name"):
            gold = {"api_name": item.api_name, "arguments": item.arguments}
    if isinstance(gold, dict) and "api_name" in gold:
        return gold["api_name"], tuple(sorted(gold.get("arguments") or {}))
    return gold


def _check_positional(by_lang: dict[str, dict], source: str, where: dict[str, str]) -> None:
    """Items aligned by position: same count and the same gold at every position in every language."""
    ref = next(iter(by_lang))
    ref_ids = list(by_lang[ref])
    ref_golds = [gold_identity(x) for x in by_lang[ref].values()]
    for lang, rows in by_lang.items():
        ids, golds = list(rows), [gold_identity(x) for x in rows.values()]
        if ids == ref_ids and golds == ref_golds:
            continue
        at, other = _at(source, where, lang), _at(source, where, ref)
        if len(ids) != len(ref_ids) or ids != ref_ids:
            raise DataError(f"{at}: {len(ids)} items in {lang}, {len(ref_ids)} in {ref} ({other}); items are paired "
                            f"by position ({source}): {_first_gap(ref, ref_ids, ref_golds, lang, ids, golds)}")
        bad = [(i, a, b) for i, a, b in zip(ids, ref_golds, golds) if a != b]
        shown = "; ".join(f"'{i}': {ref}={_show(a)}, {lang}={_show(b)}" for i, a, b in bad[:3])
        raise DataError(f"{at}: golds disagree between {ref} and {lang} at {len(bad)} of {len(ids)} items, first "
                        f"{shown}: its rows are in another order than {other}'s or are not the same problems "
                        f"(items are paired by position; {source})")


def _first_gap(ref: str, ref_ids: list, ref_golds: list, lang: str, ids: list, golds: list) -> str:
    """Where two positional sequences part: the gold sequences aligned (difflib), first difference named."""
    import difflib

    ops = difflib.SequenceMatcher(None, ref_golds, golds, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in ops:
        if tag == "delete":
            return (f"{ref} item '{ref_ids[i1]}' (gold {_show(ref_golds[i1])}){f' and {i2 - i1 - 1} after it' if i2 - i1 > 1 else ''} "
                    f"has no counterpart in {lang} (deleted there? the golds agree before it and, shifted, after it)")
        if tag == "insert":
            return (f"{lang} item '{ids[j1]}' (gold {_show(golds[j1])}){f' and {j2 - j1 - 1} after it' if j2 - j1 > 1 else ''} "
                    f"has no counterpart in {ref} (added there?)")
        if tag == "replace":
            return (f"golds part at {ref} '{ref_ids[i1]}' ({_show(ref_golds[i1])}) vs {lang} '{ids[j1]}' "
                    f"({_show(golds[j1])})")
    return "the ids differ"


def _show(gold: Any) -> str:
    if isinstance(gold, float) and gold.is_integer():
        return str(int(gold))
    return str(gold)


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
        raise DataError(f"{source}: only {len(kept)} of its {len(order)} item(s) left after the length filter "
                        f"(max_length={max_length}, dropped {len(too_long)}); need at least {n_val + 1}")
    if n_train is not None and len(kept) < wanted:
        raise DataError(f"{source}: {len(kept)} of its {len(order)} items available after the length filter "
                        f"({len(too_long)} longer than max_length), need {n_val} validation + {n_train} training")
    return Selection(train_ids=tuple(kept[n_val:]), val_ids=tuple(kept[:n_val]),
                     dropped_too_long=tuple(too_long), longest=longest)


def ids_digest(ids: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]

"""MGSM (Shi et al. 2022): `mgsm_<lang>.tsv` (question TAB answer, no header) or hub `juletxara/mgsm`.

MGSM has no item ids: problem n of every language is the same problem. The id `mgsm-NNN` is its
position (blank lines skipped), so the loaded pool is marked positional and the parallel check also requires the
golds to agree across languages (a sorted, shuffled or shortened file fails, naming the items).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import DataError
from ...records import MathItem
from .common import Loaded, check_options, file_record, finite_number, hub_dataset, read_text


def load_mgsm(src: Path | str, langs: list[str], options: dict[str, Any]) -> Loaded:
    check_options("mgsm", options, {"allow_missing"})
    items: dict[str, list[MathItem]] = {}
    files = []
    if isinstance(src, str):
        for lang in langs:
            ds = hub_dataset(src, name=lang, split="test", hint="a folder with mgsm_<lang>.tsv files")
            where = f"hf://{src} ({lang})"
            items[lang] = [MathItem(f"mgsm-{i:03d}", lang, r["question"],
                                    finite_number(r["answer_number"], f"{where}: row {i}", "answer_number"))
                           for i, r in enumerate(ds, 1)]
        return Loaded(items, [{"path": f"hf://{src}", "sha256": ""}], positional=True,
                      where={lang: f"hf://{src} ({lang})" for lang in langs})
    where = {}
    for lang in langs:
        path = src / f"mgsm_{lang}.tsv" if src.is_dir() else src
        if not path.exists():
            raise DataError(f"{path}: MGSM file for language '{lang}' is missing")
        rows = []
        for n, line in enumerate(read_text(path).split("\n"), 1):
            line = line.removesuffix("\r")
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise DataError(f"{path}: line {n}: expected 'question<TAB>answer', got {len(parts)} field(s)")
            question, answer = parts
            if not question.strip():
                raise DataError(f"{path}: line {n}: field 'question' is empty")
            rows.append(MathItem(f"mgsm-{len(rows) + 1:03d}", lang, question,
                                 finite_number(answer, f"{path}: line {n}", "answer")))
        if not rows:
            raise DataError(f"{path}: no problems (an empty file)")
        items[lang] = rows
        where[lang] = str(path)
        files.append(file_record(path))
    return Loaded(items, files, positional=True, where=where)

"""MGSM (Shi et al. 2022): `mgsm_<lang>.tsv` (question TAB answer, no header) or hub `juletxara/mgsm`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import DataError
from ...records import MathItem
from .common import Loaded, check_options, file_record, hub_dataset


def load_mgsm(src: Path | str, langs: list[str], options: dict[str, Any]) -> Loaded:
    check_options("mgsm", options, {"allow_missing"})
    items: dict[str, list[MathItem]] = {}
    files = []
    if isinstance(src, str):
        for lang in langs:
            ds = hub_dataset(src, name=lang, split="test", hint="a folder with mgsm_<lang>.tsv files")
            items[lang] = [MathItem(f"mgsm-{i:03d}", lang, r["question"], float(r["answer_number"]))
                           for i, r in enumerate(ds, 1)]
        return Loaded(items, [{"path": f"hf://{src}", "sha256": ""}])
    for lang in langs:
        path = src / f"mgsm_{lang}.tsv" if src.is_dir() else src
        if not path.exists():
            raise DataError(f"{path}: MGSM file for language '{lang}' is missing")
        rows = []
        with open(path, encoding="utf-8", newline="") as f:
            for n, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if not line:
                    continue
                parts = line.split("\t")
                if len(parts) != 2:
                    raise DataError(f"{path}: line {n}: expected 'question<TAB>answer', got {len(parts)} field(s)")
                question, answer = parts
                try:
                    value = float(answer.replace(",", ""))
                except ValueError:
                    raise DataError(f"{path}: line {n}: answer {answer!r} is not a number") from None
                rows.append(MathItem(f"mgsm-{n:03d}", lang, question, value))
        items[lang] = rows
        files.append(file_record(path))
    return Loaded(items, files)

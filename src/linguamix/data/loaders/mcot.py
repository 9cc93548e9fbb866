"""mCoT (Lai & Nissim 2024): mCoT-MATH training records, and the repository's parallel MSVAMP files.

- `mcot`: records `{question, answer (CoT), lang, id | lang-id}` in JSONL/JSON/Parquet files, or the hub
  dataset `laihuiyuan/mCoT-MATH`. The final number is extracted from the CoT (the math task's extractor).
- `msvamp`: `test_<lang>.json` (question, equation, answer); the solution is the equation worked out step
  by step, ending with the language's answer sentence.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ... import languages
from ...errors import DataError
from ...records import MathItem
from ...store import iter_records
from ...tasks.math_answer import extract_math_answer
from .common import Loaded, check_options, file_record, hub_dataset


def load_mcot(src: Path | str, langs: list[str], options: dict[str, Any]) -> Loaded:
    check_options("mcot", options, set())
    if isinstance(src, str):
        ds = hub_dataset(src, split="train", hint="JSONL/Parquet files of {question, answer, lang, id} records")
        records = [(i, r, f"hf://{src}") for i, r in enumerate(ds, 1)]
        files = [{"path": f"hf://{src}", "sha256": ""}]
    else:
        paths = sorted(p for p in (src.rglob("*") if src.is_dir() else [src])
                       if p.suffix in (".jsonl", ".json", ".parquet"))
        if not paths:
            raise DataError(f"{src}: no .jsonl/.json/.parquet files with mCoT-MATH records")
        records = [(n, r, str(p)) for p in paths for n, r in iter_records(p)]
        files = [file_record(p) for p in paths]
    wanted = set(langs)
    items: dict[str, list[MathItem]] = {lang: [] for lang in langs}
    for n, rec, where in records:
        if not isinstance(rec, dict):
            raise DataError(f"{where}: line {n}: expected a JSON object")
        lang = rec.get("lang") or (str(rec.get("lang-id", "")).split("-", 1)[0] or None)
        if lang is None:
            raise DataError(f"{where}: line {n}: field 'lang' is missing")
        if lang not in wanted:
            continue
        if "id" in rec:
            item_id = str(rec["id"])
        elif "lang-id" in rec:
            item_id = str(rec["lang-id"]).split("-", 1)[1]
        else:
            raise DataError(f"{where}: line {n}: field 'id' (or 'lang-id') is missing: parallel items need ids")
        for key in ("question", "answer"):
            if not isinstance(rec.get(key), str) or not rec[key].strip():
                raise DataError(f"{where}: line {n}: field '{key}' must be a non-empty string")
        value = rec.get("answer_number")
        value = float(value) if value is not None else extract_math_answer(rec["answer"], lang).value
        if value is None:
            raise DataError(f"{where}: line {n}: no final number in field 'answer'")
        items[lang].append(MathItem(f"mcot-{item_id}", lang, rec["question"], value, rec["answer"]))
    for lang in langs:
        if not items[lang]:
            raise DataError(f"{src}: no mCoT-MATH records for language '{lang}'")
    return Loaded(items, files)


_NUM = re.compile(r"\d+(?:\.\d+)?")


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.6g}"


def _solve_prefix(equation: str, numbers: list[float]) -> tuple[list[str], float] | None:
    """Work out a prefix equation ("- number0 number1") step by step: (["18 - 10 = 8"], 8.0)."""
    tokens = equation.split()
    steps: list[str] = []

    def walk(i: int) -> tuple[float, int]:
        tok = tokens[i]
        if tok in "+-*/":
            a, j = walk(i + 1)
            b, k = walk(j)
            value = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else float("nan")}[tok]
            steps.append(f"{_fmt(a)} {tok} {_fmt(b)} = {_fmt(value)}")
            return value, k
        m = re.fullmatch(r"number(\d+)", tok)
        return (numbers[int(m.group(1))] if m else float(tok)), i + 1

    try:
        value, end = walk(0)
    except (IndexError, ValueError, AttributeError, RecursionError):
        return None
    return (steps, value) if end == len(tokens) else None


def load_msvamp(src: Path | str, langs: list[str], options: dict[str, Any]) -> Loaded:
    check_options("msvamp", options, set())
    if isinstance(src, str):
        raise DataError(f"'{src}': MSVAMP is read from the mCoT repository's local files (test_<lang>.json)")
    items, files, raw = {}, [], {}
    for lang in langs:
        path = src / f"test_{lang}.json"
        if not path.exists():
            raise DataError(f"{path}: MSVAMP file for language '{lang}' is missing")
        raw[lang] = [r for _, r in iter_records(path)]
        files.append(file_record(path))
    english = raw.get("en")
    for lang in langs:
        rows = []
        for i, rec in enumerate(raw[lang]):
            where = f"{src / f'test_{lang}.json'}: row {i + 1}"
            try:
                answer = float(rec["answer"])
                question = rec["question"]
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{where}: needs 'question' and a numeric 'answer'") from None
            # numberK in the equation refers to the K-th number of the English problem
            english_text = rec.get("query") or (english[i]["question"] if english else question)
            solved = _solve_prefix(rec.get("equation", ""), [float(x) for x in _NUM.findall(english_text)])
            steps = solved[0] if solved and abs(solved[1] - answer) < 1e-6 else []
            solution = " ".join([s + "." for s in steps] + [languages.get(lang).render_answer(_fmt(answer))])
            rows.append(MathItem(f"msvamp-{i:04d}", lang, question, answer, solution))
        items[lang] = rows
    return Loaded(items, files)

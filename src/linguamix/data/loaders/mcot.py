"""mCoT (Lai & Nissim 2024): mCoT-MATH training records, and the repository's parallel MSVAMP files.

- `mcot`: records `{question, answer (CoT), "lang-id": "<lang>-<id>"}` as the hub's
  `lang-id/mcot-math.json` serves them (or `{lang, id}`), in JSONL/JSON/Parquet files or the hub dataset
  `laihuiyuan/mCoT-MATH`. The final number is extracted from the CoT (the math task's extractor).
- `mcot-outputs`: mCoT-7B's answers to MGSM, a local stand-in sample of mCoT-MATH for token estimates.
- `msvamp`: `test_<lang>.json` (question, equation, answer); the solution is the equation worked out step
  by step, ending with the language's answer sentence.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from ... import languages
from ...errors import DataError
from ...records import MathItem
from ...store import iter_records
from ...tasks.math_answer import extract_math_answer
from .common import Loaded, check_options, file_record, finite_number, hub_dataset


def load_mcot(src: Path | str, langs: list[str], options: dict[str, Any]) -> Loaded:
    check_options("mcot", options, set())
    if isinstance(src, str):
        ds = hub_dataset(src, split="train", data_files=HUB_PARALLEL_FILE,
                         hint="the hub's lang-id/mcot-math.json, or JSONL/Parquet files of {question, answer, lang-id}")
        records = [(i, r, f"hf://{src}/{HUB_PARALLEL_FILE}") for i, r in enumerate(ds, 1)]
        files = [{"path": f"hf://{src}/{HUB_PARALLEL_FILE}", "sha256": ""}]
    else:
        if src.is_dir() and (src / "lang-id").is_dir():  # a copy of the hub repo: only lang-id/ pairs items
            src = src / "lang-id"
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
        lang, item_id = _lang_and_id(rec, f"{where}: line {n}")
        if lang not in wanted:
            continue
        for key in ("question", "answer"):
            if not isinstance(rec.get(key), str) or not rec[key].strip():
                raise DataError(f"{where}: line {n}: field '{key}' must be a non-empty string")
        value = rec.get("answer_number")
        value = finite_number(value, f"{where}: line {n}", "answer_number") if value is not None else \
            extract_math_answer(rec["answer"], lang).value
        if value is None or not math.isfinite(value):
            raise DataError(f"{where}: line {n}: field 'answer': no final number at the end of the solution")
        items[lang].append(MathItem(f"mcot-{item_id}", lang, rec["question"], value, rec["answer"]))
    for lang in langs:
        if not items[lang]:
            raise DataError(f"{src}: no mCoT-MATH records for language '{lang}'")
    return Loaded(items, files, where={lang: str(src) for lang in langs})


HUB_PARALLEL_FILE = "lang-id/mcot-math.json"
"""The hub file whose records carry `"lang-id": "<lang>-<id>"`; the root `mcot_math.json` has no ids."""


def _lang_and_id(rec: dict[str, Any], where: str) -> tuple[str, str]:
    """(language, item id) of an mCoT-MATH record: `lang` + `id`, or the hub's `"lang-id": "sw-1234"`
    (split at the first '-': the same id in every language is the same item)."""
    if "lang-id" in rec:
        lang, sep, item_id = str(rec["lang-id"]).partition("-")
        if not (lang and sep and item_id):
            raise DataError(f"{where}: field 'lang-id' must be '<lang>-<id>', got {rec['lang-id']!r}")
        return lang, item_id
    if not rec.get("lang"):
        raise DataError(f"{where}: field 'lang-id' (or 'lang') is missing")
    if "id" not in rec:
        raise DataError(f"{where}: field 'lang-id' (or 'id') is missing: parallel items need ids (the hub's "
                        f"root mcot_math.json has none; use its {HUB_PARALLEL_FILE})")
    return str(rec["lang"]), str(rec["id"])


def load_mcot_outputs(src: Path | str, langs: list[str], options: dict[str, Any]) -> Loaded:
    """mCoT-7B's own answers to MGSM (`outputs/mcot_ft_mgsm_<lang>.json`, JSON Lines of {question: the
    full prompt, response, answer}): chains of thought in mCoT-MATH's style in 11 languages, a local
    stand-in sample for token estimates (`plan`) while mCoT-MATH itself is on the hub. Positional ids."""
    check_options("mcot-outputs", options, set())
    if isinstance(src, str) or not src.is_dir():
        raise DataError(f"{src}: mcot-outputs reads a local folder of mcot_ft_mgsm_<lang>.json files")
    items, files, where = {}, [], {}
    for lang in langs:
        path = src / f"mcot_ft_mgsm_{lang}.json"
        if not path.exists():
            raise DataError(f"{path}: mCoT output file for language '{lang}' is missing")
        rows = []
        for n, rec in iter_records(path):
            at = f"{path}: line {n}"
            prompt, response = (rec.get("question"), rec.get("response")) if isinstance(rec, dict) else (None, None)
            if not isinstance(prompt, str) or not isinstance(response, str):
                raise DataError(f"{at}: needs string fields 'question' and 'response'")
            question = prompt.removeprefix("Question:\n").split("\nAnswer:\n")[0]
            rows.append(MathItem(f"mgsm-{n:03d}", lang, question, finite_number(rec.get("answer"), at, "answer"),
                                 response))
        if not rows:
            raise DataError(f"{path}: no records (an empty file)")
        items[lang], where[lang] = rows, str(path)
        files.append(file_record(path))
    return Loaded(items, files, positional=True, where=where)


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
        if not raw[lang]:
            raise DataError(f"{path}: no problems (an empty file)")
        files.append(file_record(path))
    english = raw.get("en")
    for lang in langs:
        rows = []
        for i, rec in enumerate(raw[lang]):
            where = f"{src / f'test_{lang}.json'}: row {i + 1}"
            if not isinstance(rec, dict) or not isinstance(rec.get("question"), str) or "answer" not in rec:
                raise DataError(f"{where}: needs a string 'question' and an 'answer'")
            question, answer = rec["question"], finite_number(rec["answer"], where, "answer")
            # numberK in the equation refers to the K-th number of the English problem
            english_text = rec.get("query") or (english[i]["question"] if english and i < len(english) else question)
            solved = _solve_prefix(rec.get("equation", ""), [float(x) for x in _NUM.findall(english_text)])
            steps = solved[0] if solved and abs(solved[1] - answer) < 1e-6 else []
            solution = " ".join([s + "." for s in steps] + [languages.get(lang).render_answer(_fmt(answer))])
            rows.append(MathItem(f"msvamp-{i:04d}", lang, question, answer, solution))
        items[lang] = rows
    return Loaded(items, files, positional=True, where={lang: str(src / f"test_{lang}.json") for lang in langs})

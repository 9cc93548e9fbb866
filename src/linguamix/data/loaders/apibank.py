"""API-Bank (Li et al. 2023) and mAPICall-Bank (one API-Bank folder per language, `linguamix translate`).

- split `test`: the level-1 API-call cases rebuilt from the dialogues of `level-1-given-desc/*.jsonl`
  (399 cases for API-Bank), prompts byte-identical to the official `test-data/level-1-api.json`;
- split `train`: the rows of `training-data/lv*-api-train.json` (Alpaca-style instruction/input/output).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ...errors import DataError
from ...records import ApiItem
from ...store import iter_records, read_json
from ...tasks.api import LEVEL1_HEADER
from ...tasks.api_call import gold_call, parse_api_call, render_turn
from .common import Loaded, check_options, file_record

OPTIONS = {"split", "levels", "train_files"}
DEFAULT_LEVELS = ["level-1-given-desc"]
DEFAULT_TRAIN_FILES = "training-data/lv*-api-train.json"


def read_dialogue(path: Path) -> list[dict[str, Any]]:
    """The turns of one API-Bank dialogue file (one JSON object per line), checked: a User/AI turn has a
    string `text`; an API turn has `api_name`, a `param_dict` of strings and a `result` object."""
    turns = []
    for n, turn in iter_records(path):
        role = turn.get("role") if isinstance(turn, dict) else None
        if role not in ("User", "AI", "API"):
            raise DataError(f"{path}: line {n}: field 'role' must be User, AI or API")
        if role == "API":
            pd = turn.get("param_dict")
            if not (isinstance(turn.get("api_name"), str) and isinstance(pd, dict)
                    and all(isinstance(v, str) for v in pd.values()) and isinstance(turn.get("result"), dict)):
                raise DataError(f"{path}: line {n}: an API turn needs 'api_name', a 'param_dict' of strings "
                                f"and 'result'")
        elif not isinstance(turn.get("text"), str):
            raise DataError(f"{path}: line {n}: field 'text' must be a string")
        turns.append(turn)
    return turns


def dialogue_cases(turns: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """(sample id, index of the gold API turn) for API-Bank's level-1 API-call cases of one dialogue.

    Upstream (`Sample.from_chat_history`) makes two cases per API turn k at index i: id 2k predicts
    turn i, id 2k+1 predicts turn i+1 — which is one more API-call case when turn i+1 is an API turn.
    """
    cases = []
    api_turns = [i for i, t in enumerate(turns) if t["role"] == "API"]
    for k, i in enumerate(api_turns):
        cases.append((2 * k, i))
        if i + 1 < len(turns) and turns[i + 1]["role"] == "API":
            cases.append((2 * k + 1, i + 1))
    return cases


class _Instructions:
    """API descriptions for a dialogue case: the official test-data prompt when it exists (byte-exact
    for API-Bank), else the header + the dialogue's APIs from an `apis.json` catalogue."""

    def __init__(self, dirs: list[Path]):
        self.by_case: dict[tuple[str, int], str] = {}
        self.catalog: dict[str, str] = {}
        self.files: list[dict[str, str]] = []
        for d in dirs:
            test_file = d / "test-data" / "level-1-api.json"
            if test_file.exists() and not self.by_case:
                for n, row in enumerate(read_json(test_file), 1):
                    try:
                        self.by_case[(row["file"], int(row["id"]))] = row["instruction"]
                    except (KeyError, TypeError, ValueError):
                        raise DataError(f"{test_file}: row {n}: needs 'file', 'id' and 'instruction'") from None
                self.files.append(file_record(test_file))
            apis = d / "apis.json"
            if apis.exists() and not self.catalog:
                self.catalog = {a["name"]: a["prompt_description"] for a in read_json(apis)}
                self.files.append(file_record(apis))

    def get(self, file: str, case_id: int, api_names: list[str], where: str) -> str:
        if (file, case_id) in self.by_case:
            return self.by_case[(file, case_id)]
        missing = [n for n in api_names if n not in self.catalog]
        if missing:
            raise DataError(f"{where}: no description for API(s) {missing} (need test-data/level-1-api.json "
                            f"or apis.json beside the dialogues)")
        return LEVEL1_HEADER + "\n".join(self.catalog[n] for n in sorted(set(api_names)))


def _load_test(folder: Path, lang: str, instructions: _Instructions, levels: list[str]) -> tuple[list, list]:
    items, files = [], []
    for level in levels:
        paths = sorted((folder / level).glob("*.jsonl"))
        if not paths:
            raise DataError(f"{folder / level}: no dialogue files (*.jsonl) for language '{lang}'")
        for path in paths:
            files.append(file_record(path))
            turns = read_dialogue(path)
            names = sorted({t["api_name"] for t in turns if t["role"] == "API"})
            for case_id, i in dialogue_cases(turns):
                gold = turns[i]
                items.append(ApiItem(
                    item_id=f"{path.name}#{case_id}", lang=lang,
                    instruction=instructions.get(path.name, case_id, names, f"{path}"),
                    dialogue="\n".join(render_turn(t) for t in turns[:i]),
                    api_name=gold["api_name"], arguments=dict(gold["param_dict"])))
    return items, files


_CUE = re.compile(r"\n?Generate API Request:\s*$")


def _load_train(folder: Path, lang: str, pattern: str) -> tuple[list, list]:
    paths = sorted(folder.glob(pattern))
    if not paths:
        raise DataError(f"{folder}: no training files matching '{pattern}' for language '{lang}'")
    items, files = [], []
    for path in paths:
        files.append(file_record(path))
        for n, row in iter_records(path):
            where = f"{path}: row {n}"
            if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ("instruction", "input", "output")):
                raise DataError(f"{where}: needs string fields 'instruction', 'input', 'output'")
            try:  # gold_call also reads the bracket-less form a few API-Bank rows use
                call = gold_call(row["output"])
            except ValueError:
                raise DataError(f"{where}: field 'output' is not a parseable API call ({row['output'][:80]!r})") from None
            item_id = str(row["id"]) if "id" in row else f"{path.stem}#{n - 1}"
            items.append(ApiItem(item_id=item_id, lang=lang, instruction=row["instruction"],
                                 dialogue=_CUE.sub("", row["input"]), api_name=call.api_name,
                                 arguments=dict(call.arguments),
                                 # a malformed reference (no brackets) is re-rendered in the standard form
                                 target=row["output"].strip() if parse_api_call(row["output"]) else None))
    return items, files


def load_api_bank(root: Path | str, langs: list[str], options: dict[str, Any], *, per_language: bool) -> Loaded:
    fmt = "mapicall-bank" if per_language else "api-bank"
    check_options(fmt, options, OPTIONS)
    split = options.get("split", "test")
    if isinstance(root, str):
        raise DataError(f"'{root}': API-Bank / mAPICall-Bank are read from local folders (download the hub "
                        f"dataset liminghao1630/API-Bank and point the config at it)")
    if not per_language and langs != ["en"]:
        raise DataError(f"{root}: API-Bank is English only; for {[l for l in langs if l != 'en']} use format "
                        f"'mapicall-bank' (one folder per language, see `linguamix translate`)")
    folders = {lang: (root / lang if per_language else root) for lang in langs}
    for lang, folder in folders.items():
        if not folder.is_dir():
            raise DataError(f"{folder}: folder for language '{lang}' is missing")
    items, files = {}, []
    # descriptions stay English: take them from the English folder (or the root) for every language
    instructions = _Instructions([root / "en", root] if per_language else [root])
    files += instructions.files
    for lang, folder in folders.items():
        if split == "test":
            items[lang], f = _load_test(folder, lang, instructions, list(options.get("levels", DEFAULT_LEVELS)))
        elif split == "train":
            items[lang], f = _load_train(folder, lang, options.get("train_files", DEFAULT_TRAIN_FILES))
        else:
            raise DataError(f"{root}: option 'split' must be 'train' or 'test', got {split!r}")
        files += f
    return Loaded(items, files)

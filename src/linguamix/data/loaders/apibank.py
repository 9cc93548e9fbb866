"""API-Bank (Li et al. 2023) and mAPICall-Bank (one API-Bank folder per language, `linguamix translate`).

- split `test`: the level-1 API-call cases rebuilt from the dialogues of `level-1-given-desc/*.jsonl`
  (399 cases for API-Bank), prompts byte-identical to the official `test-data/level-1-api.json`;
- split `train`: the rows of `training-data/lv{1,2,3}-api-train.json` put in that same level-1 form
  (`apibank_train`). Options: `files` (default: the paper's lv1-api-train.json), `time` (`test`: the
  test's header line, default; `row`: the row's own time), `test_apis` (`error`, default, or `drop`:
  what a training row whose gold API is a test API gets), `levels` (the test's dialogue folders).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import DataError
from ...records import ApiItem
from ...store import iter_records, read_json
from ...tasks.api import LEVEL1_HEADER
from ...tasks.api_call import gold_call, render_turn
from . import apibank_train as train_rows
from .apibank_train import PAPER_FILES, TRAIN_FILES
from .common import Loaded, check_options, file_record

OPTIONS = {"split", "levels", "files", "time", "test_apis"}
DEFAULT_LEVELS = ["level-1-given-desc"]


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


def _test_apis(folders: list[Path], levels: list[str]) -> set[str] | None:
    """The gold APIs of the test (49 for API-Bank level 1), from the dialogues or the test file beside the
    training data; None when neither is there (the disjointness check is then reported as not made)."""
    for d in folders:
        paths = [p for level in levels for p in sorted((d / level).glob("*.jsonl"))]
        if paths:
            names = set()
            for p in paths:
                turns = read_dialogue(p)
                names |= {turns[i]["api_name"] for _, i in dialogue_cases(turns)}
            return names
        test_file = d / "test-data" / "level-1-api.json"
        if test_file.exists():
            rows = read_json(test_file)
            try:
                return {gold_call(r["expected_output"]).api_name for r in rows}
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{test_file}: every row needs an 'expected_output' API call") from None
    return None


def _train_files(folder: Path, options: dict[str, Any], warnings: list[str]) -> list[Path]:
    """options.files (names under training-data/), else the paper's file, else what is there (warned)."""
    chosen = options.get("files")
    if chosen is not None:
        names = [chosen] if isinstance(chosen, str) else list(chosen)
        for name in names:
            if name not in TRAIN_FILES:
                raise DataError(f"{folder}: options.files: '{name}' is not an API-Bank API-call training file "
                                f"(known: {', '.join(TRAIN_FILES)})")
        missing = [n for n in names if not (folder / "training-data" / n).is_file()]
        if missing:
            raise DataError(f"{folder / 'training-data' / missing[0]}: training file not found (options.files; "
                            f"download it from the hub dataset liminghao1630/API-Bank)")
        return [folder / "training-data" / n for n in names]
    paper = [folder / "training-data" / n for n in PAPER_FILES]
    if all(p.is_file() for p in paper):
        return paper
    present = [folder / "training-data" / n for n in TRAIN_FILES if (folder / "training-data" / n).is_file()]
    if not present:
        raise DataError(f"{folder / 'training-data'}: no API-call training file ({', '.join(TRAIN_FILES)}; "
                        f"download them from the hub dataset liminghao1630/API-Bank)")
    warnings.append(f"{folder / 'training-data'}: {', '.join(PAPER_FILES)} (the paper's training set) is not "
                    f"there; using {', '.join(p.name for p in present)} instead (set options.files to choose)")
    return present


def _load_train(root: Path, folders: dict[str, Path], options: dict[str, Any], english: list[Path]) -> Loaded:
    """Every language's rows of the chosen files in the level-1 form; a row dropped in one language is
    dropped in all (the pools stay parallel), each drop counted with its reason per file and language."""
    time_policy = options.get("time", "test")
    policy = options.get("test_apis", "error")
    if time_policy not in ("test", "row") or policy not in ("error", "drop"):
        raise DataError(f"{root}: options.time must be 'test' or 'row' and options.test_apis 'error' or 'drop'")
    warnings: list[str] = []
    test_apis = _test_apis(english, list(options.get("levels", DEFAULT_LEVELS)))
    if test_apis is None:
        warnings.append(f"{root}: no level-1 test dialogues or test-data beside the training data: train/test API "
                        f"disjointness not checked")
    per_lang: dict[str, list[tuple[Path, list, dict[str, str]]]] = {}
    files = []
    for lang, folder in folders.items():
        per_lang[lang], seen = [], set()
        for path in _train_files(folder, options, warnings):
            kept, dropped = train_rows.load_file(path, lang, time_policy=time_policy, test_apis=test_apis,
                                                 test_api_policy=policy, seen=seen)
            per_lang[lang].append((path, kept, dropped))
            files.append(file_record(path))
    gone = {i for entries in per_lang.values() for _, _, dropped in entries for i in dropped}
    items, sources = {}, []
    for lang, entries in per_lang.items():
        items[lang] = []
        for path, kept, dropped in entries:
            reasons: dict[str, int] = {}
            for reason in dropped.values():
                reasons[reason] = reasons.get(reason, 0) + 1
            taken = [r.item for r in kept if r.item_id not in gone]
            if len(taken) < len(kept):
                reasons[train_rows.DROP_OTHER_LANGUAGE] = len(kept) - len(taken)
            items[lang] += taken
            sources.append({"file": str(path), "lang": lang, "rows": len(kept) + len(dropped), "taken": len(taken),
                            "dropped": reasons})
    return Loaded(items, files, sources=sources, check_golds=True, warnings=list(dict.fromkeys(warnings)),
                  where={lang: str(entries[0][0]) for lang, entries in per_lang.items() if entries})


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
    english = [root / "en", root] if per_language else [root]
    if split == "train":
        return _load_train(root, folders, options, english)
    if split != "test":
        raise DataError(f"{root}: option 'split' must be 'train' or 'test', got {split!r}")
    items, files = {}, []
    # descriptions stay English: take them from the English folder (or the root) for every language
    instructions = _Instructions(english)
    files += instructions.files
    levels = list(options.get("levels", DEFAULT_LEVELS))
    for lang, folder in folders.items():
        items[lang], f = _load_test(folder, lang, instructions, levels)
        files += f
    return Loaded(items, files, check_golds=True, where={lang: ", ".join(str(folder / lv) for lv in levels)
                                       for lang, folder in folders.items()})

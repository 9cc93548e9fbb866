"""API-Bank's training rows (`training-data/lv{1,2,3}-api-train.json`) in the level-1 prompt form of the test.

The hub ships Alpaca rows `{instruction, input, output}` whose prompts differ from the 399 test prompts
in every part (docs/data.md 1.3). Each row is put in the test's one form:

- header: `tasks.api.LEVEL1_HEADER`, the test's lines verbatim (option `time: row` writes the row's own
  time instead of "The current year is 2023.": "The current time is 2039-03-09 18:56:09 Wednesday.");
- API descriptions: the test's JSON schema `{name, description, input_parameters, output_parameters}`,
  one `json.dumps` line each: the row's `apiCode` lines renamed, plus every API a `ToolSearcher` call
  returned in the dialogue (lv2/lv3). ToolSearcher itself is not described: level 1 has no retrieval;
- dialogue: `User:` / `AI:` / `API-Request: [Name(k='v')]->{output}` as the test renders them (calls
  re-rendered by `tasks.api_call`, JSON results shown as Python's str() like the test's), ToolSearcher
  turns removed (what they found is now a description), lv3's `TIME: ...` suffix cut;
- completion: the gold call re-rendered the test's way (brackets, every value in single quotes).

Rows that have no place in the level-1 task are dropped and counted with the reason (`DROP_*`); rows
that are not API-Bank training rows at all are bad input (DataError naming the file and row).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import DataError
from ...records import ApiItem
from ...store import iter_records
from ...tasks.api import LEVEL1_TIME, level1_header
from ...tasks.api_call import ApiCall, format_call, gold_call, render_call
from .common import read_text

TRAIN_FILES = ("lv1-api-train.json", "lv2-api-train.json", "lv3-api-train.json")
"""API-Bank's API-call training files (the `*-response-train` / `lvN-train` files hold AI replies)."""
PAPER_FILES = ("lv1-api-train.json",)
"""The default: the paper's 3,174 queries over 1,535 APIs are level-1 "Call" data (docs/data.md 1.2)."""
SEARCHER = "ToolSearcher"
CUE = "Generate API Request:"

DROP_SEARCHER = "gold call is ToolSearcher (retrieval, not the level-1 task)"
DROP_UNDESCRIBED = "gold API is never described or retrieved"
DROP_BAD_RETRIEVAL = "a ToolSearcher result is not readable as API descriptions"
DROP_PLACEHOLDER = "a template placeholder {{...}} is left"
DROP_DUPLICATE = "exact duplicate of an earlier row"
DROP_TEST_API = "gold API is a test API (options.test_apis: drop)"
DROP_OTHER_LANGUAGE = "dropped in another language"

_HEADER = re.compile(
    r"\s*Generate an API request in the format of \[ApiName\(key1='value1', key2='value2', \.\.\.\)\] based on "
    r"(?:the previous dialogue context|the user's utterance and available API requests)\.\n"
    r"The current (?:time|year) is (?P<time>.*?)\.\nInput: \n.*?\n\nExpected output:\n"
    r"API-Request: \[ApiName\(key1='value1', key2='value2', \.\.\.\)\]\n\nAPI descriptions:\n?(?P<rest>.*)\Z", re.S)
_TURN = re.compile(r"(User|AI|API-Request): ?")
_TIME_SUFFIX = re.compile(r"\s*TIME: ?(\d{4}-\d\d-\d\d[^\n]*?)\s*\Z")
_PLACEHOLDER = re.compile(r"\{\{\s*[\w.-]*\s*\}\}")


class RowDrop(Exception):
    """A row with no place in the level-1 task: dropped and counted under `reason`."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TrainRow:
    item_id: str
    row: int
    item: ApiItem


def read_rows(path: Path) -> list[tuple[int, Any]]:
    """The rows of a training file: a JSON array (the hub's form) or JSON Lines."""
    text = read_text(path).lstrip()
    if text[:1] == "{":
        try:
            json.loads(text)
        except json.JSONDecodeError:
            pass  # JSON Lines: several objects
        else:
            raise DataError(f"{path}: expected a JSON array of {{instruction, input, output}} rows, got one object")
    return list(iter_records(path))


def convert(row: Any, item_id: str, lang: str, where: str, *, time_policy: str = "test") -> ApiItem:
    """One training row in the level-1 test form (RowDrop if it has no place there; DataError if it is
    not an API-Bank training row)."""
    if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ("instruction", "input", "output")):
        found = sorted(row)[:6] if isinstance(row, dict) else type(row).__name__
        raise DataError(f"{where}: needs string fields 'instruction', 'input', 'output' (found {found})")
    header = _HEADER.fullmatch(row["instruction"])
    if header is None:
        raise DataError(f"{where}: field 'instruction' is not API-Bank's level-1/2/3 header "
                        f"(starts {row['instruction'].strip()[:60]!r})")
    try:
        gold = gold_call(row["output"])
    except ValueError:
        raise DataError(f"{where}: field 'output' is not an API-Request: [Name(key='value')] call "
                        f"({row['output'][:60]!r})") from None
    if gold.api_name == SEARCHER:
        raise RowDrop(DROP_SEARCHER)
    time = header.group("time") if "{" not in header.group("time") else None  # lv3: "{{time}}", never filled
    lines = [ln for ln in (header.group("rest") + "\n" + row["input"]).split("\n") if ln.strip()]
    descs: dict[str, dict[str, Any]] = {}
    while lines and lines[0].startswith("{"):
        try:
            desc = json.loads(lines.pop(0))
        except json.JSONDecodeError:
            raise DataError(f"{where}: field 'input': an API description line is not JSON") from None
        _add(descs, desc, where)
    if not lines or lines[-1].strip() != CUE:
        raise DataError(f"{where}: field 'input' does not end with '{CUE}'")
    dialogue = []
    for turn in _turns(lines[:-1]):
        if turn.startswith("User:"):
            suffix = _TIME_SUFFIX.search(turn)
            if suffix:
                time = time or suffix.group(1)
                turn = turn[:suffix.start()]
            dialogue.append(turn)
        elif turn.startswith("API-Request:"):
            call, result = _api_turn(turn, where)
            if call.api_name == SEARCHER:
                for desc in _retrieved(result):
                    _add(descs, desc, where)
            else:
                dialogue.append(f"API-Request: {render_call(call.api_name, call.arguments)}->{_as_python(result)}")
        else:
            dialogue.append(turn)
    if gold.api_name not in descs:
        raise RowDrop(DROP_UNDESCRIBED)
    time_line = f"The current time is {time}." if time_policy == "row" and time else LEVEL1_TIME
    instruction = level1_header(time_line) + "\n".join(json.dumps(d) for d in descs.values())
    item = ApiItem(item_id=item_id, lang=lang, instruction=instruction, dialogue="\n".join(dialogue),
                   api_name=gold.api_name, arguments=dict(gold.arguments))
    if _PLACEHOLDER.search(instruction + item.dialogue + format_call(gold.api_name, gold.arguments)):
        raise RowDrop(DROP_PLACEHOLDER)
    return item


def _turns(lines: list[str]) -> list[str]:
    turns: list[str] = []
    for line in lines:
        if _TURN.match(line) or not turns:
            turns.append(line)
        else:  # a turn's text may span lines
            turns[-1] += "\n" + line
    return turns


def _api_turn(turn: str, where: str) -> tuple[ApiCall, str]:
    """`API-Request: [Name(k='v')]->result` -> (call, result): the first `->` after which the call reads."""
    body = turn[len("API-Request:"):].strip()
    for m in re.finditer(r"\)\s*\]?\s*->", body):
        try:
            return gold_call(body[:m.start() + 1] + ("]" if body.startswith("[") else "")), body[m.end():]
        except ValueError:
            continue
    raise DataError(f"{where}: field 'input': API turn is not 'API-Request: [Name(...)]->result' ({turn[:60]!r})")


def _add(descs: dict[str, dict[str, Any]], desc: Any, where: str) -> None:
    """An API description in the test's schema (key order name, description, input, output)."""
    name = desc.get("name", desc.get("apiCode")) if isinstance(desc, dict) else None
    if not isinstance(name, str) or not name:
        raise DataError(f"{where}: an API description has no 'apiCode' or 'name'")
    if name == SEARCHER or name in descs:
        return

    def params(v: Any) -> dict:  # `{'none'}` (a set in a repr) and missing entries: no parameters
        return v if isinstance(v, dict) else {}

    descs[name] = {"name": name, "description": desc.get("description", ""),
                   "input_parameters": params(desc.get("input_parameters", desc.get("parameters"))),
                   "output_parameters": params(desc.get("output_parameters", desc.get("response")))}


def _retrieved(result: str) -> list[dict[str, Any]]:
    try:
        found = loose_literal(result.strip())
    except ValueError:
        raise RowDrop(DROP_BAD_RETRIEVAL) from None
    found = found if isinstance(found, list) else [found]
    if not all(isinstance(d, dict) and isinstance(d.get("name", d.get("apiCode")), str) for d in found):
        raise RowDrop(DROP_BAD_RETRIEVAL)
    return found


def _as_python(result: str) -> str:
    """The test shows a tool's output as Python's str() (`{'token': 'x'}`); a JSON result is shown so too."""
    if result[:1] not in "{[":
        return result
    try:
        return str(json.loads(result))
    except json.JSONDecodeError:
        return result


def loose_literal(text: str) -> Any:
    """A Python-repr-like dict/list (JSON or repr) as ToolSearcher results write them; tolerates bare names
    (`'type': str`), set literals (`{'none'}`, read as a list) and apostrophes inside single-quoted strings
    (a quote closes a string only before one of `,:}]` or the end). Never evaluates anything."""
    pos = 0
    consts = {"True": True, "true": True, "False": False, "false": False, "None": None, "null": None}
    scalar = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\w+")

    def ws() -> None:
        nonlocal pos
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1

    def value() -> Any:
        nonlocal pos
        ws()
        if pos >= len(text):
            raise ValueError("unexpected end")
        ch = text[pos]
        if ch in "{[":
            return container(ch)
        if ch in "'\"":
            end = pos + 1
            while True:
                end = text.find(ch, end)
                if end < 0:
                    raise ValueError("unterminated string")
                after = text[end + 1:].lstrip(" ")
                if ch == '"' or not after or after[0] in ",:}]":
                    break
                end += 1
            raw, pos = text[pos + 1:end], end + 1
            return json.loads(f'"{raw}"') if ch == '"' and "\\" in raw else raw
        m = scalar.match(text, pos)
        if not m:
            raise ValueError(f"unexpected {ch!r} at {pos}")
        pos = m.end()
        tok = m.group()
        if tok in consts:
            return consts[tok]
        try:
            return int(tok) if re.fullmatch(r"-?\d+", tok) else float(tok)
        except ValueError:
            return tok  # a bare name such as `str`: its text

    def container(ch: str) -> Any:
        nonlocal pos
        close, pos = ("}" if ch == "{" else "]"), pos + 1
        out: Any = {} if ch == "{" else []
        while True:
            ws()
            if text[pos:pos + 1] == close:
                pos += 1
                return out
            if isinstance(out, dict):
                key = value()
                ws()
                if not out and text[pos:pos + 1] in (",", "}"):
                    out = [key]  # a set literal
                    continue
                if text[pos:pos + 1] != ":":
                    raise ValueError(f"':' expected at {pos}")
                pos += 1
                out[key] = value()
            else:
                out.append(value())
            ws()
            if text[pos:pos + 1] == ",":
                pos += 1
            elif text[pos:pos + 1] != close:
                raise ValueError(f"',' or '{close}' expected at {pos}")

    result = value()
    ws()
    if pos != len(text):
        raise ValueError(f"trailing text at {pos}")
    return result


def load_file(path: Path, lang: str, *, time_policy: str, test_apis: set[str] | None, test_api_policy: str,
              seen: set[tuple[str, str, str]]) -> tuple[list[TrainRow], dict[str, str]]:
    """(rows in the level-1 form, {item id: why it was dropped}) of one training file in one language;
    `seen` (the language's examples so far, updated) finds exact duplicates across files too."""
    kept: list[TrainRow] = []
    dropped: dict[str, str] = {}
    for n, row in read_rows(path):
        where = f"{path}: row {n}"
        item_id = str(row["id"]) if isinstance(row, dict) and "id" in row else f"{path.stem}#{n - 1}"
        try:
            item = convert(row, item_id, lang, where, time_policy=time_policy)
        except RowDrop as e:
            dropped[item_id] = e.reason
            continue
        if test_apis is not None and item.api_name in test_apis:
            if test_api_policy != "drop":
                raise DataError(f"{where}: gold API '{item.api_name}' is one of the test's APIs: train and test "
                                f"APIs must be disjoint (options.test_apis: drop drops such rows)")
            dropped[item_id] = DROP_TEST_API
            continue
        key = (item.instruction, item.dialogue, format_call(item.api_name, item.arguments))
        if key in seen:
            dropped[item_id] = DROP_DUPLICATE
            continue
        seen.add(key)
        kept.append(TrainRow(item_id, n, item))
    return kept, dropped

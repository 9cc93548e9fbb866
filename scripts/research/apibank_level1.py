#!/usr/bin/env python
"""Prototype (issue 14): API-Bank training rows (lv1/lv2/lv3 `{instruction, input, output}`) in the
level-1 test prompt form, and a check of that form on real files.

Research code for the loader rewrite, standalone on purpose (the data package is being restructured):

    python scripts/research/apibank_level1.py ../shared/data/api-bank             # lv3 rows + test form
    python scripts/research/apibank_level1.py tests/fixtures/api-bank-hub --json  # per-row verdicts

The level-1 test prompt (test-data/level-1-api.json, rebuilt from level-1-given-desc) is
`instruction + input`:
    instruction = TEST_HEADER + "API descriptions:\\n" + "\\n".join(json.dumps(desc) for each API)
    input       = "\\n".join(rendered turns) + "\\nGenerate API Request:\\n"
with desc = {"name", "description", "input_parameters", "output_parameters"} and turns `User: ...`,
`AI: ...`, `API-Request: [Name(k='v')]->{result}`; the completion is `API-Request: [Name(k='v', ...)]`.
linguamix's `tasks.api.render` drops the instruction's leading newline: prompt = instruction[1:] + "\\n" + input.

A training row is mapped onto that form as follows (see `convert`):
* header: the test's lines; "The current time is {{time}}." (lv3, never filled) or "The current time
  is 2039-03-09 18:56:09 Wednesday." (lv1/lv2) becomes "The current year is YYYY." -- YYYY from the
  row's own time (the header's, or lv3's "TIME: ..." suffix on the user turn), 2023 (the test's) when
  the row has none. `--year test` writes 2023 always.
* descriptions: the `apiCode` lines at the head of `input` (lv1: the domain's APIs) renamed to the
  test schema (apiCode->name, parameters->input_parameters, response->output_parameters), plus every
  API a ToolSearcher call returned in the dialogue (lv2/lv3: `->{'name': ...}` Python reprs, some not
  valid Python). ToolSearcher itself is not described: level 1 has no retrieval.
* dialogue: User/AI/API turns as the test renders them; ToolSearcher turns are dropped (what they
  retrieved is now in the descriptions); "TIME: ..." suffixes are cut from user turns.
* completion: the gold call re-rendered as the test renders gold (every value in single quotes, no
  escaping), which also repairs bracket-less outputs and bare or double-quoted values.
* rows whose gold call is ToolSearcher are excluded (retrieval, not the level-1 calling task).
"""
from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

TEST_HEADER = ("\nGenerate an API request in the format of [ApiName(key1='value1', key2='value2', ...)] based on "
               "the previous dialogue context.\nThe current year is {year}.\nInput: \nUser: User's utterence\nAI: "
               "AI's response\n\nExpected output:\nAPI-Request: [ApiName(key1='value1', key2='value2', ...)]\n\n")
TEST_YEAR = "2023"
CUE = "Generate API Request:"
SEARCHER = "ToolSearcher"

# the training files' header: lv3 "based on the user's utterance and available API requests" and
# "{{time}}"; lv1/lv2 "based on the previous dialogue context" and a filled-in time
_HEADER = re.compile(
    r"\nGenerate an API request in the format of \[ApiName\(key1='value1', key2='value2', \.\.\.\)\] based on "
    r"(?P<basis>the previous dialogue context|the user's utterance and available API requests)\.\n"
    r"The current (?:time|year) is (?P<time>.*?)\.\nInput: \n(?P<legend>.*?)\n\nExpected output:\n"
    r"API-Request: \[ApiName\(key1='value1', key2='value2', \.\.\.\)\]\n\nAPI descriptions:\n(?P<rest>.*)\Z",
    re.S)
_TIME_SUFFIX = re.compile(r"TIME: ?(\d{4}-\d\d-\d\d[^\n]*?)\s*$")
_TURN = re.compile(r"(User|AI|API-Request): ?")
_CALL = re.compile(r"\s*API-Request:\s*\[?\s*(\w+)\((.*)\)\s*\]?\s*\Z", re.S)
_KEY = re.compile(r"(?:^|,\s*)(\w+)\s*=(?!=)")
_API_TURN = re.compile(r"API-Request: \[?(\w+)\((.*?)\)\]?->(.*)", re.S)


class RowError(ValueError):
    """Why one row cannot be put in the level-1 form (`kind` groups them in the report)."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


# -- loose literals: ToolSearcher results are Python reprs, some with bare `str` or unescaped quotes ----
def loose_literal(text: str):
    """Parse a Python-repr-like dict/list (JSON or repr). Tolerates bare names (`'type': str`) and
    apostrophes inside single-quoted strings (`'the user's id'`): a quote closes a string only when
    the next non-space character is one of , : } ] or the end."""
    pos = 0

    def ws():
        nonlocal pos
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1

    def value():
        nonlocal pos
        ws()
        if pos >= len(text):
            raise ValueError("unexpected end")
        ch = text[pos]
        if ch in "{[":
            close, pos = ("}" if ch == "{" else "]"), pos + 1
            out = {} if ch == "{" else []
            while True:
                ws()
                if pos < len(text) and text[pos] == close:
                    pos += 1
                    return out
                if isinstance(out, dict):
                    key = value()
                    ws()
                    if not out and text[pos:pos + 1] in (",", "}"):
                        out = [key]  # a set literal such as {'none'}: kept as a list
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
        if ch in "'\"":
            end = pos + 1
            while True:
                end = text.find(ch, end)
                if end < 0:
                    raise ValueError("unterminated string")
                nxt = text[end + 1:].lstrip(" ")
                if ch == '"' or not nxt or nxt[0] in ",:}]":
                    break
                end += 1
            raw, pos = text[pos + 1:end], end + 1
            return json.loads(f'"{raw}"') if ch == '"' and "\\" in raw else raw
        m = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\w+").match(text, pos)
        if not m:
            raise ValueError(f"unexpected {ch!r} at {pos}")
        pos = m.end()
        tok = m.group()
        consts = {"True": True, "true": True, "False": False, "false": False, "None": None, "null": None}
        if tok in consts:
            return consts[tok]
        if re.fullmatch(r"-?\d+", tok):
            return int(tok)
        try:
            return float(tok)
        except ValueError:
            return tok  # a bare name such as `str` is kept as its text

    result = value()
    ws()
    if pos != len(text):
        raise ValueError(f"trailing text at {pos}")
    return result


# -- pieces of a row -------------------------------------------------------------------------------
def to_test_schema(desc: dict) -> dict:
    """An API description in the test's schema, key order name/description/input/output."""
    name = desc.get("name", desc.get("apiCode"))
    if not isinstance(name, str) or not name:
        raise RowError("description without a name", json.dumps(desc)[:80])

    def params(v):  # `{'none'}` (a set in the repr) and missing entries mean no parameters
        return v if isinstance(v, dict) else {}

    return {"name": name, "description": desc.get("description", ""),
            "input_parameters": params(desc.get("input_parameters", desc.get("parameters"))),
            "output_parameters": params(desc.get("output_parameters", desc.get("response")))}


def parse_call(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(name, [(key, raw value text)]) from `API-Request: [Name(k='v', k2=v2)]`, brackets optional,
    values single-, double- or not quoted; a value may itself contain commas."""
    m = _CALL.fullmatch(text)
    if not m:
        raise RowError("output is not an API-Request call", text[:80])
    name, inner = m.group(1), m.group(2).strip()
    keys = list(_KEY.finditer(inner)) if inner else []
    if inner and (not keys or keys[0].start() != 0):
        raise RowError("unparseable call arguments", text[:80])
    args = []
    for k, nxt in zip(keys, keys[1:] + [None]):
        raw = inner[k.end(): nxt.start() if nxt else len(inner)].strip()
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            raw = raw[1:-1]
        args.append((k.group(1), raw))
    return name, args


def format_call(name: str, args: list[tuple[str, str]]) -> str:
    """The test's gold rendering: every value in single quotes, nothing escaped."""
    return f"API-Request: [{name}(" + ", ".join(f"{k}='{v}'" for k, v in args) + ")]"


@dataclass
class Level1:
    prompt: str                 # what the model sees (linguamix's rendering: instruction[1:] + "\n" + input)
    completion: str
    api_name: str
    arguments: dict[str, str]
    instruction: str            # test-data style, leading "\n" kept
    input: str
    year: str
    notes: list[str] = field(default_factory=list)  # repairs made (for the report)


def _as_test_result(result: str) -> str:
    """The test shows an API's output as Python's str() of it (`{'token': 'x'}`); a result the training
    file wrote as JSON (`{"token": "x"}`, \\u escapes) is shown the same way, anything else verbatim."""
    if result[:1] not in "{[\"":
        return result
    try:
        return str(json.loads(result))
    except json.JSONDecodeError:
        return result


def _split_turns(lines: list[str]) -> list[str]:
    turns: list[str] = []
    for line in lines:
        if _TURN.match(line) or not turns:
            turns.append(line)
        else:  # a turn's text can span lines
            turns[-1] += "\n" + line
    return turns


def convert(row: dict, *, year_policy: str = "row") -> Level1:
    """One training row -> the level-1 test form; RowError if it has no place there."""
    if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ("instruction", "input", "output")):
        raise RowError("wrong fields", "needs string fields instruction, input, output")
    m = _HEADER.fullmatch(row["instruction"])
    if not m:
        raise RowError("unknown instruction header", row["instruction"][:80])
    notes = []
    time = m.group("time")
    api, args = parse_call(row["output"])
    if api == SEARCHER:
        raise RowError("ToolSearcher gold call (retrieval, not level-1 calling)")
    # descriptions may follow "API descriptions:\n" in the instruction (test style) or open the input
    lines = (m.group("rest") + "\n" + row["input"]).split("\n") if m.group("rest") else row["input"].split("\n")
    given, body = [], []
    for i, line in enumerate(lines):
        if line.startswith("{") and not body:
            try:
                given.append(json.loads(line))
            except json.JSONDecodeError:
                raise RowError("unparseable description", line[:80]) from None
        elif line.strip():
            body.append(line)
    if not body or not body[-1].strip().startswith(CUE):
        raise RowError("input does not end with the cue", row["input"][-40:])
    turns = _split_turns(body[:-1])

    descs: dict[str, dict] = {}
    for d in given:
        d = to_test_schema(d)
        if d["name"] != SEARCHER:
            descs.setdefault(d["name"], d)
    dialogue = []
    for turn in turns:
        if turn.startswith("User:"):
            t = _TIME_SUFFIX.search(turn)
            if t:
                time = time if time != "{{time}}" else t.group(1)
                turn = turn[:t.start()].rstrip()
                notes.append("TIME suffix cut")
            dialogue.append(turn)
        elif turn.startswith("API-Request:"):
            m_turn = _API_TURN.fullmatch(turn)
            if not m_turn:
                raise RowError("unparseable API turn", turn[:80])
            result = m_turn.group(3)
            if m_turn.group(1) == SEARCHER:
                try:
                    found = loose_literal(result)
                except ValueError as e:
                    raise RowError("unparseable ToolSearcher result", f"{e}: {result[:60]}") from None
                for d in (found if isinstance(found, list) else [found]):
                    if isinstance(d, dict) and ("name" in d or "apiCode" in d):
                        d = to_test_schema(d)
                        descs.setdefault(d["name"], d)
                notes.append("ToolSearcher turn -> description")
            else:  # re-rendered as the test renders API turns (brackets, quoted values)
                call = format_call(*parse_call(f"API-Request: [{m_turn.group(1)}({m_turn.group(2)})]"))
                if call != turn[:len(call)]:
                    notes.append("API turn re-rendered")
                shown = _as_test_result(result)
                if shown != result:
                    notes.append("API result JSON -> Python str")
                dialogue.append(f"{call}->{shown}")
        else:
            dialogue.append(turn)

    if api not in descs:
        raise RowError("gold API not described", api)
    completion = format_call(api, args)
    if completion != row["output"].strip():
        notes.append("output re-rendered")
    years = re.findall(r"\b(\d{4})-\d\d-\d\d", time or "")
    year = years[0] if years and year_policy == "row" else TEST_YEAR
    instruction = (TEST_HEADER.format(year=year) + "API descriptions:\n"
                   + "\n".join(json.dumps(d) for d in descs.values()))
    inp = "\n".join(dialogue) + f"\n{CUE}\n"
    return Level1(prompt=instruction.lstrip("\n") + "\n" + inp, completion=completion, api_name=api,
                  arguments=dict(args), instruction=instruction, input=inp, year=year, notes=notes)


# -- checks ----------------------------------------------------------------------------------------
def check_test_form(test_file: Path) -> dict:
    """The test rows' own structure, as this module assumes it."""
    rows = json.loads(test_file.read_text("utf-8"))
    head = TEST_HEADER.format(year=TEST_YEAR) + "API descriptions:\n"
    bad = collections.Counter()
    for r in rows:
        if not r["instruction"].startswith(head):
            bad["header"] += 1
        for line in r["instruction"][len(head):].split("\n"):
            d = json.loads(line)
            if list(d) != ["name", "description", "input_parameters", "output_parameters"] or json.dumps(d) != line:
                bad["description line"] += 1
        if not r["input"].endswith(f"\n{CUE}\n"):
            bad["cue"] += 1
        if not r["expected_output"].startswith("API-Request: ["):
            bad["gold"] += 1
    return {"rows": len(rows), "problems": dict(bad)}


def test_apis(test_file: Path) -> set[str]:
    """Gold API names of the level-1 test (49 in API-Bank): a training API must not be one of them."""
    return {parse_call(r["expected_output"])[0] for r in json.loads(test_file.read_text("utf-8"))}


def check_rows(rows: list[dict], *, year_policy: str = "row", held_out: set[str] = frozenset()) -> dict:
    head_re = re.compile(re.escape(TEST_HEADER.lstrip("\n")).replace(r"\{year\}", r"\d{4}")
                         + re.escape("API descriptions:\n"))
    verdicts = collections.Counter()
    notes = collections.Counter()
    years = collections.Counter()
    seen, dups, apis = set(), 0, set()
    for row in rows:
        try:
            ex = convert(row, year_policy=year_policy)
        except RowError as e:
            verdicts[e.kind] += 1
            continue
        problems = []
        if not head_re.match(ex.prompt):
            problems.append("prompt does not open with the test's instruction lines")
        if re.search(r"\{\{\s*\w+\s*\}\}", ex.prompt + ex.completion):
            problems.append("template placeholder left")
        if not ex.prompt.endswith(f"\n{CUE}\n"):
            problems.append("prompt does not end with the cue")
        if not _CALL.fullmatch(ex.completion) or not ex.completion.startswith("API-Request: ["):
            problems.append("completion is not an API-Request: [...] call")
        for p in problems:
            verdicts[p] += 1
        if problems:
            continue
        key = (ex.prompt, ex.completion)
        if key in seen:
            dups += 1
            verdicts["exact duplicate after conversion"] += 1
            continue
        seen.add(key)
        apis.add(ex.api_name)
        verdicts["ok"] += 1
        years[ex.year] += 1
        for n in set(ex.notes):
            notes[n] += 1
    return {"rows": len(rows), "verdicts": dict(verdicts), "repairs": dict(notes), "distinct_gold_apis": len(apis),
            "years": dict(years), "gold_apis_also_in_test": sorted(apis & held_out)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="API-Bank training rows in the level-1 test form (prototype)")
    p.add_argument("root", help="an API-Bank folder (training-data/, test-data/)")
    p.add_argument("--files", nargs="*", default=None, help="training files (default: training-data/lv*-api-train.json)")
    p.add_argument("--year", choices=["row", "test"], default="row", help="header year: the row's own, or 2023 always")
    p.add_argument("--show", type=int, default=0, help="print N converted rows")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    root = Path(args.root)
    files = [root / f for f in args.files] if args.files else sorted((root / "training-data").glob("lv*-api-train.json"))
    report = {}
    test = root / "test-data" / "level-1-api.json"
    held_out = set()
    if test.exists():
        report["test-data/level-1-api.json"] = check_test_form(test)
        held_out = test_apis(test)
    for f in files:
        try:
            rows = json.loads(f.read_text("utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            print(f"{f}: cannot read JSON ({e})", file=sys.stderr)
            return 2
        report[str(f.relative_to(root))] = check_rows(rows if isinstance(rows, list) else [rows], year_policy=args.year,
                                                     held_out=held_out)
        shown = 0
        for row in rows if isinstance(rows, list) else []:
            if shown >= args.show:
                break
            try:
                ex = convert(row, year_policy=args.year)
            except RowError:
                continue
            print(f"----- {f.name}\n{ex.prompt}{ex.completion}\n")
            shown += 1
    print(json.dumps(report, indent=1) if args.json else "\n".join(f"{k}: {v}" for k, v in report.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

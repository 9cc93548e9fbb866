"""Translation units: what is sent to the model (a whole dialogue file, one training row, one JSONL row) as a
JSON *view*, read from the source files, and how a translated view is put back into the source's form."""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.loaders.apibank import read_dialogue
from ..errors import DataError
from ..store import iter_records, read_json, sha256_file
from ..tasks.api_call import parse_exact, python_literal, render_call
from . import validate as V

DEFAULT_INCLUDE = ("level-1-given-desc/*.jsonl", "training-data/lv*-api-train.json")
"""API-Bank files translated by default: the level-1 test dialogues and the API-call training rows."""
ENGLISH_EXTRAS = ("apis.json", "test-data/*.json")
"""English-only API-Bank files copied into DIR/en: the loader takes the (English) API descriptions there."""


@dataclass(frozen=True)
class Unit:
    """One thing sent to the model: a whole dialogue file, one training row, or one JSONL row."""

    file: str
    """Source path relative to the source folder (the output keeps it)."""
    index: int | None
    """Row index in the file; None for a dialogue file (the file is the unit)."""
    kind: str
    """`turns` or `fields` (see validate)."""
    view: dict[str, Any]
    fixed: tuple[str, ...] = ()
    """Identifier values that must not change (named in the prompt)."""

    def dumps(self) -> str:
        """The view as sent: one turn per line (readable for the model, still compact)."""
        if self.kind == "turns":
            turns = ",\n  ".join(json.dumps(t, ensure_ascii=False) for t in self.view["turns"])
            return '{"turns": [\n  ' + turns + "\n]}"
        return json.dumps(self.view, ensure_ascii=False, indent=1)

    @property
    def label(self) -> str:
        return self.file if self.index is None else f"{self.file}#{self.index}"


@dataclass
class SourceFile:
    rel: str
    path: Path
    fmt: str
    """`dialogue`, `training` (a JSON array of Alpaca rows) or `jsonl`."""
    records: list[Any]
    """Dialogue: the turns; training/jsonl: the rows."""
    units: list[Unit] = field(default_factory=list)
    skeletons: dict[int, Any] = field(default_factory=dict)
    """Training rows: how to put a translated view back into the row's strings."""
    selected: list[int] = field(default_factory=list)
    """Row indices taken (all, unless --limit cut the file)."""

    @property
    def sha256(self) -> str:
        return sha256_file(self.path)


def _fixed_values(turns: list[dict[str, Any]]) -> tuple[str, ...]:
    vals = []
    for t in turns:
        if t["role"] == "API":
            for k, v in t["param_dict"].items():
                if python_literal(v) is None and V.must_preserve(k, v) and v.strip() and v not in vals:
                    vals.append(v)
    return tuple(vals)


def _slim(turn: dict[str, Any]) -> dict[str, Any]:
    if turn["role"] == "API":
        return {"role": "API", "api_name": turn["api_name"], "param_dict": dict(turn["param_dict"])}
    return {"role": turn["role"], "text": turn["text"]}


_USER = re.compile(r"User: (.*?)(TIME: .*)?", re.S)
_OUTPUT_CALL = re.compile(r"(API-Request: )?(\[.*\])(\s*)", re.S)
_OUTPUT_AI = re.compile(r"(AI: )?(.*?)(\s*)", re.S)


def _split_call_line(line: str):
    """`API-Request: [Name(k='v')]->output` -> (call, output) if the call renders back exactly."""
    if not line.startswith("API-Request: ["):
        return None
    body = line[len("API-Request: "):]
    for m in re.finditer(r"\]->", body):
        call = parse_exact(body[:m.start() + 1])
        if call:
            return call, body[m.end():]
    return None


def training_view(row: dict[str, Any]) -> tuple[dict[str, Any], list[tuple]]:
    """An Alpaca row's dialogue (the `input` lines and the `output`) as a turns view, plus the skeleton
    that puts a translated view back. API descriptions, the `TIME:` suffix, tool outputs and calls that
    do not parse stay verbatim; the `instruction` is never translated."""
    turns: list[dict[str, Any]] = []
    skel: list[tuple] = []
    for line in row["input"].split("\n"):
        m = _USER.fullmatch(line)
        call = _split_call_line(line)
        if m:
            skel.append(("user", len(turns), m.group(2) or ""))
            turns.append({"role": "User", "text": m.group(1)})
        elif line.startswith("AI: "):
            skel.append(("ai", len(turns)))
            turns.append({"role": "AI", "text": line[len("AI: "):]})
        elif call:
            parsed, output = call
            skel.append(("api", len(turns), parsed.quotes, output))
            turns.append({"role": "API", "api_name": parsed.api_name, "param_dict": dict(parsed.arguments)})
        else:
            skel.append(("raw", line))
    out = row["output"]
    m = _OUTPUT_CALL.fullmatch(out)
    parsed = parse_exact(m.group(2)) if m else None
    if parsed:
        skel.append(("out_api", len(turns), parsed.quotes, m.group(1) or "", m.group(3)))
        turns.append({"role": "API", "api_name": parsed.api_name, "param_dict": dict(parsed.arguments)})
    elif m is None and out.strip():
        a = _OUTPUT_AI.fullmatch(out)
        skel.append(("out_ai", len(turns), a.group(1) or "", a.group(3)))
        turns.append({"role": "AI", "text": a.group(2)})
    else:
        skel.append(("out_raw", out))
    return {"turns": turns}, skel


def rebuild_training_row(row: dict[str, Any], skel: list[tuple], view: dict[str, Any], row_id: str) -> dict[str, Any]:
    turns = view["turns"]
    lines, output = [], row["output"]
    for entry in skel:
        tag = entry[0]
        if tag == "raw":
            lines.append(entry[1])
        elif tag == "user":
            lines.append(f"User: {turns[entry[1]]['text']}{entry[2]}")
        elif tag == "ai":
            lines.append(f"AI: {turns[entry[1]]['text']}")
        elif tag == "api":
            t = turns[entry[1]]
            lines.append(f"API-Request: {render_call(t['api_name'], t['param_dict'], entry[2])}->{entry[3]}")
        elif tag == "out_api":
            t = turns[entry[1]]
            output = f"{entry[3]}{render_call(t['api_name'], t['param_dict'], entry[2])}{entry[4]}"
        elif tag == "out_ai":
            output = f"{entry[2]}{turns[entry[1]]['text']}{entry[3]}"
    new = dict(row)
    new["input"], new["output"] = "\n".join(lines), output
    new.setdefault("id", row_id)
    return new


def rebuild_dialogue(turns: list[dict[str, Any]], view: dict[str, Any]) -> list[dict[str, Any]]:
    """Source turns with translated text and arguments; tool results unchanged except `result.input`,
    which follows the translated arguments where it held the same value as `param_dict`."""
    out = []
    for src, tr in zip(turns, view["turns"]):
        new = copy.deepcopy(src)
        if src["role"] != "API":
            new["text"] = tr["text"]
            out.append(new)
            continue
        new["param_dict"] = {k: tr["param_dict"][k] for k in src["param_dict"]}
        result = new.get("result")
        typed = result.get("input") if isinstance(result, dict) else None
        for k, old in src["param_dict"].items():
            value = new["param_dict"][k]
            if value == old or not isinstance(typed, dict) or k not in typed:
                continue
            if typed[k] == old:
                typed[k] = value
            elif (lit := python_literal(old)) is not None and _same(typed[k], lit):
                typed[k] = python_literal(value)
        out.append(new)
    return out


def _same(a: Any, b: Any) -> bool:
    norm = (lambda x: json.loads(json.dumps(x, default=list)))
    return norm(a) == norm(b)


def load_api_bank_sources(source_dir: Path, include: list[str], limit: int | None) -> list[SourceFile]:
    files = _glob(source_dir, include)
    out, budget = [], limit if limit is not None else float("inf")
    for path in files:
        rel = path.relative_to(source_dir).as_posix()
        if path.suffix == ".jsonl":
            turns = read_dialogue(path)
            sf = SourceFile(rel, path, "dialogue", turns, selected=[0])
            if turns:
                if budget <= 0:
                    continue
                budget -= 1
                view = {"turns": [_slim(t) for t in turns]}
                sf.units.append(Unit(rel, None, "turns", view, _fixed_values(view["turns"])))
            out.append(sf)
        elif path.suffix == ".json":
            rows = _read_rows(path)
            sf = SourceFile(rel, path, "training", rows)
            for i, row in enumerate(rows):
                if budget <= 0:
                    break
                if not (isinstance(row, dict) and all(isinstance(row.get(k), str) for k in ("input", "output"))):
                    raise DataError(f"{path}: row {i}: needs string fields 'input' and 'output' (Alpaca style)")
                budget -= 1
                sf.selected.append(i)
                view, skel = training_view(row)
                sf.skeletons[i] = skel
                if view["turns"]:
                    sf.units.append(Unit(rel, i, "turns", view, _fixed_values(view["turns"])))
            if sf.selected:
                out.append(sf)
        else:
            raise DataError(f"{path}: cannot translate this file (API-Bank mode takes dialogue .jsonl files and "
                            f"training .json files)")
    return out


def load_jsonl_sources(source: Path, include: list[str], fields: list[str], limit: int | None) -> tuple[Path, list[SourceFile]]:
    base = source if source.is_dir() else source.parent
    files = _glob(base, include) if source.is_dir() else [source]
    out, budget = [], limit if limit is not None else float("inf")
    for path in files:
        rel = path.relative_to(base).as_posix()
        rows = [r for _, r in iter_records(path)]
        sf = SourceFile(rel, path, "jsonl", rows)
        for i, row in enumerate(rows):
            if budget <= 0:
                break
            for f in fields:
                if not isinstance(row, dict) or not isinstance(row.get(f), str):
                    raise DataError(f"{path}: row {i}: field '{f}' is missing or not a string")
            budget -= 1
            sf.selected.append(i)
            view = {f: row[f] for f in fields}
            if any(v.strip() for v in view.values()):
                sf.units.append(Unit(rel, i, "fields", view))
        if sf.selected:
            out.append(sf)
    return base, out


def _glob(base: Path, patterns: list[str]) -> list[Path]:
    found: dict[str, Path] = {}
    for pattern in patterns:
        for p in sorted(base.glob(pattern)):
            if p.is_file():
                found.setdefault(p.relative_to(base).as_posix(), p)
    if not found:
        raise DataError(f"{base}: no source files match {', '.join(patterns)}")
    return [found[k] for k in sorted(found)]


def _read_rows(path: Path) -> list[Any]:
    rows = read_json(path)
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a JSON array of rows")
    return rows


def response_schema(unit: Unit) -> dict[str, Any]:
    """JSON schema of the expected answer: same keys, roles and API names fixed, identifier values fixed."""
    def obj(props: dict[str, Any]) -> dict[str, Any]:
        return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}

    if unit.kind == "fields":
        return obj({k: {"type": "string"} for k in unit.view})
    items = []
    for t in unit.view["turns"]:
        if t["role"] == "API":
            params = {k: ({"enum": [v]} if V.must_preserve(k, v) and python_literal(v) is None else {"type": "string"})
                      for k, v in t["param_dict"].items()}
            items.append(obj({"role": {"enum": ["API"]}, "api_name": {"enum": [t["api_name"]]},
                              "param_dict": obj(params)}))
        else:
            items.append(obj({"role": {"enum": [t["role"]]}, "text": {"type": "string"}}))
    n = len(items)
    return obj({"turns": {"type": "array", "prefixItems": items, "items": False, "minItems": n, "maxItems": n}})

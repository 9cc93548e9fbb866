"""API-Bank's call grammar, in one place: `API-Request: [Name(key='value', ...)]`.

Writing (`format_invocation`, `render_call`, `format_call`, `render_turn`) is API-Bank's own rendering:
every value in single quotes (or the quote the source used), nothing escaped. Reading (`parse_api_call`)
is shared by the scorer, the data loaders, the translator and its validator, and never evaluates its
input:

1. the first `[Name(` ... `)]` on its line (the `API-Request:` prefix is optional; a second call after
   `->` is ignored);
2. `ast.parse("f(<args>)")` and `ast.literal_eval` of each keyword value, trying each `)]` on the line
   from the first (a value may itself contain `)]`); at most `MAX_AST_TRIES` of them, so a line with
   thousands of `)]` stays linear;
3. if no `)]` gives valid Python (the 31 API-Bank gold calls with unescaped inner quotes,
   `health_data='[{'name': 'x'}]'`): split at `, key=` boundaries outside brackets and strip one
   pair of matching quotes per value (`date=2023-01-01` keeps its raw text).

Positional arguments and `**kwargs` are parse failures. Duplicate keys: the last one wins and the key
is recorded in `ApiCall.duplicate_keys`. `parse_exact` accepts a text only if it is one call that
renders back byte for byte (what the translator needs to put a translated call back in place).
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any, Literal

PREFIX = "API-Request:"
"""Starts every call in API-Bank's dialogues and the completion a model is trained to write."""
MAX_AST_TRIES = 64
"""Closing `)]` candidates tried with Python's parser before the splitter takes over."""


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
    quotes: dict[str, str] = field(default_factory=dict, compare=False)
    """The quote each argument was written with (`'`, `"` or `` for a bare value): `render_call` writes
    the call back the way it was read."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used in prediction files and as the gold: `{"api_name", "arguments"}`."""
        return {"api_name": self.api_name, "arguments": dict(self.arguments)}


@dataclass(frozen=True)
class ParseFailure:
    reason: str
    kind: Literal["no_call", "parse_failure"] = "parse_failure"
    """`no_call`: nothing that looks like `[Name(`; `parse_failure`: a call that cannot be read."""

    def __bool__(self) -> bool:  # `if parse_api_call(text):` reads naturally
        return False


# -- writing ------------------------------------------------------------------------------------------
def format_invocation(api_name: str, arguments: dict[str, str], quotes: dict[str, str] | None = None) -> str:
    """`Name(key='value', ...)`: every value in single quotes (or its own quote from `quotes`), unescaped."""
    q = quotes or {}
    return f"{api_name}(" + ", ".join(f"{k}={q.get(k, chr(39))}{v}{q.get(k, chr(39))}"
                                      for k, v in arguments.items()) + ")"


def render_call(api_name: str, arguments: dict[str, str], quotes: dict[str, str] | None = None) -> str:
    """`[Name(key='value', ...)]`, as it appears after `API-Request: `."""
    return f"[{format_invocation(api_name, arguments, quotes)}]"


def format_call(api_name: str, arguments: dict[str, str]) -> str:
    """The completion: `API-Request: [Name(key='value', ...)]`."""
    return f"{PREFIX} {render_call(api_name, arguments)}"


def render_turn(turn: dict[str, Any]) -> str:
    """One dialogue turn as API-Bank's prompts show it: `User: ...`, `AI: ...`, or
    `API-Request: [Name(k='v')]->{output}` (the tool's answer after the arrow)."""
    role = turn.get("role")
    if role in ("User", "AI"):
        return f"{role}: {turn['text']}"
    return f"{PREFIX} {render_call(turn['api_name'], turn['param_dict'])}->{turn['result']['output']}"


# -- reading ------------------------------------------------------------------------------------------
_CALL_START = re.compile(r"\[\s*([^\W\d]\w*)\s*\(")
_CLOSE = re.compile(r"\)\s*\]")
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
    ends = [m.start() for m in _CLOSE.finditer(text, start.end(), line_end)]
    if not ends:
        return ParseFailure(f"call to {name} has no closing ')]'")
    for end in ends[:MAX_AST_TRIES]:
        args = text[start.end():end]
        try:
            arguments, dups, quotes = _parse_ast(args)
        except _Positional as e:
            return ParseFailure(f"{name}: {e}")
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue
        return ApiCall(name, arguments, dups, "ast", prefixed, quotes)
    try:
        arguments, dups, quotes = _parse_fallback(text[start.end():ends[0]])
    except ValueError as e:
        return ParseFailure(f"{name}: {e}")
    return ApiCall(name, arguments, dups, "fallback", prefixed, quotes)


def parse_exact(text: str) -> ApiCall | None:
    """`text` read as exactly one `[Name(...)]` call that `render_call` writes back byte for byte, or None."""
    call = parse_api_call(text)
    if isinstance(call, ApiCall) and not call.duplicate_keys and \
            render_call(call.api_name, call.arguments, call.quotes) == text:
        return call
    return None


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


def _parse_ast(args: str) -> tuple[dict[str, str], tuple[str, ...], dict[str, str]]:
    source = f"f({args})"
    call = ast.parse(source, mode="eval").body
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name) or call.func.id != "f":
        raise ValueError("not a single call")  # e.g. args = "a='1')(b='2'"
    if call.args:
        raise _Positional("positional arguments are not allowed (use key='value')")
    out: dict[str, str] = {}
    quotes: dict[str, str] = {}
    dups: list[str] = []
    for kw in call.keywords:
        if kw.arg is None:
            raise _Positional("**kwargs are not allowed")
        if kw.arg in out:
            dups.append(kw.arg)
        segment = ast.get_source_segment(source, kw.value) or ""
        if isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
            out[kw.arg] = kw.value.value
            quotes[kw.arg] = segment[:1] if segment[:1] in "'\"" else ""
        else:  # True, -1, [..], a bare name: their source text
            out[kw.arg], quotes[kw.arg] = segment, ""
    return out, tuple(dict.fromkeys(dups)), quotes


def _parse_fallback(args: str) -> tuple[dict[str, str], tuple[str, ...], dict[str, str]]:
    if not args.strip():
        return {}, (), {}
    first = _FIRST_KEY.match(args)
    if first is None:
        raise ValueError("positional or malformed argument (use key='value')")
    # boundaries `, key=` that are not inside brackets; with unbalanced brackets, take every boundary
    depth = _depths(args)
    candidates = list(_KEY_BOUNDARY.finditer(args, first.end()))
    bounds = [m for m in candidates if depth[m.start()] == depth[first.end()]]
    if depth[len(args)] != depth[first.end()]:
        bounds = candidates
    keys = [first.group(1)] + [m.group(1) for m in bounds]
    value_starts = [first.end()] + [m.end() for m in bounds]
    value_ends = [m.start() for m in bounds] + [len(args)]
    out: dict[str, str] = {}
    quotes: dict[str, str] = {}
    dups: list[str] = []
    for key, a, b in zip(keys, value_starts, value_ends):
        if key in out:
            dups.append(key)
        out[key], quotes[key] = _strip_quotes(args[a:b].strip())
        if not quotes[key] and ("'" in out[key] or '"' in out[key]):  # `x='1', 2`: not one bare value
            raise ValueError(f"malformed value of {key!r} (quote it: {key}='...')")
    return out, tuple(dict.fromkeys(dups)), quotes


def _depths(s: str) -> list[int]:
    """Bracket depth before each position of `s` (len(s) + 1 entries): one pass, not one per boundary."""
    out = [0] * (len(s) + 1)
    depth = 0
    for i, ch in enumerate(s):
        out[i] = depth
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
    out[len(s)] = depth
    return out


def _strip_quotes(v: str) -> tuple[str, str]:
    """(value, quote): one pair of matching outer quotes off; escapes are honoured when the value is a
    valid literal."""
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
        try:
            lit = ast.literal_eval(v)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            return v[1:-1], v[0]
        return (lit, v[0]) if isinstance(lit, str) else (v[1:-1], v[0])
    return v, ""


def python_literal(value: str, *, max_chars: int = 20_000) -> Any:
    """A Python-literal list/dict/tuple inside an argument string (API-Bank writes lists that way), or None."""
    v = value.strip()
    if not v or v[0] not in "[{(" or len(v) > max_chars:
        return None
    try:
        lit = ast.literal_eval(v)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return lit if isinstance(lit, (list, dict, tuple)) else None

"""API calling in API-Bank's level-1 prompt form (Li et al. 2023): API-Bank and mAPICall-Bank.

    {instruction: task header + "API descriptions:" + one JSON line per API}\\n
    User: ...\\nAI: ...\\nAPI-Request: [Name(k='v')]->{output}\\n ...\\nGenerate API Request:\\n   <- prompt
    API-Request: [ApiName(key='value', ...)]                                                  <- completion

API names, parameter keys and the descriptions stay English in every language (mAPICall-Bank keeps
them so); the dialogue is in the item's language. The call grammar is `api_call`.

Scoring: a prediction is correct iff the API name, the set of argument names and every value equal the
gold after canonicalisation (`canonical_value`): values as strings, outer whitespace stripped, Unicode
NFC; list/dict-like strings parsed with `ast.literal_eval` and compared as structures (so
`"['a', 'b']"`, `['a','b']` and `'[\\'a\\', \\'b\\']'` are equal); non-string literals compared by their
source text (`on=True` equals the gold string `"True"`). No case or punctuation folding: this is
stricter than API-Bank's own execution-based checker (docs eval_anchors §3.3), so numbers are not
comparable with API-Bank's published level-1 accuracy. Errors are classified so that parse failures
are counted apart from wrong calls: `no_call`, `parse_failure`, `name_mismatch`, `key_mismatch`,
`value_mismatch`.
"""
from __future__ import annotations

import ast
import unicodedata
from typing import Any, Iterable, Mapping, Sequence

from ..records import ApiItem, Example, ItemScore
from .api_call import ApiCall, ParseFailure, format_call, gold_call, parse_api_call
from .base import cut_at_stop

NAME = "api"
LEVEL1_TIME = "The current year is 2023."
"""The header's second line in every level-1 test prompt."""


def level1_header(time_line: str = LEVEL1_TIME) -> str:
    """API-Bank's level-1 instruction header with the given second line (`LEVEL1_HEADER` has the test's)."""
    return ("\nGenerate an API request in the format of [ApiName(key1='value1', key2='value2', ...)] based on "
            f"the previous dialogue context.\n{time_line}\nInput: \nUser: User's utterence\nAI: "
            "AI's response\n\nExpected output:\nAPI-Request: [ApiName(key1='value1', key2='value2', ...)]\n\n"
            "API descriptions:\n")


LEVEL1_HEADER = level1_header()
"""API-Bank's level-1 instruction header, verbatim (its typos included): the prompt models are tested with;
one JSON line per API description follows it (keys name, description, input_parameters,
output_parameters, `json.dumps` defaults). Training rows are put in this same form (data.loaders.apibank_train)."""
CUE = "Generate API Request:"
STOP = ("\n",)
"""A call is one line; the API-Bank context shows `API-Request: [..]->result`, so a base model goes on."""
MAX_CHARS = 4096
"""Scored characters of a completion (after the stop cut): a call is one line; a degenerate generation
of megabytes must not stall the scorer. Longer completions are cut here and say so in `detail`."""
ERROR_KINDS = ("no_call", "parse_failure", "name_mismatch", "key_mismatch", "value_mismatch")
WRONG_CALL = ("name_mismatch", "key_mismatch", "value_mismatch")


class ApiTask:
    name = NAME
    stop = STOP
    formats = ("api-bank", "mapicall-bank", "synthetic-api")
    loaders: Mapping[str, Any] = {}
    modes = ("default",)
    gold = "the gold call: {\"api_name\", \"arguments\"} or a string \"[Name(key='value')]\""

    def render(self, item: ApiItem) -> Example:
        # the dialogue is kept byte-exact (API-Bank has turns with trailing spaces)
        context = f"{item.dialogue}\n" if item.dialogue else ""
        prompt = f"{item.instruction.strip()}\n{context}{CUE}\n"
        completion = (item.target or format_call(item.api_name, item.arguments)).strip()
        return Example(task=NAME, item_id=item.item_id, lang=item.lang, prompt=prompt, completion=completion,
                       gold={"api_name": item.api_name, "arguments": dict(item.arguments)})

    def parse_gold(self, gold: Any) -> ApiCall:
        return gold_call(gold)

    def score(self, completion: str, gold: Any, lang: str, *, mode: str = "default") -> ItemScore:
        if mode != "default":
            raise ValueError(f"mode {mode!r} exists only for the math task")
        return score_api(completion, gold, stop=STOP)

    def summary_counts(self, details: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        kinds = [d.get("error_kind") for d in details]
        return {"no_call": kinds.count("no_call"), "parse_failures": kinds.count("parse_failure"),
                "wrong_calls": sum(k in WRONG_CALL for k in kinds)}


def score_api(completion: str, gold: Any, *, stop: Iterable[str] | None = STOP) -> ItemScore:
    """Score one completion against a gold call (`{"api_name", "arguments"}` or a call string).

    Leading whitespace is dropped before cutting at `stop` (None or () keeps the whole text), so a
    completion that opens with a blank line still counts; then at most MAX_CHARS are read.
    Raises ValueError for an unreadable gold.
    """
    gold_parsed = gold_call(gold)
    text = cut_at_stop(completion.lstrip(), stop)
    clipped = len(text) > MAX_CHARS
    pred = parse_api_call(text[:MAX_CHARS])
    extra = {"clipped_at": MAX_CHARS} if clipped else {}
    if isinstance(pred, ParseFailure):
        return ItemScore(None, False, False, False, {"error_kind": pred.kind, "parse_error": pred.reason,
                                                     "mismatch": None, "duplicate_keys": [], **extra})
    kind, detail = compare_calls(pred, gold_parsed)
    correct = kind is None
    return ItemScore(pred.to_dict(), correct, correct and pred.prefixed, correct,
                     {"error_kind": kind, "parse_error": None, "mismatch": detail,
                      "duplicate_keys": list(pred.duplicate_keys), **extra})


def compare_calls(pred: ApiCall, gold: ApiCall) -> tuple[str | None, str | None]:
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


TASK = ApiTask()

"""Answer scorers: pure functions from (completion, gold) to a verdict, shared by `linguamix evaluate`
and `linguamix score`.

- `score_math(completion, gold, lang)`: final number of a chain of thought in any language of the
  table (`scoring.math`); `mode="mcot_compat"` reproduces mCoT's scorer.
- `score_api(completion, gold)`: `API-Request: [Name(k='v')]` against a gold call (`scoring.api`).
- `score_item(task, completion, gold, lang)`: either of the two behind one record (`ItemScore`).
- `summarize(rows, group="lang")`: per-language n / correct / accuracy / Wilson interval, plus
  strict/lenient accuracy (math) and parse-failure counts (API).
- `cut_at_stop(text, stops)`: the post-processing cut every generation backend applies.

Convention: the primary verdict `correct` is the lenient one for math (any extracted number equal to the
gold) and the exact call match for API; `strict` additionally needs the answer phrase / `\\boxed{}`
(math) or the `API-Request:` prefix (API).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping

from .api import (DEFAULT_API_STOP, ApiCall, ApiScore, ParseFailure, canonical_value, compare_calls,
                  gold_call, parse_api_call, score_api)
from .math import (DEFAULT_MATH_STOP, MODES, MathExtraction, MathScore, cut_at_stop, extract_math_answer,
                   fold_digits, parse_gold, parse_number, score_math)

TASKS = ("math", "api")
DEFAULT_STOP = {"math": DEFAULT_MATH_STOP, "api": DEFAULT_API_STOP}
"""Stop strings per task, for the generation backends and the post-generation cut."""
API_ERROR_KINDS = ("no_call", "parse_failure", "name_mismatch", "key_mismatch", "value_mismatch")


class _TaskStop:
    def __repr__(self) -> str:
        return "TASK_STOP"


TASK_STOP: Any = _TaskStop()
"""Default of `stop=`: the task's `DEFAULT_STOP` (None or () means: do not cut)."""


@dataclass(frozen=True)
class ItemScore:
    """One scored completion, task-independent (maps onto `records.Prediction`)."""

    prediction: Any
    """Math: the extracted number or None. API: `{"api_name", "arguments"}` or None."""
    correct: bool
    strict: bool
    lenient: bool
    detail: dict[str, Any] = field(default_factory=dict)
    """Math: `route`, `text`. API: `error_kind`, `parse_error`, `mismatch`, `duplicate_keys`."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_item(task: str, completion: str, gold: Any, lang: str, *, mode: str = "default",
               stop: Iterable[str] | None = TASK_STOP) -> ItemScore:
    """Score one completion of `task` (`math` or `api`).

    `stop`: by default the task's stop strings (`DEFAULT_STOP`); None or () scores the whole text.
    `mode` is for math only (`default` or `mcot_compat`). Raises ValueError for an unusable gold.
    """
    if task in TASKS and stop is TASK_STOP:
        stop = DEFAULT_STOP[task]
    if task == "math":
        s = score_math(completion, gold, lang, stop=stop, mode=mode)
        return ItemScore(s.prediction, s.correct, s.strict_correct, s.lenient_correct,
                         {"route": s.route, "text": s.text})
    if task == "api":
        if mode != "default":
            raise ValueError(f"mode {mode!r} exists only for the math task")
        a = score_api(completion, gold, stop=stop)
        return ItemScore(a.prediction, a.correct, a.strict_correct, a.lenient_correct,
                         {"error_kind": a.error_kind, "parse_error": a.parse_error, "mismatch": a.mismatch,
                          "duplicate_keys": list(a.duplicate_keys)})
    raise ValueError(f"unknown task {task!r} (choose from {', '.join(TASKS)})")


INPUT_FIELDS = ("id", "lang", "completion", "answer")


def score_row(row: Any, task: str, *, mode: str = "default", stop: Iterable[str] | None = TASK_STOP
              ) -> dict[str, Any]:
    """Validate and score one prediction-file row `{"id", "lang", "completion", "answer"}`.

    Returns the row with `prediction`, `correct`, `strict` and `detail` added (`linguamix score`'s
    output format). Raises ValueError naming the offending field; the caller adds file and line.
    """
    from .. import languages

    if not isinstance(row, Mapping):
        raise ValueError(f"expected a JSON object with fields {', '.join(INPUT_FIELDS)}")
    missing = [k for k in INPUT_FIELDS if k not in row]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(repr(k) for k in missing)}")
    if not isinstance(row["completion"], str):
        raise ValueError(f"field 'completion' must be a string, got {type(row['completion']).__name__}")
    lang = row["lang"]
    if not isinstance(lang, str) or not lang:
        raise ValueError("field 'lang' must be a language code")
    if task == "math" and not languages.is_known(lang):
        raise ValueError(f"field 'lang': unknown language code {lang!r} (known: {', '.join(languages.codes())})")
    try:  # a bad gold is a data error of this row, not a wrong prediction
        if task == "math":
            parse_gold(row["answer"])
        elif task == "api":
            gold_call(row["answer"])
    except ValueError as e:
        raise ValueError(f"field 'answer': {e}") from None
    s = score_item(task, row["completion"], row["answer"], lang, mode=mode, stop=stop)
    return {**row, "prediction": s.prediction, "correct": s.correct, "strict": s.strict, "detail": s.detail}


def _get(row: Any, key: str) -> Any:
    """A field of a scored row: top level first, then inside `detail` (records.Prediction layout)."""
    if not isinstance(row, Mapping):
        row = row.to_dict()
    if key in row:
        return row[key]
    detail = row.get("detail")
    return detail.get(key) if isinstance(detail, Mapping) else None


def _has(rows: list[Any], key: str) -> bool:
    """Whether any row carries `key` (even as null: an all-correct API file has no error kinds)."""
    for r in rows:
        r = r if isinstance(r, Mapping) else r.to_dict()
        if key in r or (isinstance(r.get("detail"), Mapping) and key in r["detail"]):
            return True
    return False


def summarize(rows: Iterable[Any], group: str | None = "lang") -> list[dict[str, Any]]:
    """Per-group accuracy of scored rows (dicts, or records with `to_dict`), groups in first-seen order.

    Each row needs `correct` and the `group` field. Every output row has `group`'s value, `n`,
    `correct`, `accuracy`, `ci_low`, `ci_high` (95% Wilson); rows with `strict` add `strict_correct`,
    `strict_accuracy`, `lenient_accuracy` (math); rows with `error_kind` (top level or in `detail`)
    add `no_call`, `parse_failures` and `wrong_calls` (API). `group=None` gives one row for all rows.
    """
    from ..analysis.stats import wilson_interval

    rows = list(rows)
    groups: dict[Any, list[Any]] = {}
    for r in rows:
        groups.setdefault(_get(r, group) if group else None, []).append(r)
    with_strict = _has(rows, "strict")
    with_errors = _has(rows, "error_kind")
    out = []
    for key, members in groups.items():
        n = len(members)
        correct = sum(bool(_get(r, "correct")) for r in members)
        lo, hi = wilson_interval(correct, n)
        row: dict[str, Any] = {group: key} if group else {}
        row.update(n=n, correct=correct, accuracy=correct / n, ci_low=lo, ci_high=hi)
        if with_strict:
            strict = sum(bool(_get(r, "strict")) for r in members)
            lenient = sum(bool(_get(r, "lenient") if _get(r, "lenient") is not None else _get(r, "correct"))
                          for r in members)
            row.update(strict_correct=strict, strict_accuracy=strict / n, lenient_accuracy=lenient / n)
        if with_errors:
            kinds = [_get(r, "error_kind") for r in members]
            row.update(no_call=kinds.count("no_call"), parse_failures=kinds.count("parse_failure"),
                       wrong_calls=sum(k in ("name_mismatch", "key_mismatch", "value_mismatch") for k in kinds))
        out.append(row)
    return out


__all__ = [
    "TASKS", "DEFAULT_STOP", "DEFAULT_MATH_STOP", "DEFAULT_API_STOP", "TASK_STOP", "MODES", "API_ERROR_KINDS",
    "ItemScore", "score_item", "score_row", "INPUT_FIELDS", "summarize", "cut_at_stop",
    "MathExtraction", "MathScore", "extract_math_answer", "score_math", "fold_digits", "parse_number",
    "parse_gold",
    "ApiCall", "ParseFailure", "ApiScore", "parse_api_call", "score_api", "gold_call", "compare_calls",
    "canonical_value",
]

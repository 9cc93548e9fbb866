"""Math answer scorer: the final number of a chain-of-thought completion, in any language of the table.

Published scorers misread non-English answers (French `27 000`, German `1.500`, Bengali digits, see
docs eval_anchors §1.5 and §2.3). The default extractor here follows eval_anchors §7:

1. cut the completion at the first stop string (the task's, `tasks.math.STOP`; see `cut_at_stop`);
2. fold every Unicode decimal digit to ASCII (`১৮` -> `18`, `１８` -> `18`), `−` -> `-`, `，．` -> `,.`;
   nothing else is normalised (no NFKC: `m²` must not become `m2`);
3. route `boxed`: the last number inside the last `\\boxed{...}` / `\\fbox{...}`;
4. route `phrase`: after the last answer phrase (the language's `answer_phrases`, plus English's, since
   models code-switch), on the rest of that line: the number after the last `=` if any, else the first
   number; a phrase followed only by a line break looks at the next non-empty line;
5. route `last_number`: the last number anywhere.

Number grammar (after folding; `language.number_format` decides the ambiguous forms):
- thousands groups: `1,000` / `1,000,000` and Indian `1,00,000`; space, NBSP, NNBSP, thin or figure space
  before exactly three digits (`20 000`); `.` before three digits only where `.` is a group separator of
  the language (de/es `1.500` = 1500; elsewhere `1.500` = 1.5), except that two or more `.ddd` groups
  (`1.000.000`) are thousands everywhere;
- a comma followed by three digits is a thousands separator in every language, including the
  decimal-comma ones (de `1,500` = 1500, eval_anchors §7 rule 5): MGSM answers are integers, and a final
  answer with exactly three decimals is far rarer than a copied English-style `2,125` (in mCoT-7B's
  de/fr/es/ru outputs `d,ddd` occurs 16 times, as `$22,500` or mid-computation `* 1,025`; it is the
  extracted answer once, fr `1,695` for gold 15, wrong under either reading);
- decimal comma (`1,5` -> 1.5) only in languages whose decimal separator is `,`; elsewhere `3,4` is two
  numbers;
- a leading `-` is a sign only when it is not glued to a preceding word character or `.` and does not
  follow `digit + space` (`12-4` and `12 - 4` -> 4, `x = -5` -> -5).

Scores: `strict` = the number came from an answer phrase or `\\boxed{}` and equals the gold; `lenient` =
whatever was extracted equals the gold. The primary verdict `correct` is `lenient` (a right number in
the last sentence counts even without the phrase; `strict` is reported beside it).

`mode="mcot_compat"` reproduces mCoT's own scorer (laihuiyuan/mCoT `evlauation/infer.py` + `util.py`)
bit for bit, accidents included; see `_mcot_compat`.
"""
from __future__ import annotations

import bisect
import math
import re
import unicodedata
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Iterable, Literal

from .. import languages
from .base import cut_at_stop

MODES = ("default", "mcot_compat")
MAX_CHARS = 16_384
"""Characters of a completion the extractor reads (after the stop cut): the last ones, where the answer
is. mCoT-7B's longest MGSM answer has 5,723; the bound keeps a degenerate megabyte-long generation from
stalling an evaluation (every step below is linear in what is read)."""
PIVOT_LANG = "en"
"""Answer phrases of this language are accepted in every language, because models switch to English
for the final sentence (lm-eval even scores bn with the English phrase)."""

Route = Literal["boxed", "phrase", "last_number"]


# -- records ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MathExtraction:
    value: float | None
    """The extracted number, or None when the completion has no number."""
    route: Route | None
    """Where it came from: `boxed`, `phrase` (after an answer phrase), `last_number`, or None."""
    strict: bool
    """True when the number was marked as the answer (answer phrase or `\\boxed{}`)."""
    text: str
    """The number as written in the completion (`20 000`, `১৮`); empty when nothing was found."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MathScore:
    prediction: float | None
    correct: bool
    """The primary verdict: equal to `lenient_correct` (mcot_compat: mCoT's verdict)."""
    strict_correct: bool
    """An answer phrase (or `\\boxed{}`) was found and the number after it equals the gold."""
    lenient_correct: bool
    """The extracted number (any route) equals the gold."""
    route: Route | None
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- text normalisation ------------------------------------------------------------------------------
_NON_ASCII_DIGIT = re.compile(r"(?![0-9])\d")  # str-pattern \d is exactly Unicode category Nd
_SYMBOLS = str.maketrans({"\u2212": "-", "\uff0d": "-", "\uff0c": ",", "\uff0e": "."})


def fold_digits(text: str) -> str:
    """Map every Unicode decimal digit to its ASCII digit and minus / full-width separators to ASCII.

    Character for character (same length), so positions in the folded text are positions in the original.
    Superscripts and other non-decimal numerals (`²`, `½`, `Ⅻ`) are left alone on purpose.
    """
    text = _NON_ASCII_DIGIT.sub(lambda m: str(unicodedata.decimal(m.group())), text)
    return text.translate(_SYMBOLS)


# -- number grammar -----------------------------------------------------------------------------------
_SPACES = "[ \u00a0\u202f\u2009\u2007]"  # space, NBSP, narrow NBSP (fr), thin space, figure space
_END = "(?![0-9])"


@dataclass(frozen=True)
class _Number:
    value: float
    start: int
    end: int


@lru_cache(maxsize=None)
def _number_regex(decimal: str, groups: tuple[str, ...]) -> re.Pattern:
    """Alternatives in priority order; the first that matches at a position wins (then finditer moves on)."""
    dec = re.escape(decimal)
    sign = r"(?P<sign>(?<![\w.])(?<![0-9]\s)-)?"  # `12-4` and `12 - 4` are subtractions, `x=-5` is negative
    alts = [
        rf"(?P<space>[0-9]{{1,3}}(?:{_SPACES}[0-9]{{3}})+{_END}(?:{dec}[0-9]+)?)",
        rf"(?P<indian>[0-9]{{1,2}}(?:,[0-9]{{2}})+,[0-9]{{3}}{_END}(?:\.[0-9]+)?)",
        rf"(?P<comma>[0-9]{{1,3}}(?:,[0-9]{{3}})+{_END}(?:\.[0-9]+)?)",
    ]
    if "." in groups:
        alts.append(rf"(?P<dot>[0-9]{{1,3}}(?:\.[0-9]{{3}})+{_END}(?:{dec}[0-9]+)?)")
    else:  # a single `.ddd` is a decimal here, but `1.000.000` can only be thousands
        alts.append(rf"(?P<dot>[0-9]{{1,3}}(?:\.[0-9]{{3}}){{2,}}{_END})")
    alts.append(r"(?P<decimal>[0-9]+\.[0-9]+)")
    if decimal == ",":
        alts.append(r"(?P<decimal_comma>[0-9]+,[0-9]+)")
    alts.append(r"(?P<integer>[0-9]+)")
    return re.compile(sign + "(?:" + "|".join(alts) + ")")


def _to_float(kind: str, body: str, decimal: str) -> float:
    if kind in ("integer", "decimal"):
        return float(body)
    if kind == "decimal_comma":
        return float(body.replace(",", "."))
    if kind in ("comma", "indian"):
        return float(body.replace(",", ""))
    # `space` / `dot` groups, possibly ending in the language's decimal separator (`1.234,5`, `20 000,5`)
    whole, frac = body, ""
    if decimal in body and not (kind == "dot" and decimal == "."):
        whole, frac = body.rsplit(decimal, 1)
    digits = re.sub(r"[^0-9]", "", whole)
    return float(f"{digits}.{frac}" if frac else digits)


def find_numbers(text: str, lang: str) -> list[_Number]:
    """Every number in already-folded `text`, read with `lang`'s separators."""
    nf = languages.get(lang).number_format
    out = []
    for m in _number_regex(nf.decimal, tuple(nf.group)).finditer(text):
        kind = m.lastgroup
        value = _to_float(kind, m.group(kind), nf.decimal)
        out.append(_Number(-value if m.group("sign") else value, m.start(), m.end()))
    return out


def parse_number(text: str, lang: str) -> float | None:
    """The first number in `text` (digits folded, `lang`'s conventions), or None: `parse_number("20 000", "fr")`."""
    nums = find_numbers(fold_digits(text), lang)
    return nums[0].value if nums else None


# -- extraction ---------------------------------------------------------------------------------------
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE = re.compile(r"[{}]")
_DIGIT = re.compile(r"[0-9]")
_NEWLINE = re.compile(r"\n")
_NONSPACE = re.compile(r"\S")


def _last_boxed(text: str) -> tuple[int, int] | None:
    """(start, end) of the content of the last `\\boxed{...}` whose brace is closed (one pass over the
    braces, so a text with thousands of unclosed boxes stays linear)."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        return None
    closing: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE.finditer(text):
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            closing[stack.pop()] = m.start()
    for start in reversed(starts):
        end = closing.get(start - 1)
        if end is not None:
            return start, end
    return None


def _answer_phrases(lang: str) -> tuple[str, ...]:
    phrases = list(languages.get(lang).answer_phrases)
    if languages.is_known(PIVOT_LANG):
        phrases += [p for p in languages.get(PIVOT_LANG).answer_phrases if p not in phrases]
    return tuple(phrases)


@lru_cache(maxsize=None)
def _phrase_regex(phrases: tuple[str, ...]) -> re.Pattern:
    """One regex for all phrases: longest first (`Die Antwort ist` before `Antwort`), any whitespace run
    where the phrase has a space, and an optional colon, or a dash before a space, after it
    (`Ответ —`, `Réponse :`). A dash right before a digit is a minus sign, not the phrase's.
    Case-sensitive on purpose: the table lists the capitalisations it means (`The answer is`, `the answer
    is`), and a lower-case `answer:` in the middle of a chain of thought is not the final answer."""
    alts = []
    for p in sorted(phrases, key=len, reverse=True):
        alt = r"\s+".join(map(re.escape, p.split()))
        alts.append(alt + r"(?=\s)" if p[-1] in "-–—" else alt)
    return re.compile("(?:" + "|".join(alts) + r")(?:[ \t\u00a0\u202f]*(?:[:：]|[\-–—](?=\s)))?")


def _phrase_matches(text: str, lang: str) -> list[re.Match]:
    """Answer phrases in `text`, skipping those glued to a following letter or combining mark
    (`the answer isn't`, `答えは全部で`, Bengali `উত্তরে`)."""
    out = []
    for m in _phrase_regex(_answer_phrases(lang)).finditer(text):
        nxt = text[m.end():m.end() + 1]
        if m.group()[-1].isalpha() and nxt and unicodedata.category(nxt)[0] in "LM":
            continue
        out.append(m)
    return out


def _number_after_phrase(text: str, start: int, lang: str) -> _Number | None:
    line_end = text.find("\n", start)
    line = text[start:] if line_end < 0 else text[start:line_end]
    if not line.strip() and line_end >= 0:  # "The answer is:\n18"
        rest = text[line_end:]
        nxt = re.search(r"\S[^\n]*", rest)
        if nxt is None:
            return None
        start, line = line_end + nxt.start(), nxt.group()
    nums = find_numbers(line, lang)
    if not nums:
        return None
    eq = line.rfind("=")
    after_eq = [n for n in nums if n.start > eq] if eq >= 0 else []
    pick = after_eq[0] if after_eq else nums[0]
    return _Number(pick.value, start + pick.start, start + pick.end)


def extract_math_answer(completion: str, lang: str, *, stop: Iterable[str] | None = None
                        ) -> MathExtraction:
    """The final number of a completion in language `lang` (see the module docstring for the rules).

    `stop`: cut the completion at these strings first; None or () keeps it whole.
    """
    original = cut_at_stop(completion, stop)
    if len(original) > MAX_CHARS:  # the answer is at the end: keep the tail
        original = original[-MAX_CHARS:]
    text = fold_digits(original)

    def found(num: _Number, route: Route) -> MathExtraction:
        return MathExtraction(num.value, route, route != "last_number", original[num.start:num.end])

    boxed = _last_boxed(text)
    if boxed is not None:
        nums = find_numbers(text[boxed[0]:boxed[1]], lang)
        if nums:
            n = nums[-1]
            return found(_Number(n.value, boxed[0] + n.start, boxed[0] + n.end), "boxed")

    phrases = _phrase_matches(text, lang)
    if phrases:
        digits = [m.start() for m in _DIGIT.finditer(text)]
        newlines = [m.start() for m in _NEWLINE.finditer(text)]
        for m in reversed(phrases):
            # only a phrase with a digit after it on its line, or a blank rest of line (the number may be on
            # the next one), can give a number: others are skipped without reading their line, so a text
            # full of answer phrases stays linear
            start = m.end()
            k = bisect.bisect_left(newlines, start)
            line_end = newlines[k] if k < len(newlines) else len(text)
            d = bisect.bisect_left(digits, start)
            blank = _NONSPACE.search(text, start, line_end) is None
            if not (d < len(digits) and digits[d] < line_end) and not (blank and line_end < len(text)):
                continue
            num = _number_after_phrase(text, start, lang)
            if num is not None:
                return found(num, "phrase")

    nums = find_numbers(text, lang)
    if nums:
        return found(nums[-1], "last_number")
    return MathExtraction(None, None, False, "")


# -- scoring ------------------------------------------------------------------------------------------
def parse_gold(gold: Any) -> float:
    """A gold answer as a float: numbers as they are, strings with thousands commas removed (`"2,125"`).
    Not a number, NaN and infinities are errors (a NaN gold could never be matched: a silent zero)."""
    value = None
    if isinstance(gold, (int, float)) and not isinstance(gold, bool):
        value = float(gold)
    elif isinstance(gold, str):
        try:
            value = float(gold.strip().replace(",", ""))
        except ValueError:
            pass
    if value is None:
        raise ValueError(f"gold answer must be a number or a numeric string, got {gold!r}")
    if not math.isfinite(value):
        raise ValueError(f"gold answer must be a finite number, got {gold!r}")
    return value


def numbers_equal(pred: float | None, gold: float) -> bool:
    return pred is not None and math.isfinite(pred) and abs(pred - gold) < 1e-6


def score_math(completion: str, gold: Any, lang: str, *, stop: Iterable[str] | None = None,
               mode: str = "default") -> MathScore:
    """Score one math completion against the gold number.

    `gold`: int/float or numeric string (`"2,125"`). `lang`: a code of the language table (its answer
    phrases and number format are used). `stop`: cut the completion at these strings first (None or
    () keeps it whole). `mode`: `default` (the rules above) or `mcot_compat` (mCoT's scorer; its
    strict_correct is always False and route is `boxed`/`last_number`).
    """
    if mode == "mcot_compat":
        return _mcot_compat(cut_at_stop(completion, stop), gold)
    if mode != "default":
        raise ValueError(f"unknown math scoring mode {mode!r} (choose from {', '.join(MODES)})")
    gold_value = parse_gold(gold)
    ex = extract_math_answer(completion, lang, stop=stop)
    lenient = numbers_equal(ex.value, gold_value)
    return MathScore(prediction=ex.value, correct=lenient, strict_correct=lenient and ex.strict,
                     lenient_correct=lenient, route=ex.route, text=ex.text)


# -- mCoT compatibility --------------------------------------------------------------------------------
# Behaviour of laihuiyuan/mCoT@20e9a86 evlauation/infer.py::test_answers (re-implemented, not copied):
#  * no `\boxed`/`\fbox` in the raw text: prediction = float(last match of -?\d+\.?\d* ), inf if none;
#    Python's \d and float() accept every Unicode digit, commas and spaces split numbers;
#  * otherwise the text from the last `\boxed` (else `\fbox`) to its balancing `}`; `\boxed{X}` -> "X"
#    (a `\fbox{X}` stays whole; unbalanced -> no prediction); the string is first compared with the gold
#    string after MATH-style normalisation, then as the float of its last number with commas removed;
#  * correct iff that equality holds or abs(prediction - float(gold.replace(',', ''))) < 0.001.
_MCOT_NUMBER = re.compile(r"-?\d+\.?\d*")


def _mcot_last_float(text: str) -> float:
    found = _MCOT_NUMBER.findall(text)
    try:
        return float(found[-1])
    except (IndexError, ValueError):
        return math.inf


def _mcot_boxed(text: str) -> str | None | float:
    idx = text.rfind("\\boxed")
    if idx < 0:
        idx = text.rfind("\\fbox")
        if idx < 0:
            return _mcot_last_float(text)
    depth = 0
    for i in range(idx, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                whole = text[idx:i + 1]
                if whole.startswith("\\boxed{"):
                    return whole[len("\\boxed{"):-1]
                return whole
    return None


def _gold_string(gold: Any) -> str:
    """mCoT reads gold answers as strings ("18", "2,125"); numbers are written back the same way."""
    if isinstance(gold, str):
        return gold
    if isinstance(gold, bool) or not isinstance(gold, (int, float)):
        raise ValueError(f"gold answer must be a number or a numeric string, got {gold!r}")
    return str(int(gold)) if float(gold).is_integer() else repr(float(gold))


def _mcot_close(value: float | None, gold: str) -> bool:
    try:
        return value is not None and abs(value - float(gold.replace(",", ""))) < 0.001
    except ValueError:
        return False


def _mcot_compat(text: str, gold: Any) -> MathScore:
    gold_str = _gold_string(gold)
    pred = _mcot_boxed(text)
    if isinstance(pred, str):  # boxed content: string equivalence first, then its last number
        route: Route | None = "boxed"
        value: float | None = _mcot_last_float(pred.replace(",", ""))
        correct = _math_equiv(pred, gold_str) or _mcot_close(value, gold_str)
    elif pred is None:  # `\boxed{` never closed
        route, value, correct = "boxed", None, False
    else:
        route, value = "last_number", pred
        correct = _mcot_close(value, gold_str)
    if value is not None and math.isinf(value):
        value = None
        route = route if route == "boxed" else None
    return MathScore(prediction=value, correct=correct, strict_correct=False, lenient_correct=correct,
                     route=route)


def _math_equiv(a: str, b: str) -> bool:
    """MATH-style string equivalence (Hendrycks et al.), as used by mCoT; falls back to raw equality."""
    try:
        return _math_normalise(a) == _math_normalise(b)
    except ValueError:
        return a == b


def _math_normalise(s: str) -> str:
    for old, new in (("\n", ""), ("\\!", ""), ("\\\\", "\\"), ("tfrac", "frac"), ("dfrac", "frac"),
                     ("\\left", ""), ("\\right", ""), ("^{\\circ}", ""), ("^\\circ", ""), ("\\$", "")):
        s = s.replace(old, new)
    if "\\text{ " in s:  # a unit on the right
        parts = s.split("\\text{ ")
        if len(parts) != 2:
            raise ValueError("ambiguous units")
        s = parts[0]
    s = s.replace("\\%", "").replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:  # "k = 5" -> " 5"
        s = sides[1]
    s = _fix_sqrt(s).replace(" ", "")
    s = _fix_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _fix_slash(s)


def _fix_sqrt(s: str) -> str:
    if "\\sqrt" not in s:
        return s
    head, *tails = s.split("\\sqrt")
    for t in tails:
        if not t:
            raise ValueError("dangling \\sqrt")
        head += "\\sqrt" + (t if t[0] == "{" else "{" + t[0] + "}" + t[1:])
    return head


def _fix_fracs(s: str) -> str:
    head, *tails = s.split("\\frac")
    for t in tails:
        head += "\\frac"
        if not t:
            raise ValueError("dangling \\frac")
        if t[0] == "{":
            head += t
            continue
        if len(t) < 2:
            return s
        a, b, rest = t[0], t[1], t[2:]
        head += "{" + a + "}" + ("{" + b + "}" + rest if b != "{" else b + rest)
    return head


def _fix_slash(s: str) -> str:
    parts = s.split("/")
    if len(parts) != 2:
        return s
    try:
        a, b = int(parts[0]), int(parts[1])
    except ValueError:
        raise ValueError("not a fraction of integers") from None
    return f"\\frac{{{a}}}{{{b}}}" if s == f"{a}/{b}" else s

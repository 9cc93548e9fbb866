"""Synthetic parallel multilingual tasks: a controlled testbed free of translation artefacts.

Written by linguamix (no third-party text): every sentence comes from the per-language templates in
`synthetic_text.yaml`; the answer sentence and the CoT trigger come from the language table. Item `k`
has ONE underlying structure (numbers, operation, verb, API and argument values) that each language
renders, so the versions of an item are parallel by construction and share its id. Item `k` depends
only on `(seed, k)`: asking for 100 or 1000 items gives the same first 100, so id ranges make
train/validation/test splits (`start=` skips ahead).

Math records (`generate_math`) — one operation, learnable by a tiny model::

    SyntheticMath(item_id="syn-math-000017", lang="en",
                  question="Ana has 3 apples. Ana buys 5 more apples. How many apples does Ana have now?",
                  cot="Ana has 3 apples and buys 5 more. 3 + 5 = 8. The answer is 8.",
                  answer=8)

`cot` is the completion of the mCoT prompt `"Question:\\n{question}\\nAnswer:\\n{trigger}\\n"`; it ends
with `languages.get(lang).render_answer(answer)`, right after the equation `a op b = c`.

API records (`generate_api`) — the pieces of an API-Bank level-1 case::

    SyntheticApi(item_id="syn-api-000003", lang="es",
                 apis=({"name": "SetAlarm", "description": "...", "input_parameters": {"time": {"type":
                        "str", "description": "..."}}, "output_parameters": {...}}, ...),   # English
                 dialogue=({"role": "User", "text": "Pon una alarma para las 07:30."},),
                 gold={"api_name": "SetAlarm", "arguments": {"time": "07:30"}})

`apis` holds the gold API and `n_distractors` others, in an order fixed by the item. Argument values
are strings, as in API-Bank (`'4'`, `'True'`, `'2024-05-03'`). Names, places, codes, numbers, dates
and times are identical in every language (copyable from the request); free text (a message, a
reminder) is the language's own, so that gold differs per language; a room is an English enum value
(`living_room`) that the user names in their language. `api_instruction(record)` gives the API-Bank
instruction (header + one JSON line per API); the rest of the prompt is the task's renderer.

`pretraining_corpus` gives plain text from the same vocabulary WITHOUT the task formats (no
"Question:/Answer:", no trigger, no answer sentence, no API descriptions, no "API-Request: [...]"):
word problems, worked sums, user requests and the function calls that serve them, bare equations and
parallel pairs, for a tiny model's tokenizer and pretraining.
"""
from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Callable, Iterable

import yaml

from .. import languages
from ..errors import ConfigError, DataError
from ..tasks.api import LEVEL1_HEADER
from ..tasks.api_call import format_invocation

TEXT_FILE = "synthetic_text.yaml"
MATH_PREFIX = "syn-math-"
API_PREFIX = "syn-api-"
OPS = {"add": "+", "sub": "-"}
TIME_HOURS, TIME_MINUTE_STEP = (6, 11), 15
"""Times are HH:MM with HH in this range and minutes a multiple of the step: alarm-like times, few
enough for a tiny model to learn (and no "a la 01:00" in Spanish)."""
YEAR = 2024
"""Dates fall in the year after the one API-Bank's instruction names ("The current year is 2023."), so the
year in a request is the only "2024" in the prompt (a clean cue for copying the rest of the date)."""


@dataclass(frozen=True)
class SyntheticMath:
    item_id: str
    lang: str
    question: str
    cot: str
    """The completion: a short chain of thought ending in the language's answer sentence."""
    answer: int


@dataclass(frozen=True)
class SyntheticApi:
    item_id: str
    lang: str
    apis: tuple[dict[str, Any], ...]
    """API-Bank-style descriptions (English): name, description, input_parameters, output_parameters."""
    dialogue: tuple[dict[str, str], ...]
    """Turns `{"role": "User", "text": ...}` in the item's language."""
    gold: dict[str, Any]
    """`{"api_name": str, "arguments": {param: str}}`."""


# -- the text file ----------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _text() -> dict[str, Any]:
    raw = resources.files(__package__).joinpath(TEXT_FILE).read_text("utf-8")
    doc = yaml.safe_load(raw)
    _check(doc)
    return doc


LANGUAGE_KEYS = ("equation", "counted", "names", "nouns", "math", "rooms", "messages", "reminders", "api")


def _check(doc: dict[str, Any]) -> None:
    """Parallel lists must have the same length in every language, or items would not be parallel."""
    where = TEXT_FILE
    shared, langs = doc["shared"], doc["languages"]
    api_names = [a["name"] for a in doc["apis"]]
    first = next(iter(langs))

    def sizes(t: dict) -> dict[str, int]:
        return {"names": len(t["names"]), "math.add": len(t["math"]["add"]), "math.sub": len(t["math"]["sub"]),
                "rooms": len(t["rooms"]), "messages": len(t["messages"]), "reminders": len(t["reminders"])}

    for code, t in langs.items():
        missing = [k for k in LANGUAGE_KEYS if k not in (t or {})]
        if missing:
            raise DataError(f"{where}: languages.{code}: missing {missing}")
    ref = sizes(langs[first])
    if ref["rooms"] != len(shared["rooms"]):
        raise DataError(f"{where}: languages.{first}.rooms: {ref['rooms']} entries, shared.rooms has {len(shared['rooms'])}")
    for code, t in langs.items():
        for key, n in sizes(t).items():
            if n != ref[key] or n == 0:
                raise DataError(f"{where}: languages.{code}.{key}: {n} entries, expected {ref[key]} (as in {first}); "
                                "lists are parallel across languages")
        missing = [i for i in shared["items"] if i not in t["nouns"]]
        if missing:
            raise DataError(f"{where}: languages.{code}.nouns: missing {missing}")
        missing = [a for a in api_names if a not in t["api"]]
        if missing:
            raise DataError(f"{where}: languages.{code}.api: no template for {missing}")
        for value in [*t["messages"], *t["reminders"]]:
            if "'" in value or '"' in value:
                raise DataError(f"{where}: languages.{code}: argument value {value!r} contains a quote")


def available_languages() -> list[str]:
    """Languages with synthetic text, in the file's order."""
    return list(_text()["languages"])


def _lang_text(code: str) -> dict[str, Any]:
    try:
        return _text()["languages"][code]
    except KeyError:
        raise ConfigError(f"no synthetic text for language '{code}' (available: {', '.join(available_languages())}; "
                          f"add it to linguamix/data/{TEXT_FILE})") from None


def api_descriptions() -> list[dict[str, Any]]:
    """Every invented API as API-Bank describes an API (the generator's `values`/`unit` hints removed)."""
    return [_describe(a) for a in _text()["apis"]]


def _describe(api: dict[str, Any]) -> dict[str, Any]:
    params = {k: {"type": p["type"], "description": p["description"]} for k, p in api["input_parameters"].items()}
    return {"name": api["name"], "description": api["description"], "input_parameters": params,
            "output_parameters": copy.deepcopy(api["output_parameters"])}


# -- rendering helpers ------------------------------------------------------------------------------
class _Fields(dict):
    """Template fields; derived ones (`a_items`) are computed on first use, unknown ones fail clearly."""

    def __init__(self, where: str, values: dict[str, Any], lazy: dict[str, Callable[[], str]]):
        super().__init__(values)
        self.where, self.lazy = where, lazy

    def __missing__(self, key: str) -> str:
        if key in self.lazy:
            self[key] = value = self.lazy[key]()
            return value
        raise DataError(f"{TEXT_FILE}: {self.where}: unknown template field {{{key}}}")


def _render(template: str, fields: _Fields) -> str:
    try:
        return template.format_map(fields)
    except (ValueError, IndexError) as e:
        raise DataError(f"{TEXT_FILE}: {fields.where}: bad template {template!r} ({e})") from None


def _plural_category(n: int, rules: dict[str, dict[str, list[int]]]) -> str:
    for category, cond in rules.items():
        if (("n" not in cond or n in cond["n"]) and ("mod10" not in cond or n % 10 in cond["mod10"])
                and ("mod100" not in cond or n % 100 in cond["mod100"])
                and ("not_mod100" not in cond or n % 100 not in cond["not_mod100"])):
            return category
    return "other"


def _counted(code: str, text: dict[str, Any], n: int, noun: dict[str, str], name: str) -> Callable[[], str]:
    """The number with its noun (`3 apples`, `3 яблока`, `3個`), by the language's `counted.<name>` template."""

    def render() -> str:
        category = _plural_category(n, text.get("plural", {}))
        form = noun.get(category, noun.get("other", noun.get("base", "")))
        agree = {w: forms.get(category, forms.get("other", "")) for w, forms in text.get("agree", {}).items()}
        fields = _Fields(f"languages.{code}.counted.{name}", {**noun, **agree, "noun": noun.get("base", form), "n": n, "form": form}, {})
        return _render(text["counted"][name], fields)

    return render


def _noun_fields(noun: dict[str, str]) -> dict[str, str]:
    return {"noun": noun.get("base", noun.get("other", "")), **{f"noun_{k}": v for k, v in noun.items()}}


def _name_fields(entry: str | dict[str, str]) -> dict[str, str]:
    if isinstance(entry, str):
        return {"name": entry}
    return {"name": entry["name"], **{f"name_{k}": v for k, v in entry.items() if k != "name"}}


def _check_langs(langs: Iterable[str]) -> list[str]:
    langs = list(dict.fromkeys(langs))
    if not langs:
        raise ConfigError("synthetic data: no languages given")
    for code in langs:
        languages.get(code)  # the answer sentence and trigger must exist in the language table
        _lang_text(code)
    return langs


def _check_count(n: int, start: int) -> None:
    if n < 0 or start < 0:
        raise ConfigError(f"synthetic data: n and start must be >= 0 (got n={n}, start={start})")


# -- math -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _MathStructure:
    op: str
    template: int
    name: int
    noun: str
    a: int
    b: int

    @property
    def c(self) -> int:
        return self.a + self.b if self.op == "add" else self.a - self.b


def _math_structure(rng: random.Random, lo: int, hi: int) -> _MathStructure:
    doc = _text()
    first = next(iter(doc["languages"].values()))
    op = rng.choice(sorted(OPS))
    template = rng.randrange(len(first["math"][op]))
    name = rng.randrange(len(first["names"]))
    noun = rng.choice(doc["shared"]["items"])
    a, b = rng.randint(lo, hi), rng.randint(lo, hi)
    if op == "sub" and b > a:  # results stay >= 0
        a, b = b, a
    return _MathStructure(op, template, name, noun, a, b)


def _math_fields(code: str, s: _MathStructure, where: str) -> _Fields:
    text = _lang_text(code)
    noun = text["nouns"][s.noun]
    values = {**_name_fields(text["names"][s.name]), **_noun_fields(noun), "a": s.a, "b": s.b, "c": s.c}
    lazy = {f"{x}_{name}": _counted(code, text, n, noun, name)
            for x, n in (("a", s.a), ("b", s.b), ("c", s.c)) for name in text["counted"]}
    return _Fields(where, values, lazy)


def _problem_text(code: str, s: _MathStructure, part: str = "question") -> str:
    """The item's `question` or `retell` sentence(s) in language `code`."""
    template = _lang_text(code)["math"][s.op][s.template][part]
    return _render(template, _math_fields(code, s, f"languages.{code}.math.{s.op}[{s.template}]"))


def _equation(code: str, s: _MathStructure) -> str:
    return _render(_lang_text(code)["equation"], _Fields(f"languages.{code}.equation",
                                                         {"a": s.a, "op": OPS[s.op], "b": s.b, "c": s.c}, {}))


def _check_range(operand_range: tuple[int, int]) -> tuple[int, int]:
    lo, hi = (int(x) for x in operand_range)
    if not 0 <= lo <= hi:
        raise ConfigError(f"synthetic math: operand_range must satisfy 0 <= lo <= hi, got {operand_range}")
    return lo, hi


def generate_math(n: int, langs: Iterable[str], seed: int = 0, *, start: int = 0,
                  operand_range: tuple[int, int] = (1, 20)) -> list[SyntheticMath]:
    """Items `start .. start+n-1`, each in every language (item-major order). One operation per item:
    add or subtract two operands from `operand_range`, result >= 0."""
    langs, (lo, hi) = _check_langs(langs), _check_range(operand_range)
    _check_count(n, start)
    out = []
    for k in range(start, start + n):
        s = _math_structure(random.Random(f"linguamix.synthetic:math:{seed}:{k}"), lo, hi)
        for code in langs:
            sep = _lang_text(code).get("sentence_sep", " ")
            cot = sep.join((_problem_text(code, s, "retell"), _equation(code, s), languages.get(code).render_answer(s.c)))
            out.append(SyntheticMath(f"{MATH_PREFIX}{k:06d}", code, _problem_text(code, s), cot, s.c))
    return out


# -- API calls --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _ApiStructure:
    api: int
    values: tuple[tuple[str, Any], ...]
    """(param, value): a str/int/bool for shared values, ("translated"|"enum", list, index) otherwise."""
    shown: tuple[int, ...]
    """Indices of the APIs described in the prompt (the gold one among them)."""


def _draw_value(rng: random.Random, spec: Any, used: set) -> Any:
    kind = spec["values"]
    if isinstance(kind, list):
        return rng.randint(*kind)
    if isinstance(kind, dict):
        return rng.choice(kind["one_of"])
    if kind == "time":
        return f"{rng.randint(*TIME_HOURS):02d}:{rng.randrange(0, 60, TIME_MINUTE_STEP):02d}"
    if kind == "date":
        return f"{YEAR}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if kind == "bool":
        return rng.random() < 0.5
    source, _, pool_name = kind.partition(":")
    if source == "translated":
        size = len(next(iter(_text()["languages"].values()))[pool_name])
        return ("translated", pool_name, rng.randrange(size))
    pool = [v for v in _text()["shared"][pool_name] if (pool_name, v) not in used]  # distinct within a call
    value = rng.choice(pool)
    used.add((pool_name, value))
    if source == "enum":
        return ("enum", pool_name, _text()["shared"][pool_name].index(value))
    return value


def _api_structure(rng: random.Random, n_distractors: int) -> _ApiStructure:
    apis = _text()["apis"]
    i = rng.randrange(len(apis))
    used: set = set()
    values = tuple((p, _draw_value(rng, spec, used)) for p, spec in apis[i]["input_parameters"].items())
    others = [j for j in range(len(apis)) if j != i]
    shown = [i, *rng.sample(others, min(n_distractors, len(others)))]
    rng.shuffle(shown)
    return _ApiStructure(i, values, tuple(shown))


def _api_request(code: str, s: _ApiStructure) -> tuple[str, dict[str, str]]:
    """The user's request in language `code` and the gold arguments (as strings)."""
    api = _text()["apis"][s.api]
    text = _lang_text(code)
    display, gold, lazy = {}, {}, {}
    for param, value in s.values:
        if isinstance(value, tuple):
            kind, pool, index = value
            display[param] = text[pool][index]
            gold[param] = text[pool][index] if kind == "translated" else _text()["shared"][pool][index]
        else:
            display[param] = gold[param] = str(value)  # bools become 'True'/'False', as in API-Bank
        unit = api["input_parameters"][param].get("unit")
        if unit and unit in text.get("nouns", {}):
            for name in text["counted"]:
                lazy[f"{param}_{name}"] = _counted(code, text, int(value), text["nouns"][unit], name)
    template = text["api"][api["name"]]
    where = f"languages.{code}.api.{api['name']}"
    if "template_by" in api:
        key = gold[api["template_by"]]
        template, where = template[key], f"{where}.{key}"
    return _render(template, _Fields(where, display, lazy)), gold


def generate_api(n: int, langs: Iterable[str], seed: int = 0, *, start: int = 0,
                 n_distractors: int = 1) -> list[SyntheticApi]:
    """Items `start .. start+n-1`, each in every language (item-major order): one user request, the
    gold call, and the descriptions of the gold API plus `n_distractors` other APIs."""
    langs = _check_langs(langs)
    _check_count(n, start)
    if n_distractors < 0:
        raise ConfigError(f"synthetic api: n_distractors must be >= 0, got {n_distractors}")
    descriptions = api_descriptions()
    out = []
    for k in range(start, start + n):
        s = _api_structure(random.Random(f"linguamix.synthetic:api:{seed}:{k}"), n_distractors)
        apis = tuple(descriptions[j] for j in s.shown)
        name = descriptions[s.api]["name"]
        for code in langs:
            request, arguments = _api_request(code, s)
            out.append(SyntheticApi(f"{API_PREFIX}{k:06d}", code, apis, ({"role": "User", "text": request},),
                                    {"api_name": name, "arguments": arguments}))
    return out


def api_instruction(record: SyntheticApi) -> str:
    """API-Bank's level-1 instruction for this item: the task header, then one JSON line per API."""
    return LEVEL1_HEADER + "\n".join(json.dumps(api) for api in record.apis)


# -- plain text for pretraining ---------------------------------------------------------------------
CORPUS_MIX = (("problem", 0.05), ("story", 0.1), ("worked", 0.3), ("request", 0.05), ("call", 0.3),
              ("equation", 0.1), ("parallel", 0.05), ("repeat", 0.05))
"""Share of each kind of text in `pretraining_corpus`."""
EQUATIONS_PER_LINE = 4


def _random_value(rng: random.Random, code: str) -> str:
    """A name, place, code, number, date or time: what a request mentions and a call must copy."""
    text, shared = _lang_text(code), _text()["shared"]
    pick = rng.randrange(6)
    if pick == 0:
        return rng.choice([*shared["contacts"], *shared["cities"], *shared["restaurants"], *shared["currencies"]])
    if pick == 1:
        return _name_fields(rng.choice(text["names"]))["name"]
    if pick == 2:
        return str(rng.randint(1, 500))
    if pick == 3:
        return _draw_value(rng, {"values": "date"}, set())
    if pick == 4:
        return _draw_value(rng, {"values": "time"}, set())
    return rng.choice([*text["messages"], *text["reminders"]])


def pretraining_corpus(langs: Iterable[str], n_sentences: int, seed: int = 0, *,
                       operand_range: tuple[int, int] = (1, 20)) -> list[str]:
    """Plain multilingual text, languages in turn, in the shares of `CORPUS_MIX`: word problems (the
    question alone, retold, or retold and followed by the sum that solves it, `a + b = c.`), user
    requests alone or as a code comment followed by the call (`# Set an alarm for 07:30.` /
    `SetAlarm(time='07:30')`), lines of bare equations over `operand_range`, lists of values written
    twice, and parallel pairs (one problem or request in two languages).

    Why this mix: like a real base model, the demo's model should know the skills the tasks need —
    reading numbers and values from the context, sums, which call serves a request — but not the
    task formats (no `Question:`/`Answer:`, trigger or answer sentence, no API descriptions or
    `API-Request:`), which fine-tuning then teaches; the parallel pairs align the languages, as
    translated text does in real pretraining data."""
    langs, (lo, hi) = _check_langs(langs), _check_range(operand_range)
    rng = random.Random(f"linguamix.synthetic:corpus:{seed}")
    kinds, weights = zip(*CORPUS_MIX)
    out = []
    for j in range(n_sentences):
        code = langs[j % len(langs)]
        kind = rng.choices(kinds, weights)[0]
        if kind == "parallel" and len(langs) < 2:
            kind = "problem"
        if kind == "problem":
            out.append(_problem_text(code, _math_structure(rng, lo, hi)))
        elif kind == "story":  # the problem, then retold in one sentence (never solved)
            m = _math_structure(rng, lo, hi)
            sep = _lang_text(code).get("sentence_sep", " ")
            out.append(f"{_problem_text(code, m)}{sep}{_problem_text(code, m, 'retell')}")
        elif kind == "worked":  # the problem, retold, and the sum that solves it
            m = _math_structure(rng, lo, hi)
            sep = _lang_text(code).get("sentence_sep", " ")
            out.append(sep.join((_problem_text(code, m), _problem_text(code, m, "retell"), _equation(code, m))))
        elif kind == "request":
            out.append(_api_request(code, _api_structure(rng, 0))[0])
        elif kind == "call":  # a request and the function call that serves it, as in code comments
            a = _api_structure(rng, 0)
            request, arguments = _api_request(code, a)
            out.append(f"# {request}\n{format_invocation(_text()['apis'][a.api]['name'], arguments)}")
        elif kind == "equation":  # a few per line, so operands occur both after a space and line-initially
            sums = (_math_structure(rng, lo, hi) for _ in range(EQUATIONS_PER_LINE))
            out.append(" ".join(f"{s.a} {OPS[s.op]} {s.b} = {s.c}." for s in sums))
        elif kind == "repeat":  # a list of values, written twice: the plainest lesson in copying
            text = ", ".join(_random_value(rng, code) for _ in range(rng.randint(3, 6)))
            out.append(f"{text}.\n{text}.")
        else:
            other = rng.choice([c for c in langs if c != code])
            if rng.random() < 0.5:
                m = _math_structure(rng, lo, hi)
                out.append(f"{_problem_text(code, m)}\n{_problem_text(other, m)}")
            else:
                a = _api_structure(rng, 0)
                out.append(f"{_api_request(code, a)[0]}\n{_api_request(other, a)[0]}")
    return out

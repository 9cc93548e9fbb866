"""The language table: one place for per-language facts (codes, script, resource level, prompts).

Nothing else in linguamix hard-codes a language. The built-in table is `languages.yaml` next to this
module. More languages come from YAML files of the same layout: `load_yaml(path)` reads them without
changing anything, and `extended(langs)` makes them visible for the duration of a `with` block (a study
config's `languages.extra` is read that way: loading a config changes no global state). `register`
adds a language for good, for programs that want that.
"""
from __future__ import annotations

import contextlib
import re
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import yaml

from .errors import ConfigError

RESOURCES = ("high", "low")
ROLES = ("core", "additional", "unseen")


@dataclass(frozen=True)
class NumberFormat:
    """How numbers are written in this language: decimal separator and digit-group separators."""

    decimal: str = "."
    group: tuple[str, ...] = (",",)


@dataclass(frozen=True)
class Language:
    code: str
    """ISO 639-1 code, the key everywhere in linguamix (`en`, `bn`)."""
    iso639_3: str
    name: str
    """English name."""
    resource: str
    """`high` or `low`, as in the paper's Table 1; defines the high/low evaluation groups."""
    family: str
    subfamily: str | None
    script: str
    """ISO 15924 code (`Latn`, `Jpan`, `Beng`)."""
    unicode_scripts: tuple[str, ...]
    """Unicode Script property values text in this language is written in (for script checks)."""
    role: str
    """`core` (train + eval), `additional` (train only) or `unseen` (eval only)."""
    cot_trigger: str
    """mCoT's localised "Let's think step by step." placed right before the answer."""
    answer_template: str
    """The localised final sentence, `{answer}` standing for the number ("The answer is {answer}.")."""
    answer_phrases: tuple[str, ...]
    """Answer phrases the math extractor accepts, canonical first."""
    number_format: NumberFormat = field(default_factory=NumberFormat)

    @property
    def answer_phrase(self) -> str:
        """The canonical MGSM answer phrase ("The answer is" in this language)."""
        return self.answer_phrases[0]

    def render_answer(self, answer: int | float | str) -> str:
        return self.answer_template.format(answer=answer)

    def script_regex(self) -> re.Pattern:
        """Matches one character of this language's scripts (Unicode script property via `regex`)."""
        import regex

        return regex.compile("|".join(rf"\p{{Script={s}}}" for s in self.unicode_scripts))


_REQUIRED = [f.name for f in fields(Language) if f.name != "number_format"]
_BUILTIN: dict[str, Language] = {}
_TABLE: ContextVar[dict[str, Language]] = ContextVar("linguamix_languages", default=_BUILTIN)
"""The active table: the built-in one (in every thread), or an extended copy inside `extended(...)`."""


def _parse(entry: dict, source: str, index: int) -> Language:
    where = f"{source}: languages[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping of language fields")
    unknown = set(entry) - set(_REQUIRED) - {"number_format"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        raise ConfigError(f"{where} ({entry.get('code', '?')}): missing field(s) {missing}")
    code = entry["code"]
    if not (isinstance(code, str) and re.fullmatch(r"[a-z]{2}", code)):
        raise ConfigError(f"{where}: field 'code' must be an ISO 639-1 code (two lower-case letters), got {code!r}")
    if not re.fullmatch(r"[a-z]{3}", str(entry["iso639_3"])):
        raise ConfigError(f"{where} ({code}): field 'iso639_3' must be three lower-case letters")
    if not re.fullmatch(r"[A-Z][a-z]{3}", str(entry["script"])):
        raise ConfigError(f"{where} ({code}): field 'script' must be an ISO 15924 code like 'Latn'")
    if entry["resource"] not in RESOURCES:
        raise ConfigError(f"{where} ({code}): field 'resource' must be one of {RESOURCES}")
    if entry["role"] not in ROLES:
        raise ConfigError(f"{where} ({code}): field 'role' must be one of {ROLES}")
    if "{answer}" not in str(entry["answer_template"]):
        raise ConfigError(f"{where} ({code}): field 'answer_template' must contain '{{answer}}'")
    for key in ("name", "family", "cot_trigger", "answer_template"):
        if not isinstance(entry[key], str) or not entry[key].strip():
            raise ConfigError(f"{where} ({code}): field '{key}' must be a non-empty string")
    try:
        entry["answer_template"].format(answer=18)
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(f"{where} ({code}): field 'answer_template' may only contain {{answer}} "
                          f"(got {entry['answer_template']!r}: {type(e).__name__} {e})") from None
    for key in ("answer_phrases", "unicode_scripts"):  # a lone string would be read as its characters
        value = entry[key]
        if not isinstance(value, list) or not value or not all(isinstance(p, str) and p.strip() for p in value):
            raise ConfigError(f"{where} ({code}): field '{key}' must be a non-empty list of strings, "
                              f"got {value!r}")
    phrases = entry["answer_phrases"]
    nf = entry.get("number_format") or {}
    try:
        number_format = NumberFormat(decimal=nf.get("decimal", "."), group=tuple(nf.get("group", (",",))))
    except AttributeError:
        raise ConfigError(f"{where} ({code}): field 'number_format' must be a mapping") from None
    values = {k: entry[k] for k in _REQUIRED}
    values["unicode_scripts"] = tuple(values["unicode_scripts"])
    values["answer_phrases"] = tuple(phrases)
    return Language(**values, number_format=number_format)


def _load(text: str, source: str) -> list[Language]:
    try:  # libyaml's parser when present: the table is read at every start-up
        doc = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("languages"), list):
        raise ConfigError(f"{source}: expected a top-level 'languages:' list")
    return [_parse(e, source, i) for i, e in enumerate(doc["languages"])]


def register(lang: Language) -> None:
    """Add a language to the table for good; re-registering an identical entry is a no-op."""
    _check_compatible(lang, _TABLE.get().get(lang.code))
    _TABLE.get()[lang.code] = lang


def _check_compatible(lang: Language, old: Language | None) -> None:
    if old is not None and old != lang:
        raise ConfigError(f"language '{lang.code}' is already defined with different facts")


def load_yaml(path: str | Path) -> list[Language]:
    """Languages from a YAML file with the same layout as the built-in `languages.yaml` (nothing registered)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM from a Windows editor is not part of the YAML
    except OSError as e:
        raise ConfigError(f"{path}: cannot read language file ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    return _load(text, str(path))


def register_yaml(path: str | Path) -> list[Language]:
    """`load_yaml` + `register` of each language."""
    langs = load_yaml(path)
    for lang in langs:
        register(lang)
    return langs


@contextlib.contextmanager
def extended(langs: Iterable[Language]) -> Iterator[None]:
    """The table plus `langs` inside the block (this thread / async context only); a code defined with
    other facts than the table's is a ConfigError."""
    langs = list(langs)
    if not langs:
        yield
        return
    table = dict(_TABLE.get())
    for lang in langs:
        _check_compatible(lang, table.get(lang.code))
        table[lang.code] = lang
    token = _TABLE.set(table)
    try:
        yield
    finally:
        _TABLE.reset(token)


def table() -> Mapping[str, Language]:
    """The active language table, code -> Language, in table order."""
    return _TABLE.get()


def get(code: str) -> Language:
    try:
        return _TABLE.get()[code]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown language code {code!r} (known: {', '.join(_TABLE.get())})") from None


def is_known(code: str) -> bool:
    return isinstance(code, str) and code in _TABLE.get()


def all_languages() -> list[Language]:
    return list(_TABLE.get().values())


def codes(*, role: str | Iterable[str] | None = None, resource: str | None = None) -> list[str]:
    """Codes in table order, optionally filtered by role(s) and resource level."""
    roles = {role} if isinstance(role, str) else set(role) if role is not None else None
    return [
        lang.code
        for lang in _TABLE.get().values()
        if (roles is None or lang.role in roles) and (resource is None or lang.resource == resource)
    ]


def training_codes() -> list[str]:
    """Languages that may appear in training mixtures (core + additional)."""
    return codes(role=("core", "additional"))


def evaluation_codes() -> list[str]:
    """Languages evaluated in the study (core + unseen)."""
    return codes(role=("core", "unseen"))


def resource_group(code: str) -> str:
    return get(code).resource


_BUILTIN.update({lang.code: lang for lang in
                 _load(resources.files(__package__).joinpath("languages.yaml").read_text("utf-8"), "languages.yaml")})

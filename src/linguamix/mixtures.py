"""Mixtures: which languages a training run sees. Every mixture holds the *same parallel items* in each
of its languages, in equal numbers (the paper's data-augmentation paradigm: adding a language adds its
translation of the same examples, so total data grows with the number of languages).

A design is a list of entries, each an explicit language list or a generator
`{choose: k, from: [...], plus: [...]}` (every k-subset of `from`, plus fixed languages).
`design_mixtures("paper")` gives the paper's 22 mixtures (Figure 1).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from importlib import resources
from typing import Any, Iterable, Sequence

import yaml

from . import languages
from .errors import ConfigError

PRETRAINED = "pretrained"
"""Mixture id used for the base model evaluated without fine-tuning."""
SEPARATOR = "+"
"""Joins the sorted language codes of a mixture id (`bn+en`)."""


@dataclass(frozen=True)
class Mixture:
    languages: tuple[str, ...]
    """Training languages in language-table order; each contributes the same items."""
    group: str = ""
    """The design entry that produced it (e.g. "N=4"); informative only, not part of the id."""

    def __post_init__(self):
        if not self.languages:
            raise ConfigError("a mixture needs at least one language")
        if len(set(self.languages)) != len(self.languages):
            raise ConfigError(f"mixture {list(self.languages)} lists a language twice")
        for code in self.languages:
            languages.get(code)  # raises ConfigError naming the unknown code
        order = {c: i for i, c in enumerate(lang.code for lang in languages.all_languages())}
        object.__setattr__(self, "languages", tuple(sorted(self.languages, key=order.__getitem__)))

    @property
    def id(self) -> str:
        """Canonical, order-independent id: the sorted codes joined by '+' ("bn+en+es+ja")."""
        return label(self.languages)

    @property
    def n_languages(self) -> int:
        return len(self.languages)

    @property
    def fractions(self) -> dict[str, float]:
        """Share of the training examples per language: always equal."""
        return {code: 1.0 / self.n_languages for code in self.languages}

    def exposure(self, eval_lang: str) -> str:
        """`direct` if the evaluation language is trained on, else `zero_shot`."""
        languages.get(eval_lang)
        return "direct" if eval_lang in self.languages else "zero_shot"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "languages": list(self.languages), "n_languages": self.n_languages, "group": self.group}

    @classmethod
    def from_id(cls, mixture_id: str) -> "Mixture":
        if mixture_id == PRETRAINED:
            raise ConfigError(f"'{PRETRAINED}' is the base model, not a training mixture")
        return cls(languages_of(mixture_id))


def expand_entry(entry: Any, where: str) -> list[Mixture]:
    """One design entry (a list of codes or a generator mapping) -> its mixtures."""
    if isinstance(entry, (list, tuple)):
        return [Mixture(tuple(entry), group=f"N={len(entry)}")]
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a list of language codes or a {{choose, from, plus}} mapping")
    unknown = set(entry) - {"choose", "from", "plus", "group"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)} (allowed: choose, from, plus, group)")
    plus = list(entry.get("plus") or [])
    pool = list(entry.get("from") or [])
    k = entry.get("choose", 0)
    if not isinstance(k, int) or k < 0 or k > len(pool):
        raise ConfigError(f"{where}: field 'choose' must be an integer between 0 and len(from)={len(pool)}")
    if set(plus) & set(pool):
        raise ConfigError(f"{where}: languages {sorted(set(plus) & set(pool))} are in both 'from' and 'plus'")
    out = []
    for combo in itertools.combinations(pool, k):
        langs = tuple(plus) + combo
        out.append(Mixture(langs, group=entry.get("group") or f"N={len(langs)}"))
    return out


def expand_design(design: Sequence[Any], source: str = "design") -> list[Mixture]:
    """All mixtures of a design, in design order; a mixture produced twice is an error."""
    seen: dict[str, str] = {}
    out: list[Mixture] = []
    for i, entry in enumerate(design):
        where = f"{source}[{i}]"
        try:
            mixtures = expand_entry(entry, where)
        except ConfigError as e:
            msg = str(e)
            raise ConfigError(msg if msg.startswith(where) else f"{where}: {msg}") from None
        for m in mixtures:
            if m.id in seen:
                raise ConfigError(f"{where}: mixture {m.id} is already produced by {seen[m.id]}")
            seen[m.id] = where
            out.append(m)
    return out


def preset_names() -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in resources.files(__package__).joinpath("designs").iterdir()
                  if p.name.endswith(".yaml"))


def preset_design(name: str) -> list[Any]:
    if name not in preset_names():
        raise ConfigError(f"unknown mixture preset '{name}' (known: {', '.join(preset_names())})")
    doc = yaml.safe_load(resources.files(__package__).joinpath("designs", f"{name}.yaml").read_text("utf-8"))
    return doc["design"]


def design_mixtures(preset: str = "paper") -> list[Mixture]:
    return expand_design(preset_design(preset), source=f"preset '{preset}'")


def label(langs: Iterable[str]) -> str:
    """The canonical id of a set of training languages: the codes sorted and joined by '+' ("" for none)."""
    return SEPARATOR.join(sorted(langs))


def languages_of(mixture_id: str) -> tuple[str, ...]:
    """The training languages a mixture id (or a results table's `train_langs`) names; () for the
    pretrained baseline and for an empty label. Not validated against the language table."""
    if not mixture_id or mixture_id == PRETRAINED:
        return ()
    return tuple(c.strip() for c in mixture_id.split(SEPARATOR) if c.strip())

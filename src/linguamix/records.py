"""Small frozen records that cross stage boundaries."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .mixtures import PRETRAINED, languages_of


@dataclass(frozen=True)
class RunSpec:
    """One unit of the study: a base model, a task, a mixture (or the pretrained baseline) and a seed."""

    model: str
    """Short model name (StudyConfig model `name`)."""
    task: str
    mixture: str
    """Mixture id (`bn+en`) or `pretrained` for the base model evaluated without fine-tuning."""
    seed: int = 0

    @property
    def kind(self) -> str:
        return "baseline" if self.mixture == PRETRAINED else "train"

    @property
    def train_languages(self) -> tuple[str, ...]:
        """The languages the run trains on (() for the pretrained baseline)."""
        return languages_of(self.mixture)

    @property
    def name(self) -> str:
        """HELM-style run name; it is also the run's directory name."""
        return f"model={self.model},task={self.task},mix={self.mixture},seed={self.seed}"

    @classmethod
    def from_name(cls, name: str) -> "RunSpec":
        parts = dict(p.split("=", 1) for p in name.split(","))
        return cls(model=parts["model"], task=parts["task"], mixture=parts["mix"], seed=int(parts["seed"]))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind, "name": self.name}


@dataclass(frozen=True)
class Example:
    """One rendered item in one language, identical for training and evaluation."""

    task: str
    item_id: str
    """Shared by the parallel versions of the same item in every language."""
    lang: str
    prompt: str
    completion: str
    """Training target (without EOS; the tokenizer side appends it). Empty for items without a reference."""
    gold: Any
    """Math: the final number. API: {"api_name": str, "arguments": {str: str}}."""
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ItemScore:
    """One scored completion, whatever the task (a task's `score` returns it; maps onto `Prediction`)."""

    prediction: Any
    """The parsed answer (math: a number; API: `{"api_name", "arguments"}`), or None when nothing was found."""
    correct: bool
    """The primary verdict."""
    strict: bool
    """Correct and in the expected format (math: after the answer phrase or in \\boxed{}; API: `API-Request:`)."""
    lenient: bool
    """Correct by the lenient reading (math: any extracted number)."""
    detail: dict[str, Any] = field(default_factory=dict)
    """Task extras: math `route`, `text`; API `error_kind`, `parse_error`, `mismatch`, `duplicate_keys`."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Prediction:
    """A scored generation for one item: always stored per example."""

    item_id: str
    lang: str
    prompt_hash: str
    completion: str
    prediction: Any
    """Math: extracted number or None; API: {"api_name", "arguments"} or None."""
    correct: bool
    """The primary verdict (math: lenient extraction; API: exact call match)."""
    strict: bool
    lenient: bool
    gold: Any
    detail: dict[str, Any] = field(default_factory=dict)
    """Scorer extras (e.g. the extraction route, parse errors)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MathItem:
    """A math word problem in one language, as loaded from a source (before rendering)."""

    item_id: str
    lang: str
    question: str
    answer: float
    """Gold final number."""
    solution: str | None = None
    """Chain-of-thought solution ending in the localised answer sentence (None for test-only items)."""


@dataclass(frozen=True)
class ApiItem:
    """An API-calling case in one language: the API descriptions, the dialogue so far, the gold call."""

    item_id: str
    lang: str
    instruction: str
    """API-Bank's task header + API descriptions (kept in English in every language)."""
    dialogue: str
    """The rendered context ("User: ...\\nAI: ...\\nAPI-Request: [...]->out"), without the final cue."""
    api_name: str
    arguments: dict[str, str]
    """Gold argument values, as strings (API-Bank's param_dict)."""
    target: str | None = None
    """The reference completion if the source gives one verbatim; else rendered from the gold call."""

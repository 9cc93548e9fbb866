"""Math chain-of-thought in the mCoT format (Lai & Nissim 2024): trained on mCoT-MATH, tested on MGSM.

    Question:\\n{question}\\nAnswer:\\n{trigger}\\n      <- prompt (trigger = the language's "Let's think step by step.")
    {chain of thought ... The answer is N.}            <- completion (loss only here; EOS appended by the trainer)

`Question:`/`Answer:` stay English in every language, as in mCoT; only the trigger is localised.
The prompt ends with a newline so the prompt's tokens are a prefix of prompt + completion's tokens in
every script (scripts without spaces otherwise merge tokens across the boundary).
Scoring: the final number (`math_answer`: digits of every script, answer phrases, local separators).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from .. import languages
from ..records import Example, ItemScore, MathItem
from . import math_answer

NAME = "math"
TEMPLATE = "Question:\n{question}\nAnswer:\n{trigger}\n"
STOP = ("\nQuestion:",)
"""A base model continues with the next "Question:" (`"\\nQuestion:"` also catches `"\\n\\nQuestion:"`)."""


class MathTask:
    name = NAME
    stop = STOP
    formats = ("mgsm", "mcot", "msvamp", "mcot-outputs", "synthetic-math")
    loaders: Mapping[str, Any] = {}
    modes = math_answer.MODES
    gold = "the final number (a number, or a numeric string such as \"2,125\")"

    def render(self, item: MathItem) -> Example:
        lang = languages.get(item.lang)
        prompt = TEMPLATE.format(question=item.question.strip(), trigger=lang.cot_trigger)
        return Example(task=NAME, item_id=item.item_id, lang=item.lang, prompt=prompt,
                       completion=(item.solution or "").strip(), gold=item.answer)

    def parse_gold(self, gold: Any) -> float:
        return math_answer.parse_gold(gold)

    def score(self, completion: str, gold: Any, lang: str, *, mode: str = "default") -> ItemScore:
        s = math_answer.score_math(completion, gold, lang, stop=STOP, mode=mode)
        return ItemScore(s.prediction, s.correct, s.strict_correct, s.lenient_correct,
                         {"route": s.route, "text": s.text})

    def summary_counts(self, details: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        return {}


TASK = MathTask()

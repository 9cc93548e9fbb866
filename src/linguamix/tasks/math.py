"""Math chain-of-thought in the mCoT format (Lai & Nissim 2024), used by mCoT-MATH and MGSM.

    Question:\\n{question}\\nAnswer:\\n{trigger}\\n      <- prompt (trigger = the language's "Let's think step by step.")
    {chain of thought ... The answer is N.}            <- completion (loss only here; EOS appended by the trainer)

`Question:`/`Answer:` stay English in every language, as in mCoT; only the trigger is localised.
The prompt ends with a newline so the prompt's tokens are a prefix of prompt + completion's tokens in
every script (scripts without spaces otherwise merge tokens across the boundary).
"""
from __future__ import annotations

from .. import languages
from ..records import Example, MathItem

NAME = "math"
TEMPLATE = "Question:\n{question}\nAnswer:\n{trigger}\n"
STOP = ("\nQuestion:",)
"""A base model continues with the next "Question:"; both backends cut there (and at EOS)."""


def render(item: MathItem) -> Example:
    lang = languages.get(item.lang)
    prompt = TEMPLATE.format(question=item.question.strip(), trigger=lang.cot_trigger)
    return Example(task=NAME, item_id=item.item_id, lang=item.lang, prompt=prompt,
                   completion=(item.solution or "").strip(), gold=item.answer)


def score(completion: str, gold, lang: str):
    """-> scoring.ItemScore (prediction, correct, strict, lenient, detail); the completion is cut at STOP."""
    from ..scoring import score_item

    return score_item(NAME, completion, gold, lang, stop=STOP)

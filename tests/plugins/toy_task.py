"""A third task defined outside linguamix, in one file: copy a digit string.

    Digits: 4 0 7 1\\nCopy:\\n      <- prompt
    4 0 7 1                       <- completion

Registered through the `linguamix.tasks` entry-point group (tests/test_task_plugin.py writes the
distribution metadata that declares it), with its own data format `toy-digits`.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from linguamix.records import Example, ItemScore
from linguamix.tasks import cut_at_stop


@dataclass(frozen=True)
class DigitItem:
    item_id: str
    lang: str
    digits: str


def load_digits(src, langs, options):
    """`toy-digits`: n parallel items (the same digits in every language), seeded; no files."""
    n, seed, start = int(options.get("n", 50)), int(options.get("seed", 0)), int(options.get("start", 0))
    items = {lang: [] for lang in langs}
    for k in range(start, start + n):
        digits = " ".join(str(d) for d in random.Random(f"{seed}:{k}").choices(range(10), k=4))
        for lang in langs:
            items[lang].append(DigitItem(f"toy-{k:05d}", lang, digits))
    return items


class CopyTask:
    name = "copy"
    stop = ("\n",)
    formats = ("toy-digits",)
    loaders = {"toy-digits": load_digits}
    modes = ("default",)
    gold = "the digit string to copy"

    def render(self, item: DigitItem) -> Example:
        return Example(task=self.name, item_id=item.item_id, lang=item.lang, prompt=f"Digits: {item.digits}\nCopy:\n",
                       completion=item.digits, gold=item.digits)

    def parse_gold(self, gold):
        if not isinstance(gold, str) or not gold.strip():
            raise ValueError(f"gold must be a non-empty digit string, got {gold!r}")
        return gold.strip()

    def score(self, completion, gold, lang, *, mode="default"):
        text = cut_at_stop(completion.lstrip(), self.stop).strip()
        ok = text == self.parse_gold(gold)
        return ItemScore(text or None, ok, ok, ok, {"copied": text})

    def summary_counts(self, details):
        return {"empty": sum(not d.get("copied") for d in details)}


TASK = CopyTask()

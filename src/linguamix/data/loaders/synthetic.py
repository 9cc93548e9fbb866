"""linguamix's generated parallel tasks (`synthetic-math`, `synthetic-api`; no files needed).

Options: n, seed, start (first item index), and for math `operand_range: [lo, hi]`, for API calls
`n_distractors` (APIs described besides the gold one)."""
from __future__ import annotations

from typing import Any

from ...records import ApiItem, MathItem
from ...tasks.api_call import render_turn
from .. import synthetic
from .common import Loaded, check_options, int_option


def load_synthetic(kind: str, langs: list[str], options: dict[str, Any]) -> Loaded:
    check_options(kind, options, {"n", "seed", "start", "operand_range", "n_distractors"})
    n, start = int_option(kind, options, "n", 1000), int_option(kind, options, "start", 0)
    seed = int_option(kind, options, "seed", 0, lo=-(2 ** 63), hi=2 ** 63 - 1)
    if kind == "synthetic-math":
        extra = {"operand_range": tuple(options["operand_range"])} if "operand_range" in options else {}
        records = synthetic.generate_math(n, langs, seed=seed, start=start, **extra)
        items = {lang: [MathItem(r.item_id, r.lang, r.question, float(r.answer), r.cot)
                        for r in records if r.lang == lang] for lang in langs}
    else:
        extra = {"n_distractors": int_option(kind, options, "n_distractors", 1, hi=1000)} \
            if "n_distractors" in options else {}
        records = synthetic.generate_api(n, langs, seed=seed, start=start, **extra)
        items = {}
        for lang in langs:
            items[lang] = [ApiItem(item_id=r.item_id, lang=lang, instruction=synthetic.api_instruction(r),
                                   dialogue="\n".join(render_turn(t) for t in r.dialogue),
                                   api_name=r.gold["api_name"], arguments=dict(r.gold["arguments"]))
                           for r in records if r.lang == lang]
    desc = ":".join(f"{k}={options[k]}" for k in sorted(options))
    return Loaded(items, [{"path": f"synthetic:{kind}:{desc}", "sha256": ""}])

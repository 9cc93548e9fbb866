#!/usr/bin/env python
"""Token statistics of the study's real data with a real Qwen3 tokenizer (issue 14, for docs/data.md).

    python scripts/qwen_base_tokenizer.py /tmp/qwen3-base                 # the tokenizer, offline
    PYTHONPATH=src python scripts/research/token_stats.py /tmp/qwen3-base --data ../shared/data

Every count is what linguamix trains on: `models.encode_example` (prompt with the tokenizer's special
tokens + completion + EOS), prompts rendered by `tasks.math.render` / `tasks.api.render`; API-Bank
training rows are first put in the level-1 test form by `apibank_level1.convert`. Prints Markdown.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import apibank_level1  # noqa: E402  (the prototype next to this script)

MAX_LENGTHS = (512, 1024, 2048, 4096)
PAPER = {"math": 2048, "api": 4096}  # configs/paper.yaml max_length per task


def stats(n: list[int]) -> str:
    a = np.asarray(n)
    return (f"{len(a)} | {a.mean():.1f} | {np.percentile(a, 50):.0f} | {np.percentile(a, 90):.0f} | {a.max()}")


def table(title: str, rows: dict[str, list[int]], note: str = "") -> str:
    out = [f"#### {title}", "", "| lang | n | mean | p50 | p90 | max |", "|---|---|---|---|---|---|"]
    out += [f"| {lang} | {stats(n)} |" for lang, n in rows.items()]
    return "\n".join(out + ([f"\n{note}"] if note else []) + [""])


def dropped(rows: dict[str, list[int]]) -> str:
    """Items longer than max_length in ANY language (dropped in all: build.py's rule), per threshold."""
    per_item = np.max(np.array(list(rows.values())), axis=0)
    cells = [f"{int((per_item > m).sum())}" for m in MAX_LENGTHS]
    langs = f"{len(rows)} languages" if len(rows) > 1 else "1 language"
    return f"| {len(per_item)} items, {langs} | " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("tokenizer", help="tokenizer directory (scripts/qwen_base_tokenizer.py)")
    p.add_argument("--data", default="../shared/data", help="the shared data folder")
    args = p.parse_args(argv)
    from transformers import AutoTokenizer

    from linguamix import languages
    from linguamix.data import sources
    from linguamix.models import encode_example
    from linguamix.records import ApiItem, MathItem
    from linguamix.tasks import api, math

    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    data = Path(args.data)
    ntok = lambda ex: len(encode_example(tok, ex.prompt, ex.completion)[0])  # noqa: E731
    ptok = lambda ex: len(tok(ex.prompt)["input_ids"])  # noqa: E731
    out, drops = [], []

    mgsm_langs = sorted(p.stem[5:] for p in (data / "mgsm").glob("mgsm_*.tsv"))
    mgsm = sources.load_mgsm(data / "mgsm", mgsm_langs)
    rows = {lang: [ptok(math.render(it)) for it in mgsm[lang]] for lang in mgsm_langs}
    rows = dict(sorted(rows.items(), key=lambda kv: np.mean(kv[1])))
    out.append(table("MGSM test prompts (mCoT form, 250 per language)", rows,
                     "Prompt only (the model generates up to `max_new_tokens` = 512 after it)."))

    # mCoT-7B's own MGSM answers: real multilingual chains of thought in mCoT-MATH's style
    rows = {}
    for lang in mgsm_langs:
        recs = [json.loads(line) for line in open(data / "mcot" / "outputs" / f"mcot_ft_mgsm_{lang}.json", encoding="utf-8")]
        rows[lang] = [ntok(math.render(MathItem(f"o{i}", lang, r["question"].split("\nAnswer:\n")[0]
                                                .removeprefix("Question:\n"), 0.0, r["response"])))
                      for i, r in enumerate(recs)]
    rows = dict(sorted(rows.items(), key=lambda kv: np.mean(kv[1])))
    out.append(table("MGSM prompt + mCoT-7B response + EOS (proxy for an mCoT-MATH training row)", rows))
    trained = {lang: n for lang, n in rows.items() if lang != "te"}  # te is evaluation-only, never trained
    drops.append(("math: MGSM prompt + mCoT-7B response, the 10 training languages", trained))
    drops.append(("math: the same with te", rows))

    ms_langs = sorted(p.stem[5:] for p in (data / "mcot" / "msvamp").glob("test_*.json"))
    ms = sources.load_msvamp(data / "mcot" / "msvamp", ms_langs)
    rows = {lang: [ntok(math.render(it)) for it in ms[lang]] for lang in ms_langs}
    rows = dict(sorted(rows.items(), key=lambda kv: np.mean(kv[1])))
    out.append(table("MSVAMP prompt + completion + EOS (1000 per language; no te)", rows,
                     "The completion is linguamix's worked equation + the language's answer sentence."))
    drops.append(("math: MSVAMP prompt + completion", rows))

    api_root = data / "api-bank"
    test = sources.load_api_bank(api_root, ["en"], split="test", per_language=False,
                                 levels=["level-1-given-desc"], train_pattern="")["en"]
    t_prompt = [ptok(api.render(it)) for it in test]
    t_full = [ntok(api.render(it)) for it in test]
    raw = json.loads((api_root / "training-data" / "lv3-api-train.json").read_text("utf-8"))
    conv = []
    for i, row in enumerate(raw):
        try:
            conv.append(apibank_level1.convert(row))
        except apibank_level1.RowError:
            continue
    seen, level1 = set(), []
    for ex in conv:
        if (ex.prompt, ex.completion) not in seen:
            seen.add((ex.prompt, ex.completion))
            level1.append(ex)
    items = [ApiItem(f"lv3#{i}", "en", ex.instruction, ex.input.removesuffix("\nGenerate API Request:\n"),
                     ex.api_name, ex.arguments, target=ex.completion) for i, ex in enumerate(level1)]
    lv3_conv = [ntok(api.render(it)) for it in items]
    lv3_raw = [len(encode_example(tok, r["instruction"] + r["input"], r["output"])[0]) for r in raw]
    out.append(table("API-Bank (English)", {
        "level-1 test, prompt": t_prompt, "level-1 test, prompt + gold + EOS": t_full,
        "lv3 train as shipped (instruction+input, output)": lv3_raw,
        "lv3 train in level-1 form (non-ToolSearcher, deduplicated)": lv3_conv}))
    drops.append(("api: lv3 train in level-1 form (English only)", {"en": lv3_conv}))
    drops.append(("api: level-1 test prompt + gold", {"en": t_full}))

    out += ["#### Items the cross-language length filter drops (longer than max_length in any language)", "",
            "| data | " + " | ".join(f"> {m}" for m in MAX_LENGTHS) + " |", "|---|" + "---|" * len(MAX_LENGTHS)]
    out += [dropped(r).replace("|", f"| {name}:", 1) for name, r in drops]
    out.append(f"\nconfigs/paper.yaml: max_length {PAPER['math']} (math), {PAPER['api']} (api).")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Token tables of a study's data, as docs/data.md shows them (Markdown on stdout).

    python scripts/qwen_base_tokenizer.py /tmp/qwen3-base            # the real Qwen3 tokenizer, offline
    python scripts/token_tables.py CONFIG --tokenizer /tmp/qwen3-base [--task T]

For each task: per language, tokens of every training-pool item as trained (prompt + completion + EOS,
`data.tokenize.encode_example`) and of every test prompt; then how many pool items the cross-language
length filter drops (an item longer than the limit in ANY training language goes in all of them) at
512 / 1024 / 2048 / 4096 tokens and at the config's own `max_length`. The items are read and rendered
by the data stage itself (`build.prepare`, `build.load_test`), so the numbers are the trained ones.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

LIMITS = (512, 1024, 2048, 4096)


def _row(lang: str, n: list[int]) -> str:
    a = np.asarray(n)
    return f"| {lang} | {len(a)} | {a.mean():.1f} | {np.percentile(a, 50):.0f} | {np.percentile(a, 90):.0f} | {a.max()} |"


def _table(title: str, rows: dict[str, list[int]]) -> str:
    head = [f"#### {title}", "", "| lang | n | mean | p50 | p90 | max |", "|---|---|---|---|---|---|"]
    order = sorted(rows, key=lambda lang: np.mean(rows[lang]))
    return "\n".join(head + [_row(lang, rows[lang]) for lang in order]) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config")
    p.add_argument("--tokenizer", required=True, help="a local tokenizer folder")
    p.add_argument("--task", help="only this task")
    args = p.parse_args(argv)

    from linguamix.config import load_config
    from linguamix.data.build import load_test, prepare, training_languages
    from linguamix.data.tokenize import encode_example, load_tokenizer
    from linguamix.errors import LinguamixError
    from linguamix.store import Store

    try:
        cfg = load_config(args.config)
        tok = load_tokenizer(args.tokenizer, local_files_only=True)
        with cfg.language_scope():
            for task in [args.task] if args.task else list(cfg.tasks):
                pool = prepare(cfg, task, tok, Store(cfg.output_path), langs=training_languages(cfg), cache=False)
                train = {lang: [len(encode_example(tok, ex.prompt, ex.completion)[0]) for ex in exs.values()]
                         for lang, exs in pool.examples.items()}
                tests = load_test(cfg, task, cfg.eval.languages)
                test = {lang: [len(encode_example(tok, ex.prompt, "")[0]) for ex in exs] for lang, exs in tests.items()}
                print(_table(f"{task}: training pool, prompt + completion + EOS ({cfg.task(task).train.source})", train))
                print(_table(f"{task}: test prompts ({cfg.task(task).test.source})", test))
                if any(ex.completion for exs in tests.values() for ex in exs):  # a gold to train on (API calls)
                    print(_table(f"{task}: test prompt + gold completion + EOS", {
                        lang: [len(encode_example(tok, ex.prompt, ex.completion)[0]) for ex in exs]
                        for lang, exs in tests.items()}))
                worst = np.max(np.array(list(train.values())), axis=0)
                limits = sorted({*LIMITS, cfg.task(task).max_length})
                print(f"#### {task}: items the length filter drops ({len(worst)} items, {len(train)} language(s))\n")
                print("| " + " | ".join(f"> {m}" for m in limits) + " |")
                print("|" + "---|" * len(limits))
                print("| " + " | ".join(str(int((worst > m).sum())) for m in limits) + " |\n")
    except LinguamixError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())

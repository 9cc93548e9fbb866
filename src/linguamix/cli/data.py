"""[data] building and inspecting the parallel mixtures; translating API-Bank (mAPICall-Bank)."""
from __future__ import annotations

import json
import sys

from .common import QUIET, TABLE, build_models, command, emit, group, load_study, say, split_list


def emit_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def _tokenizers(cfg, model_name: str | None, tokenizer: str | None = None):
    """(label, tokenizer) for each distinct tokenizer among the config's models (sizes share one), or the
    one `--tokenizer PATH` names (for models whose own tokenizer is not on this machine)."""
    from ..data.tokenize import load_tokenizer, tokenizer_fingerprint

    if tokenizer:
        return [(tokenizer, load_tokenizer(tokenizer, local_files_only=True))]
    build_models(cfg)
    seen, out = set(), []
    for model in ([cfg.model(model_name)] if model_name else cfg.models):
        tok = load_tokenizer(model.path(cfg.base_dir), trust_remote_code=model.trust_remote_code,
                             revision=model.revision)
        fp = tokenizer_fingerprint(tok)
        if fp not in seen:
            seen.add(fp)
            out.append((model.short_name, tok))
    return out


def _tasks(cfg, task: str | None) -> list[str]:
    if task:
        cfg.task(task)  # one line naming the tasks the config has
        return [task]
    return list(cfg.tasks)


def cmd_data_build(args) -> int:
    from ..data.build import build_all
    from ..mixtures import Mixture
    from ..store import Store

    cfg = load_study(args.config)
    mixtures = [Mixture.from_id(args.mixture)] if args.mixture else cfg.mixture_list()
    rows, warned = [], set()
    for label, tok in _tokenizers(cfg, args.model, args.tokenizer):
        for task in _tasks(cfg, args.task):
            for b in build_all(cfg, task, tok, Store(cfg.output_path), mixtures, progress=not args.quiet):
                tr, va = b.manifest["splits"]["train"], b.manifest["splits"]["validation"]
                for line in b.manifest.get("warnings", []) + ([f"{task} {b.mixture}: rebuilt, "
                                                               f"{b.manifest['rebuilt']['because']}"]
                                                              if b.manifest.get("rebuilt") else []):
                    if line not in warned:
                        warned.add(line)
                        say(f"warning: {line}")
                rows.append({"tokenizer_of": label, "task": task, "mixture": b.mixture,
                             "train_per_lang": tr["examples_per_language"], "val_per_lang": va["examples_per_language"],
                             "train_examples": tr["examples"],
                             "train_tokens": sum(t["total"] for t in tr["tokens"].values()),
                             "dropped_too_long": b.manifest["dropped_too_long"], "dir": str(b.train_file.parent)})
    emit(rows, args.format, [c for c in rows[0] if c != "dir"] if args.format == "table" and rows else None)
    return 0


def cmd_data_stats(args) -> int:
    from ..data.inspect import data_stats
    from ..store import Store

    cfg = load_study(args.config)
    report: dict[str, list] = {"splits": [], "sources": [], "warnings": []}
    for label, tok in _tokenizers(cfg, args.model, args.tokenizer):
        for task in _tasks(cfg, args.task):
            got = data_stats(cfg, task, tok, Store(cfg.output_path), progress=not args.quiet)
            report["splits"] += [{"tokenizer_of": label, **r} for r in got["splits"]]
            report["sources"] += [r for r in got["sources"] if r not in report["sources"]]
            report["warnings"] += [w for w in got["warnings"] if w not in report["warnings"]]
    if args.format == "json":
        emit_json(report)
    else:
        emit(report["splits"], args.format)
        if args.format == "table":
            print()
        emit(report["sources"], args.format)
    sys.stdout.flush()
    for line in report["warnings"]:
        say(f"warning: {line}")
    return 0


def cmd_data_show(args) -> int:
    from ..data.inspect import show_examples
    from ..store import Store

    cfg = load_study(args.config)
    task = _tasks(cfg, args.task)[0]
    tok = None
    if args.split != "test" or args.tokenizer or args.model:  # train/validation: selected after the length filter
        tok = _tokenizers(cfg, args.model or cfg.models[0].short_name, args.tokenizer)[0][1]
    rows = show_examples(cfg, task, args.split, args.lang, args.n, tok, Store(cfg.output_path),
                         progress=not args.quiet)
    if args.format == "json":
        emit_json(rows)
        return 0
    for k, r in enumerate(rows, 1):
        tokens = f"  tokens={r['prompt_tokens']}+{r['completion_tokens']}" if "prompt_tokens" in r else ""
        print(f"===== [{k}/{len(rows)}] {task} {r['split']} {r['lang']} id={r['id']}{tokens}")
        print(f"{r['prompt']}----- completion\n{r['completion']}\n")
    if not rows:
        say(f"no {args.split} examples in '{args.lang}'")
    return 0


def cmd_translate(args) -> int:
    """Build mAPICall-Bank (or translate any JSONL dataset) with an OpenAI-compatible LLM endpoint."""
    from ..translate import load_translate_config, summary_rows, translate

    cfg = load_translate_config(args.config)
    manifest = translate(cfg, source=args.source, langs=split_list(args.langs), out_dir=args.out,
                         source_dir=args.source_dir, files=split_list(args.files), fields=split_list(args.fields),
                         limit=args.limit, progress=not args.quiet)
    emit(summary_rows(manifest), args.format)
    return 0


def _data_args(p) -> None:
    p.add_argument("config", help="study config (YAML)")
    p.add_argument("--task", help="only this task (default: all tasks of the config)")
    p.add_argument("--model", help="only this model's tokenizer (default: every distinct tokenizer)")
    p.add_argument("--tokenizer", metavar="PATH", help="use this local tokenizer folder instead of the models' own "
                   "(e.g. scripts/qwen_base_tokenizer.py's when the hub is not reachable)")


def _build_args(p) -> None:
    _data_args(p)
    p.add_argument("--mixture", help="only this mixture id (default: the whole design)")


def _show_args(p) -> None:
    p.add_argument("config", help="study config (YAML)")
    p.add_argument("--task", help="the task (default: the config's first)")
    p.add_argument("--split", choices=("train", "validation", "test"), default="train",
                   help="train/validation: the items `data build` selects, in their seeded order; test: file order "
                        "(default: train)")
    p.add_argument("--lang", default="en", help="language code (default: en)")
    p.add_argument("--n", type=int, default=3, help="how many examples (default: 3)")
    p.add_argument("--model", help="the model whose tokenizer selects the items (default: the first)")
    p.add_argument("--tokenizer", metavar="PATH", help="use this local tokenizer folder instead of the model's own")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text: prompt then completion; json: a list of {id, lang, split, prompt, completion, gold, "
                        "prompt_tokens, completion_tokens} (default: text)")


def _translate_args(p) -> None:
    p.add_argument("config", help="translation config (YAML): engine, validation, prompt version")
    p.add_argument("--source", choices=("api-bank", "jsonl"), default="api-bank",
                   help="api-bank: dialogue and training files; jsonl: the --fields of each row (default: api-bank)")
    p.add_argument("--langs", required=True, help="comma-separated target languages, e.g. es,ja,bn")
    p.add_argument("--out", required=True, help="output folder (one subfolder per language; rerun to resume)")
    p.add_argument("--source-dir", help="API-Bank folder, or a JSONL file/folder (default: the config's source_dir)")
    p.add_argument("--files", help="comma-separated globs under the source folder (default: the config's "
                                   "include, else level-1 dialogues + lv*-api-train)")
    p.add_argument("--fields", help="jsonl mode: comma-separated string fields to translate")
    p.add_argument("--limit", type=int, help="only the first N examples (dialogue files or rows)")


def register(sub) -> None:
    data = group(sub, "data", "[data] build and inspect the parallel training mixtures")
    command(data, "build", cmd_data_build, "[data] build (or reuse) the train/validation data of mixtures", QUIET,
            TABLE, args=_build_args)
    command(data, "stats", cmd_data_stats, "[data] per task, split and language: examples, APIs and token statistics; "
                                           "per source file: rows taken and dropped with the reason; warnings on "
                                           "counts that differ from the config's `expected`", QUIET, TABLE,
            args=_data_args)
    command(data, "show", cmd_data_show, "[data] print examples exactly as the model sees them (prompt, completion)",
            QUIET, args=_show_args)
    command(sub, "translate", cmd_translate, "[data] translate API-Bank into other languages (mAPICall-Bank) or any "
                                             "JSONL dataset with an OpenAI-compatible LLM, validated and cached",
            QUIET, TABLE, args=_translate_args)

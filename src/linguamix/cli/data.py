"""[data] building and inspecting the parallel mixtures; translating API-Bank (mAPICall-Bank)."""
from __future__ import annotations

from .common import QUIET, TABLE, build_models, command, emit, group, load_study, split_list


def _tokenizers(cfg, model_name: str | None):
    """(model, tokenizer) for each distinct tokenizer among the config's models (sizes share one)."""
    from ..data.tokenize import load_tokenizer, tokenizer_fingerprint

    seen, out = set(), []
    for model in ([cfg.model(model_name)] if model_name else cfg.models):
        tok = load_tokenizer(model.path(cfg.base_dir), trust_remote_code=model.trust_remote_code,
                             revision=model.revision)
        fp = tokenizer_fingerprint(tok)
        if fp not in seen:
            seen.add(fp)
            out.append((model, tok))
    return out


def cmd_data_build(args) -> int:
    from ..data.build import build_all
    from ..mixtures import Mixture
    from ..store import Store

    cfg = load_study(args.config)
    build_models(cfg)
    mixtures = [Mixture.from_id(args.mixture)] if args.mixture else cfg.mixture_list()
    rows = []
    for model, tok in _tokenizers(cfg, args.model):
        for task in ([args.task] if args.task else list(cfg.tasks)):
            cfg.task(task)
            for b in build_all(cfg, task, tok, Store(cfg.output_path), mixtures, progress=not args.quiet):
                tr, va = b.manifest["splits"]["train"], b.manifest["splits"]["validation"]
                rows.append({"tokenizer_of": model.short_name, "task": task, "mixture": b.mixture,
                             "train_per_lang": tr["examples_per_language"], "val_per_lang": va["examples_per_language"],
                             "train_examples": tr["examples"],
                             "train_tokens": sum(t["total"] for t in tr["tokens"].values()),
                             "dropped_too_long": b.manifest["dropped_too_long"], "dir": str(b.train_file.parent)})
    emit(rows, args.format, [c for c in rows[0] if c != "dir"] if args.format == "table" and rows else None)
    return 0


def cmd_data_stats(args) -> int:
    from ..data.build import data_stats
    from ..store import Store

    cfg = load_study(args.config)
    build_models(cfg)
    rows = []
    for model, tok in _tokenizers(cfg, args.model):
        for task in ([args.task] if args.task else list(cfg.tasks)):
            cfg.task(task)
            rows += [{"tokenizer_of": model.short_name, **r}
                     for r in data_stats(cfg, task, tok, Store(cfg.output_path), progress=not args.quiet)]
    emit(rows, args.format)
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


def _build_args(p) -> None:
    _data_args(p)
    p.add_argument("--mixture", help="only this mixture id (default: the whole design)")


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
    command(data, "stats", cmd_data_stats, "[data] per-language counts and token statistics", QUIET, TABLE,
            args=_data_args)
    command(sub, "translate", cmd_translate, "[data] translate API-Bank into other languages (mAPICall-Bank) or any "
                                             "JSONL dataset with an OpenAI-compatible LLM, validated and cached",
            QUIET, TABLE, args=_translate_args)

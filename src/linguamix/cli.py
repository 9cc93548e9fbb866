"""The `linguamix` command. The only module that imports every stage (lazily, so `--help` is fast).

Stages, left to right: design -> data -> train -> evaluate -> store -> analyze -> report.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from typing import Any, Callable, Sequence

from .errors import ConfigError, LinguamixError

FORMATS = ("table", "json", "csv")


# -- output helpers ----------------------------------------------------------------------------------
def _cell(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    if isinstance(v, float):
        return f"{v:g}"
    return "" if v is None else str(v)


def emit(rows: list[dict[str, Any]], fmt: str, columns: Sequence[str] | None = None, out=None) -> None:
    """Print rows as an aligned table, a JSON list, or CSV."""
    out = out or sys.stdout
    columns = list(columns or (rows[0].keys() if rows else []))
    if fmt == "json":
        json.dump(rows, out, indent=2, ensure_ascii=False)
        out.write("\n")
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([_cell(r.get(c)) for c in columns])
        out.write(buf.getvalue())
    else:
        cells = [[_cell(r.get(c)) for c in columns] for r in rows]
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
        out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
        for row in cells:
            out.write("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() + "\n")


def _format_arg(p: argparse.ArgumentParser, default: str = "table") -> None:
    p.add_argument("--format", choices=FORMATS, default=default, help=f"output format (default: {default})")


# -- design stage ------------------------------------------------------------------------------------
def cmd_languages(args) -> int:
    from . import languages

    if args.extra:
        languages.register_yaml(args.extra)
    rows = []
    for lang in languages.all_languages():
        rows.append({"code": lang.code, "iso639_3": lang.iso639_3, "name": lang.name, "resource": lang.resource,
                     "family": lang.family, "subfamily": lang.subfamily, "script": lang.script,
                     "role": lang.role, "cot_trigger": lang.cot_trigger, "answer_phrase": lang.answer_phrase})
    emit(rows, args.format)
    return 0


def cmd_design(args) -> int:
    from . import mixtures

    if args.config:
        from .config import load_config

        mix = load_config(args.config).mixture_list()
    else:
        mix = mixtures.design_mixtures(args.preset)
    emit([m.to_dict() for m in mix], args.format, ["id", "n_languages", "languages", "group"])
    if args.format == "table":
        print(f"{len(mix)} mixtures", file=sys.stderr)
    return 0


def cmd_plan(args) -> int:
    from .config import load_config
    from .study import plan_rows

    cfg = load_config(args.config)
    rows = plan_rows(cfg)
    emit(rows, args.format, ["kind", "model", "task", "mixture", "n_languages", "seed", "status"])
    if args.format == "table":
        n_train = sum(r["kind"] == "train" for r in rows)
        done = sum(r["status"] == "done" for r in rows)
        print(f"{n_train} training runs + {len(rows) - n_train} baseline evaluations; {done} done",
              file=sys.stderr)
    return 0


# -- data stage --------------------------------------------------------------------------------------
def _tokenizers(cfg, model_name: str | None):
    """(model, tokenizer) for each distinct tokenizer among the config's models (sizes share one)."""
    from .models import load_tokenizer, model_path, tokenizer_fingerprint

    seen, out = set(), []
    for model in ([cfg.model(model_name)] if model_name else cfg.models):
        tok = load_tokenizer(model_path(model, cfg.base_dir), trust_remote_code=model.trust_remote_code,
                             revision=model.revision)
        fp = tokenizer_fingerprint(tok)
        if fp not in seen:
            seen.add(fp)
            out.append((model, tok))
    return out


def cmd_data_build(args) -> int:
    from .config import load_config
    from .data.build import build_all
    from .mixtures import Mixture
    from .store import Store

    cfg = load_config(args.config)
    store = Store(cfg.output_path)
    mixtures = [Mixture.from_id(args.mixture)] if args.mixture else cfg.mixture_list()
    rows = []
    for model, tok in _tokenizers(cfg, args.model):
        for task in ([args.task] if args.task else list(cfg.tasks)):
            cfg.task(task)
            for b in build_all(cfg, task, tok, store, mixtures, progress=not args.quiet):
                tr, va = b.manifest["splits"]["train"], b.manifest["splits"]["validation"]
                rows.append({"tokenizer_of": model.short_name, "task": task, "mixture": b.mixture,
                             "train_per_lang": tr["examples_per_language"], "val_per_lang": va["examples_per_language"],
                             "train_examples": tr["examples"],
                             "train_tokens": sum(t["total"] for t in tr["tokens"].values()),
                             "dropped_too_long": b.manifest["dropped_too_long"], "dir": str(b.train_file.parent)})
    emit(rows, args.format, [c for c in rows[0] if c != "dir"] if args.format == "table" and rows else None)
    return 0


def cmd_data_stats(args) -> int:
    from .config import load_config
    from .data.build import data_stats
    from .store import Store

    cfg = load_config(args.config)
    store = Store(cfg.output_path)
    rows = []
    for model, tok in _tokenizers(cfg, args.model):
        for task in ([args.task] if args.task else list(cfg.tasks)):
            cfg.task(task)
            rows += [{"tokenizer_of": model.short_name, **r} for r in data_stats(cfg, task, tok, store,
                                                                                  progress=not args.quiet)]
    emit(rows, args.format)
    return 0


def cmd_translate(args) -> int:
    """Build mAPICall-Bank (or translate any JSONL dataset) with an OpenAI-compatible LLM endpoint."""
    from .data.translate import load_translate_config, summary_rows, translate

    cfg = load_translate_config(args.config)
    split = (lambda s: [x.strip() for x in s.split(",") if x.strip()] if s else None)
    manifest = translate(cfg, source=args.source, langs=split(args.langs), out_dir=args.out,
                         source_dir=args.source_dir, files=split(args.files), fields=split(args.fields),
                         limit=args.limit, progress=not args.quiet)
    emit(summary_rows(manifest), args.format)
    return 0


# -- evaluate stage ----------------------------------------------------------------------------------
def cmd_score(args) -> int:
    """Score completions produced elsewhere; nothing is written unless every row is valid."""
    from pathlib import Path

    from . import store
    from .errors import DataError
    from .scoring import score_row, summarize

    if args.task != "math" and args.mode != "default":
        raise ConfigError(f"--mode {args.mode} exists only for --task math")
    path = Path(args.input)
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(score_row(json.loads(line), args.task, mode=args.mode))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {i}: invalid JSON ({e.msg})") from None
        except ValueError as e:
            raise DataError(f"{path}: line {i}: {e}") from None
    store.write_jsonl(args.output, rows)
    per_lang = summarize(rows, "lang")
    overall = summarize(rows, None)
    if args.summary:
        store.write_json(args.summary, {"task": args.task, "mode": args.mode, "input": str(path),
                                        "overall": overall[0] if overall else None, "languages": per_lang})
    else:
        emit(per_lang + [{"lang": "ALL", **o} for o in overall], "table", out=sys.stderr)
    return 0


# -- train and evaluate -----------------------------------------------------------------------------
def _config_for_model(args):
    """The study config (--config) or, without one, a config with this model and the default tasks."""
    from .config import load_config, parse_config

    if args.config:
        cfg = load_config(args.config)
        for m in cfg.models:
            if args.model in (m.short_name, m.id):
                return cfg, m
        raise ConfigError(f"{args.config}: no model with name or id '{args.model}' (have: "
                          f"{[m.short_name for m in cfg.models]})")
    from .models import describe_model

    family, size_b = describe_model(args.model)
    cfg = parse_config({"models": [{"id": args.model, "family": family, "size_b": size_b}]}, source="<command line>")
    return cfg, cfg.models[0]


def cmd_train(args) -> int:
    from .records import RunSpec
    from .store import RunDir
    from .study import execute

    cfg, model = _config_for_model(args)
    cfg.task(args.task)
    from .mixtures import Mixture

    spec = RunSpec(model=model.short_name, task=args.task, mixture=Mixture.from_id(args.mixture).id,
                   seed=args.seed if args.seed is not None else cfg.seeds[0])
    rd = RunDir(args.out)
    if rd.is_complete():
        print(f"{rd.path}: already complete (skipped)", file=sys.stderr)
        return 0
    code = execute(cfg, spec, rd, progress=not args.quiet, allow_config_change=args.allow_config_change,
                   evaluate_test=not args.no_eval)
    if code == 0:
        _print_summary(rd)
    return code


def _print_summary(rd) -> None:
    summary = rd.read_summary("test")
    if summary:
        emit([{k: r[k] for k in ("lang", "n", "correct", "accuracy", "ci_low", "ci_high")} for r in summary["languages"]],
             "table")
    print(f"results in {rd.path}", file=sys.stderr)


def cmd_evaluate(args) -> int:
    from .config import SourceConfig
    from .data.build import load_test
    from .evaluate import evaluate, make_generator, resolve_model_dir
    from .mixtures import PRETRAINED
    from .models import load_tokenizer
    from .records import RunSpec
    from .store import RunDir, read_json
    from pathlib import Path

    model_dir = resolve_model_dir(args.model)
    run_manifest = read_json(Path(args.model) / "run.json") if model_dir != args.model else None
    cfg, model = _config_for_model(argparse.Namespace(config=args.config, model=args.model)) if not run_manifest \
        else _config_for_model(argparse.Namespace(config=args.config, model=run_manifest["spec"]["model"])) \
        if args.config else (None, None)
    if cfg is None:  # a run directory without --config: its own manifest has the config
        from .config import ModelConfig, parse_config

        m = ModelConfig.model_validate(run_manifest["config"]["model"])
        cfg = parse_config({"models": [m.model_dump(mode="json")],
                            "tasks": {run_manifest["spec"]["task"]: run_manifest["config"]["task"]}},
                           source=f"{args.model}/run.json")
        model = cfg.models[0]
    task = args.task
    tc = cfg.task(task)
    if args.test_source:
        tc = tc.model_copy(update={"test": SourceConfig(source=args.test_source, format=args.test_format or "auto",
                                                        options=tc.test.options if not args.test_format else {})})
        cfg = cfg.model_copy(update={"tasks": {**cfg.tasks, task: tc}})
    langs = args.langs.split(",") if args.langs else cfg.eval.languages
    from . import languages

    for code in langs:
        languages.get(code)
    test = load_test(cfg, task, langs)
    if args.limit:
        test = {lang: exs[: args.limit] for lang, exs in test.items()}
    mixture = run_manifest["spec"]["mixture"] if run_manifest else PRETRAINED
    spec = RunSpec(model=model.short_name, task=task, mixture=mixture, seed=cfg.seeds[0])
    rd = RunDir(args.out)
    rd.init(spec.to_dict(), {"model": model.model_dump(mode="json"), "task": tc.model_dump(mode="json"),
                             "eval": {"languages": langs, "backend": args.backend, "limit": args.limit},
                             "evaluated_model": model_dir}, allow_config_change=True)
    rd.set_status("running")
    tok = load_tokenizer(model_dir, trust_remote_code=model.trust_remote_code)
    gen = make_generator(args.backend, model_dir, tok, batch_size=args.batch_size,
                         trust_remote_code=model.trust_remote_code)
    evaluate(gen, task, test, rd, max_new_tokens=args.max_new_tokens or tc.max_new_tokens, progress=not args.quiet,
             extra={"model": model_dir})
    rd.set_status("done")
    _print_summary(rd)
    return 0


# -- parser ------------------------------------------------------------------------------------------
def _add(sub, name: str, func: Callable, help: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=help)
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="linguamix",
        description="Controlled multilingual post-training studies: design -> data -> train -> evaluate -> "
                    "store -> analyze -> report.")
    parser.add_argument("--version", action="version", version=f"linguamix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = _add(sub, "languages", cmd_languages, "[design] print the language table")
    p.add_argument("--extra", help="also load languages from this YAML file")
    _format_arg(p)

    p = _add(sub, "design", cmd_design, "[design] print the mixtures of a design (the paper's 22 by default)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--preset", default="paper", help="built-in design (default: paper)")
    g.add_argument("config", nargs="?", help="study config whose `mixtures` section to expand")
    _format_arg(p)

    p = _add(sub, "plan", cmd_plan, "[design] list every run of a study with its status in the store")
    p.add_argument("config", help="study config (YAML)")
    _format_arg(p)

    p = _add(sub, "train", cmd_train, "[train] fine-tune a base model on one mixture, select by validation "
                                      "accuracy, evaluate the selected checkpoint")
    p.add_argument("--model", required=True, help="HF id or local path (or a model name of --config)")
    p.add_argument("--task", required=True, choices=["math", "api"])
    p.add_argument("--mixture", required=True, help="mixture id, e.g. en or bn+en+es+ja")
    p.add_argument("--out", required=True, help="run directory (rerun the command to resume)")
    p.add_argument("--config", help="study config giving data, recipe and evaluation settings")
    p.add_argument("--seed", type=int, help="training seed (default: the config's first seed)")
    p.add_argument("--no-eval", action="store_true", help="stop after training and selection")
    p.add_argument("--allow-config-change", action="store_true", help="reuse RUN_DIR although its config changed")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = _add(sub, "evaluate", cmd_evaluate, "[evaluate] generate on a test set per language, score, store "
                                            "per-example rows and a per-language summary")
    p.add_argument("--model", required=True, help="HF id, local path, or a trained run directory")
    p.add_argument("--task", required=True, choices=["math", "api"])
    p.add_argument("--langs", help="comma-separated codes (default: the config's evaluation languages)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--config", help="study config (test data source, generation budget)")
    p.add_argument("--test-source", help="override the test data: HF dataset id or local path")
    p.add_argument("--test-format", help="format of --test-source (mgsm, api-bank, mapicall-bank, ...)")
    p.add_argument("--backend", choices=["hf", "vllm"], default="hf")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, help="default: the task's max_new_tokens")
    p.add_argument("--limit", type=int, help="only the first N items per language")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    data = sub.add_parser("data", help="[data] build and inspect the parallel training mixtures",
                          description="[data] build and inspect the parallel training mixtures")
    dsub = data.add_subparsers(dest="data_command", metavar="COMMAND")
    dsub.required = True
    for name, func, help in (("build", cmd_data_build, "build (or reuse) the train/validation data of mixtures"),
                             ("stats", cmd_data_stats, "per-language counts and token statistics")):
        p = _add(dsub, name, func, f"[data] {help}")
        p.add_argument("config", help="study config (YAML)")
        p.add_argument("--task", help="only this task (default: all tasks of the config)")
        p.add_argument("--model", help="only this model's tokenizer (default: every distinct tokenizer)")
        if name == "build":
            p.add_argument("--mixture", help="only this mixture id (default: the whole design)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        _format_arg(p)

    p = _add(sub, "translate", cmd_translate, "[data] translate API-Bank into other languages (mAPICall-Bank) or "
                                              "any JSONL dataset with an OpenAI-compatible LLM, validated and cached")
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
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _format_arg(p)

    p = _add(sub, "score", cmd_score, "[evaluate] score completions produced elsewhere (JSONL in, JSONL out)")
    p.add_argument("--task", required=True, choices=("math", "api"), help="answer scorer to use")
    p.add_argument("--input", required=True, metavar="PRED.jsonl",
                   help='rows {"id", "lang", "completion", "answer"} (answer: gold number, or gold API call)')
    p.add_argument("--output", required=True, metavar="OUT.jsonl",
                   help="the input rows plus prediction, correct, strict, detail")
    p.add_argument("--mode", choices=("default", "mcot_compat"), default="default",
                   help="math only: mcot_compat reproduces mCoT's own scorer (default: default)")
    p.add_argument("--summary", metavar="FILE", help="write the per-language summary here as JSON "
                   "(default: a table on stderr)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LinguamixError as e:
        print(f"linguamix: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("linguamix: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


__all__ = ["main", "emit", "ConfigError"]

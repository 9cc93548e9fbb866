"""[train] [evaluate] one run by hand: fine-tune and select, evaluate a model, score completions."""
from __future__ import annotations

import os
import sys

from ..errors import ConfigError, DataError
from .common import QUIET, build_models, command, config_flags, emit, load_study, override, say

EVAL_FLAGS = ("backend", "batch_size")
TASK_FLAGS = ("max_new_tokens",)


def _config_for_model(args):
    """The study config (--config) or, without one, a config with this model and the default tasks."""
    from ..config import parse_config
    from ..models import describe_model

    if args.config:
        cfg = load_study(args.config)
        for m in cfg.models:
            if args.model in (m.short_name, m.id):
                build_models(cfg)
                return cfg, m
        raise ConfigError(f"{args.config}: no model with name or id '{args.model}' (have: "
                          f"{[m.short_name for m in cfg.models]})")
    family, size_b = describe_model(args.model)
    cfg = parse_config({"models": [{"id": args.model, "family": family, "size_b": size_b}]}, source="<command line>")
    return cfg, cfg.models[0]


def cmd_train(args) -> int:
    from ..mixtures import Mixture
    from ..records import RunSpec
    from ..store import RunDir
    from ..study.pipeline import execute

    cfg, model = _config_for_model(args)
    cfg.task(args.task)
    spec = RunSpec(model=model.short_name, task=args.task, mixture=Mixture.from_id(args.mixture).id,
                   seed=args.seed if args.seed is not None else cfg.seeds[0])
    rd = RunDir(args.out)
    if rd.is_complete():
        say(f"{rd.path}: already complete (skipped)")
        return 0
    code = execute(cfg, spec, rd, progress=not args.quiet, allow_config_change=args.allow_config_change,
                   evaluate_test=not args.no_eval)
    if code == 0 and os.environ.get("RANK", "0") == "0":  # under torchrun / accelerate launch: once
        _print_summary(rd)
    return code


def cmd_evaluate(args) -> int:
    """Evaluate a base model or a trained run's selected checkpoint (see `evaluate.evaluate_request`)."""
    from dataclasses import replace

    from ..evaluate import evaluate_request, parse_langs, resolve_request, with_test_source

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    req = resolve_request(args.model, config=args.config)
    with req.cfg.language_scope():  # the config's (or the run's) extra languages count for --langs too
        langs = parse_langs(args.langs) if args.langs is not None else None
        cfg = with_test_source(req.cfg, args.task, args.test_source, args.test_format)
        tc = cfg.task(args.task)
        cfg = cfg.model_copy(update={"eval": override(cfg.eval, args, EVAL_FLAGS),
                                     "tasks": {**cfg.tasks, args.task: override(tc, args, TASK_FLAGS)}})
        rd, skipped = evaluate_request(replace(req, cfg=cfg), args.task, args.out, langs=langs, limit=args.limit,
                                       dtype=args.dtype, progress=not args.quiet,
                                       allow_config_change=args.allow_config_change)
    if skipped:
        say(f"{rd.path}: already complete (skipped)")
    _print_summary(rd)
    return 0


def _print_summary(rd) -> None:
    summary = rd.read_summary("test")
    if summary:
        emit([{k: r[k] for k in ("lang", "n", "correct", "accuracy", "ci_low", "ci_high")} for r in summary["languages"]],
             "table")
    say(f"results in {rd.path}")


def cmd_score(args) -> int:
    """Score completions produced elsewhere; nothing is written unless every row is valid."""
    from pathlib import Path

    from .. import store, tasks
    from ..evaluate import score_row, summarize

    task = tasks.get(args.task)
    if args.mode not in task.modes:
        raise ConfigError(f"--mode {args.mode}: the {args.task} task scores in {', '.join(task.modes)}")
    path = Path(args.input)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    rows = []
    for n, row in store.iter_records(path):
        try:
            rows.append(score_row(row, args.task, mode=args.mode))
        except ValueError as e:
            raise DataError(f"{path}: line {n}: {e}") from None
    per_lang = summarize(rows, "lang", task=args.task)
    overall = summarize(rows, None, task=args.task)
    outputs = {Path(args.output): store.jsonl_text(rows)}
    if args.summary:
        outputs[Path(args.summary)] = store.json_text({"task": args.task, "mode": args.mode, "input": str(path),
                                                       "overall": overall[0] if overall else None,
                                                       "languages": per_lang})
    store.write_files(outputs)  # both or neither
    if not args.summary:
        emit(per_lang + [{"lang": "ALL", **o} for o in overall], "table", out=sys.stderr)
    return 0


def _train_args(p) -> None:
    from .. import tasks

    p.add_argument("--model", required=True, help="HF id or local path (or a model name of --config)")
    p.add_argument("--task", required=True, choices=tasks.names())
    p.add_argument("--mixture", required=True, help="mixture id, e.g. en or bn+en+es+ja")
    p.add_argument("--out", required=True, help="run directory (rerun the command to resume)")
    p.add_argument("--config", help="study config giving data, recipe and evaluation settings")
    p.add_argument("--seed", type=int, help="training seed (default: the config's first seed)")
    p.add_argument("--no-eval", action="store_true", help="stop after training and selection")
    p.add_argument("--allow-config-change", action="store_true", help="reuse RUN_DIR although its config changed")


def _evaluate_args(p) -> None:
    from .. import tasks
    from ..config import EvalConfig, TaskConfig

    p.add_argument("--model", required=True, help="HF id, local path, or a trained run directory (run.json + model/)")
    p.add_argument("--task", required=True, choices=tasks.names())
    p.add_argument("--langs", help="comma-separated codes (default: the config's evaluation languages)")
    p.add_argument("--out", required=True, help="output directory (rerun the command to skip a finished one)")
    p.add_argument("--config", help="study config (test data source, generation budget, evaluation settings); "
                                     "default: a trained run's own settings, else the default task sources")
    p.add_argument("--test-source", help="override the test data: HF dataset id or local path")
    p.add_argument("--test-format", help="format of --test-source (mgsm, api-bank, mapicall-bank, synthetic-math, ...; "
                                         "default: auto)")
    config_flags(p, EvalConfig, EVAL_FLAGS, "eval")
    config_flags(p, TaskConfig, TASK_FLAGS, "tasks.<task>")
    p.add_argument("--dtype", choices=["auto", "bf16", "fp32"], default="auto",
                   help="auto: bf16 on GPU, fp32 on CPU (default: auto)")
    p.add_argument("--limit", type=int, help="only the first N items per language")
    p.add_argument("--allow-config-change", action="store_true", help="reuse --out although it holds another evaluation")


def _score_args(p) -> None:
    from .. import tasks

    p.add_argument("--task", required=True, choices=tasks.names(), help="answer scorer to use")
    p.add_argument("--input", required=True, metavar="PRED.jsonl",
                   help='rows {"id", "lang", "completion", "answer"} (answer: the gold, as the task defines it)')
    p.add_argument("--output", required=True, metavar="OUT.jsonl",
                   help="the input rows plus prediction, correct, strict, lenient, detail")
    p.add_argument("--mode", default="default", help="scoring mode of the task (math: default or mcot_compat, which "
                                                     "reproduces mCoT's own scorer; default: default)")
    p.add_argument("--summary", metavar="FILE", help="write the per-language summary here as JSON "
                   "(default: a table on stderr)")


def register(sub) -> None:
    command(sub, "train", cmd_train, "[train] fine-tune a base model on one mixture, select by validation accuracy, "
                                     "evaluate the selected checkpoint", QUIET, args=_train_args)
    command(sub, "evaluate", cmd_evaluate, "[evaluate] generate on a test set per language, score, store per-example "
                                           "rows and a per-language summary", QUIET, args=_evaluate_args)
    command(sub, "score", cmd_score, "[evaluate] score completions produced elsewhere (JSONL in, JSONL out)",
            args=_score_args)

"""[study] run the whole design and watch its state; [store] the results database; the demo."""
from __future__ import annotations

import json
import sys

from .common import QUIET, TABLE, build_models, command, config_flags, emit, group, load_study, override, say

EXECUTOR_FLAGS = ("max_parallel", "max_retries")
ONLY_HELP = ("only runs matching KEY=VALUE[|VALUE...], comma-separated, repeatable; KEY: model, task, mixture, "
             "kind (train|baseline), seed")


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt  # the orchestrator's Ctrl-C path: stop the active runs (a training run saves)


def cmd_study_run(args) -> int:
    import signal

    from ..runs import parse_only
    from ..study.executors import make_executor
    from ..study.loop import run_study

    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    cfg = load_study(args.config)
    cfg = cfg.model_copy(update={"executor": override(cfg.executor, args, EXECUTOR_FLAGS)})
    only = parse_only(args.only)
    build_models(cfg)
    executor = make_executor(cfg, args.executor, isolation=args.isolation, gpus_per_run=args.gpus_per_run)
    try:
        report = run_study(cfg, args.config, executor, only=only, progress=not args.quiet,
                           changed="rerun" if args.rerun_changed else "accept" if args.accept_changed else "refuse",
                           retry_cancelled=args.retry_cancelled)
    finally:
        if hasattr(executor, "close"):
            executor.close()
    return report.exit_code


def cmd_study_status(args) -> int:
    from collections import Counter

    from ..runs import parse_only, select
    from ..study.state import STATES, status_rows, summary_line, time_line, time_summary
    from ..timing import format_seconds, shares

    cfg = load_study(args.config)
    every = status_rows(cfg, select(cfg, parse_only(args.only)))
    rows = [r for r in every if not args.state or r["state"] in args.state]
    if args.format == "json":
        counts = Counter(r["state"] for r in every)
        summary = {s: counts.get(s, 0) for s in STATES}
        json.dump({"summary": {**summary, "line": summary_line(every)}, "time": time_summary(every), "runs": rows},
                  sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    if args.format == "table":
        rows = [{**r, "elapsed": format_seconds(r["elapsed_s"]),
                 "job": f"{r['job_id']} {r['job_state']}" if r["job_id"] else "",
                 **{f"{k}%": round(100 * v) for k, v in _short_shares(shares(r["timings"])).items()
                    if any(r["timings"].values())}} for r in rows]
        slurm = ["job"] if any(r["job"] for r in rows) else []  # SLURM's job id and state, for runs it ran
        timed = [f"{k}%" for k in SHORT.values()] if any(any(r["timings"].values()) for r in rows) else []
        emit(rows, "table", ["kind", "model", "task", "mixture", "seed", "state", "attempts", "elapsed", *slurm,
                             *timed, "reason"])
    else:
        flat = [{**{k: v for k, v in r.items() if k != "timings"},
                 **{f"time_{k}_s": round(v, 3) for k, v in r["timings"].items()}} for r in rows]
        emit(flat, args.format, list(flat[0]) if flat else None)
    out = sys.stdout if args.format == "table" else sys.stderr
    print(summary_line(every), file=out)
    line = time_line(every)
    if line:
        print(line, file=out)
    return 0


SHORT = {"data": "data", "model_load": "load", "train_steps": "train", "validation": "val", "test_eval": "test",
         "saving": "save"}
"""Column names of the per-stage shares in the `study status` table."""


def _short_shares(fractions: dict[str, float]) -> dict[str, float]:
    return {SHORT[k]: v for k, v in fractions.items()}


def cmd_study_run_one(args) -> int:
    from ..runs import find_run
    from ..study.pipeline import run_one

    cfg = load_study(args.config)
    return run_one(cfg, find_run(cfg, args.run), progress=not args.quiet, allow_config_change=args.allow_config_change)


def cmd_collect(args) -> int:
    from ..collect import collect

    res = collect(load_study(args.config), out=args.out, fmt=args.format, accept_changed=args.accept_changed)
    say(f"wrote {res.path} ({res.format}): " + ", ".join(f"{t} {n}" for t, n in res.rows.items()) + " rows")
    return 0


def cmd_demo(args) -> int:
    from ..demo import run_demo

    run_demo(args.out, quick=args.quick, workers=args.workers, progress=not args.quiet)
    return 0


def _run_args(p) -> None:
    from ..config import ExecutorConfig
    from ..study.executors import EXECUTORS

    p.add_argument("config", help="study config (YAML)")
    p.add_argument("--executor", choices=EXECUTORS,
                   help="where runs execute (default: the config's executor.kind); submitit-local = the slurm "
                        "code path on this machine")
    config_flags(p, ExecutorConfig, EXECUTOR_FLAGS, "executor")
    p.add_argument("--only", action="append", metavar="KEY=VALUE,...", help=ONLY_HELP)
    p.add_argument("--isolation", choices=("inline", "pool", "process"), help="local: in this process, in a pool "
                   "of worker processes, or one subprocess per run (default on a CPU-only machine: inline for one "
                   "run at a time, pool for --max-parallel > 1; with GPUs: process)")
    p.add_argument("--gpus-per-run", type=int, help="local: GPUs per training run (default: all visible GPUs when "
                                                    "train.accelerate_config is set, else 1)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--rerun-changed", action="store_true", help="redo runs made under another configuration (their "
                   "old directories are kept under <output_dir>/replaced/); without this or --accept-changed, such "
                   "runs stop the study before anything starts")
    g.add_argument("--accept-changed", action="store_true", help="keep the results of runs made under another "
                   "configuration (recorded in their status and in the results database)")
    p.add_argument("--retry-cancelled", action="store_true",
                   help="slurm: run again the runs a user cancelled (scancel); without it they are left cancelled")


def _status_args(p) -> None:
    from ..study.state import STATES

    p.add_argument("config", help="study config (YAML)")
    p.add_argument("--only", action="append", metavar="KEY=VALUE,...", help=ONLY_HELP)
    p.add_argument("--state", action="append", choices=STATES,
                   help="list only runs in this state (repeatable; the summary line counts all)")


def _run_one_args(p) -> None:
    p.add_argument("config", help="study config (YAML)")
    p.add_argument("--run", required=True, help="run name, e.g. model=qwen3-0.6b,task=math,mix=en,seed=0")
    p.add_argument("--allow-config-change", action="store_true",
                   help="reuse the run directory although its config changed")


def _collect_args(p) -> None:
    p.add_argument("config", help="study config (YAML)")
    p.add_argument("--out", help="DuckDB file (default: <output_dir>/results.duckdb), or a directory for Parquet")
    p.add_argument("--format", choices=("duckdb", "parquet"),
                   help="default: duckdb, or parquet when --out is a directory (ends with /)")
    p.add_argument("--accept-changed", action="store_true", help="collect runs made under another configuration "
                   "too (marked in the runs table's config_changed column); without it they are refused")


def _demo_args(p) -> None:
    p.add_argument("--out", default="linguamix-demo", help="output folder (default: ./linguamix-demo); rerun reuses it")
    p.add_argument("--quick", action="store_true", help="fewer, smaller runs (about two minutes)")
    p.add_argument("--workers", type=int, help="parallel worker processes (default: 2)")


def register(sub) -> None:
    study = group(sub, "study", "[study] run the whole design (local or SLURM) and watch its state")
    command(study, "run", cmd_study_run, "[study] build data, train, select and evaluate every run not yet complete; "
                                         "rerun to resume", QUIET, args=_run_args)
    command(study, "status", cmd_study_status, "[study] the state of every run: pending, running, done, failed + "
                                               "reason", TABLE, args=_status_args)
    command(study, "run-one", cmd_study_run_one, "[study] (internal) run one run of the study to completion; the job "
                                                 "that `study run` starts", QUIET, args=_run_one_args)
    command(sub, "collect", cmd_collect, "[store] gather every run directory into one database: tables runs, "
                                         "evaluations, predictions", args=_collect_args)


def register_demo(sub) -> None:
    command(sub, "demo", cmd_demo, "the whole study end to end on this CPU in minutes: design, base model, data, "
                                   "training with selection, evaluation, results database, analysis, report",
            QUIET, args=_demo_args)

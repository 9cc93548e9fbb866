"""[analyze] every analysis of the paper from a results table; simulated tables to validate it."""
from __future__ import annotations

import time

from .common import command, config_flags, override, say

ANALYSIS_FLAGS = ("seed", "n_boot_median", "n_boot_regression", "train_fraction", "alpha", "ks", "zero_shot_test",
                  "reference")


def cmd_analyze(args) -> int:
    """Every analysis of the paper from one results table; nothing is written unless the input is valid."""
    from ..analysis.inputs import load_results
    from ..analysis.options import AnalysisOptions
    from ..analysis.pipeline import run_analysis, write_outputs
    from ..report import write_report
    from ..store import staged_dir

    start = time.perf_counter()
    options = override(AnalysisOptions(), args, ANALYSIS_FLAGS)
    results = load_results(args.results, predictions=args.predictions)
    analysis = run_analysis(results, options)
    with staged_dir(args.out) as stage:  # every report file appears, or none changes
        write_report(write_outputs(analysis, stage), stage)
    say(f"analysed {len(results.rows)} rows in {time.perf_counter() - start:.1f} s; "
        f"report: {args.out}/report.md, {args.out}/index.html")
    return 0


def cmd_simulate(args) -> int:
    """A results table drawn from planted regression coefficients (validates `analyze`)."""
    from ..analysis.simulate import load_design, parse_coefs, simulate, write_simulation

    design = load_design(args.design, n_items=args.n_items)
    with_items = bool(args.predictions) or args.out.lower().endswith((".duckdb", ".db"))
    sim = simulate(design, coefs=parse_coefs(args.coef), seed=args.seed, noise_sd=args.noise_sd, rho=args.rho,
                   predictions=with_items)
    written = write_simulation(sim, args.out, predictions=args.predictions)
    say(f"wrote {len(sim.table)} rows ({', '.join(map(str, written))}); planted: "
        + ", ".join(f"{k}={v:g}" for k, v in sim.coefs.items())
        + f"; {sim.clipped} instance(s) clipped to [0.01, 0.99]")
    return 0


def _analyze_args(p) -> None:
    from ..analysis.options import AnalysisOptions

    p.add_argument("results", help="results table: the DuckDB of `linguamix collect`, or CSV/Parquet with "
                                   "model, family, size_b, task, mixture, train_langs, n_train_langs, eval_lang, n, correct")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--predictions", help="per-item predictions (CSV/Parquet/JSONL: model, task, mixture, eval_lang, "
                                         "item_id, correct) for paired McNemar tests (default: the DuckDB's table)")
    _analysis_flags(p, AnalysisOptions)


def _simulate_args(p) -> None:
    p.add_argument("--design", required=True, help="a study config (YAML), or `paper` for the paper's 5 models")
    p.add_argument("--out", required=True, help="results file: .csv, .parquet, or .duckdb (evaluations + predictions)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--coef", action="append", metavar="NAME=VALUE",
                   help="override a planted coefficient (intercept, log10_model_size, qwen_family, math_task, "
                        "pretrained_only, eval_lang_in_training, sqrt_L_over_Lmax); repeatable")
    p.add_argument("--noise-sd", type=float, default=0.03,
                   help="SD of the per-instance accuracy noise around the planted model (default: 0.03)")
    p.add_argument("--rho", type=float, default=0.5,
                   help="correlation of an item's outcomes across mixtures (latent scale; default: 0.5)")
    p.add_argument("--n-items", type=int, help="test items per language for every task (default: math 250, api 399)")
    p.add_argument("--predictions", help="also write per-item predictions here (.csv or .parquet)")


def register(sub) -> None:
    command(sub, "analyze", cmd_analyze, "[analyze] every result of the paper from a results table: CSVs, figures "
                                         "(PNG, SVG), report.md and index.html", args=_analyze_args)
    command(sub, "simulate", cmd_simulate, "[analyze] a results table for a whole design drawn from planted "
                                           "regression coefficients (to validate `analyze`)", args=_simulate_args)


def _analysis_flags(p, options_cls) -> None:
    """The analysis options as flags; their defaults are AnalysisOptions' own, not a config's."""
    config_flags(p, options_cls, ANALYSIS_FLAGS, "analysis")
    for action in p._actions:  # say "default: X", not "the config's analysis.X"
        if action.dest in ANALYSIS_FLAGS and action.help:
            default = options_cls.model_fields[action.dest].default
            action.help = action.help.split(" (default: the config's")[0] + f" (default: {default!r})".replace("%", "%%")

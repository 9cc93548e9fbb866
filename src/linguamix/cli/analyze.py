"""[analyze] every analysis of the paper from a results table; simulated tables to validate it."""
from __future__ import annotations

import time

from ..errors import ConfigError
from .common import TABLE, command, config_flags, emit, override, say

ANALYSIS_FLAGS = ("seed", "n_boot_median", "n_boot_regression", "train_fraction", "alpha", "ks", "zero_shot_test",
                  "reference", "english_direct", "intervals", "n_boot_cluster", "power_effect", "power_sims")


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

    design = load_design(args.design, n_items=args.n_items, seeds=_int_list(args.seeds, "--seeds"))
    with_items = bool(args.predictions) or args.out.lower().endswith((".duckdb", ".db"))
    sim = simulate(design, coefs=parse_coefs(args.coef), seed=args.seed, predictions=with_items,
                   lang_sd=args.lang_sd, run_sd=args.run_sd, noise_sd=args.noise_sd, rho=args.rho)
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
    _noise_args(p)
    p.add_argument("--n-items", type=int, help="test items per language for every task (default: math 250, api 399)")
    p.add_argument("--seeds", help="comma-separated training seeds, one run per mixture and seed (default: the "
                                   "config's seeds; paper: 0)")
    p.add_argument("--predictions", help="also write per-item predictions here (.csv or .parquet)")


def _int_list(text: str | None, flag: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected comma-separated integers, e.g. 0,1,2") from None


def cmd_power(args) -> int:
    """Power of each of the paper's comparisons to detect an effect, by simulation through `analyze`'s code."""
    import os

    from ..analysis.noise import Noise
    from ..analysis.power import PowerOptions, power_analysis
    from ..analysis.simulate import load_design, parse_coefs

    start = time.perf_counter()
    design = load_design(args.design, n_items=args.n_items, seeds=_int_list(args.seeds, "--seeds"))
    ks = tuple(_int_list(args.ks, "--ks") or ())
    noise = Noise(lang_sd=args.lang_sd, run_sd=args.run_sd, noise_sd=args.noise_sd, rho=args.rho)
    noise.check()
    options = PowerOptions(n_sims=args.n_sims, seed=args.seed, alpha=args.alpha, target=args.target, test=args.test,
                           noise=noise, coefs=parse_coefs(args.coef), english_direct=args.english_direct, ks=ks,
                           workers=args.workers or min(2, os.cpu_count() or 1))
    table = power_analysis(design, args.effect, options)
    rows = [{k: (None if isinstance(v, float) and v != v else (round(v, 4) if isinstance(v, float) else v))
             for k, v in r.items()} for r in table.to_dict("records")]
    if args.format == "json":
        emit([{"comparison": r["comparison"], "power": r["power"], "mde": r["mde_pts"], **r} for r in rows], "json")
    else:
        emit(rows, args.format, ["comparison", "effect_pts", "power", "power_se", "size", "mde_pts", "n_sims", "test"])
    say(f"power: {len(design.models)} models x {len(design.tasks)} tasks x {len(design.mixtures)} mixtures x "
        f"{len(design.seeds)} seed(s), {args.n_sims} simulated studies per effect, {time.perf_counter() - start:.0f} s")
    return 0


def _noise_args(p) -> None:
    """The simulator's noise (linguamix.analysis.noise.Noise; defaults calibrated on the paper's R^2)."""
    from ..analysis.noise import Noise

    d = Noise()
    for flag, value, text in (
            ("--lang-sd", d.lang_sd, "SD of a language's own difficulty per model and task, shared by its mixtures"),
            ("--run-sd", d.run_sd, "SD of a training run's noise, shared by its evaluation languages"),
            ("--noise-sd", d.noise_sd, "SD of the remaining noise of each trained cell"),
            ("--rho", d.rho, "latent correlation of an item's outcomes across the cells of a model and task")):
        p.add_argument(flag, type=float, default=value, help=f"{text} (default: {value:g})")


def _power_args(p) -> None:
    p.add_argument("--design", required=True, help="a study config (YAML), or `paper` for the paper's design")
    p.add_argument("--effect", type=float, required=True, metavar="POINTS", help="effect size in accuracy points")
    p.add_argument("--n-sims", type=int, default=50, help="simulated studies per effect size (default: 50)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default: 0.05)")
    p.add_argument("--target", type=float, default=0.8, help="power of the minimum detectable effect (default: 0.8)")
    p.add_argument("--test", choices=("paired", "welch"), default="paired",
                   help="test of the bilingual and zero-shot comparisons (default: paired, as `analyze`)")
    p.add_argument("--english-direct", choices=("english-only", "bilingual-mean"), default="english-only",
                   help="direct exposure for English in the zero-shot comparisons (default: english-only)")
    p.add_argument("--ks", default="4,6,9", help="diversity levels of the zero-shot comparisons (default: 4,6,9)")
    p.add_argument("--coef", action="append", metavar="NAME=VALUE",
                   help="override a planted coefficient of the other accuracies (as in `simulate`); repeatable")
    _noise_args(p)
    p.add_argument("--n-items", type=int, help="test items per language for every task (default: math 250, api 399)")
    p.add_argument("--seeds", help="comma-separated training seeds (default: the config's seeds; paper: 0)")
    p.add_argument("--workers", type=int, help="processes to spread the simulated studies over; the numbers do "
                                               "not depend on it (default: 2, or 1 on a single core)")


def register(sub) -> None:
    command(sub, "analyze", cmd_analyze, "[analyze] every result of the paper from a results table: CSVs, figures "
                                         "(PNG, SVG), report.md and index.html", args=_analyze_args)
    command(sub, "simulate", cmd_simulate, "[analyze] a results table for a whole design drawn from planted "
                                           "regression coefficients (to validate `analyze`)", args=_simulate_args)
    command(sub, "power", cmd_power, "[analyze] power of each of the paper's comparisons to detect an effect, and the "
                                     "minimum detectable effect at power 0.8, by simulation through `analyze`", TABLE,
            args=_power_args)


def _analysis_flags(p, options_cls) -> None:
    """The analysis options as flags; their defaults are AnalysisOptions' own, not a config's."""
    config_flags(p, options_cls, ANALYSIS_FLAGS, "analysis")
    for action in p._actions:  # say "default: X", not "the config's analysis.X"
        if action.dest in ANALYSIS_FLAGS and action.help:
            default = options_cls.model_fields[action.dest].default
            action.help = action.help.split(" (default: the config's")[0] + f" (default: {default!r})".replace("%", "%%")

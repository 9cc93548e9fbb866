"""The `linguamix` command. The only module that imports every stage (lazily, so `--help` is fast).

Stages, left to right: design -> data -> train -> evaluate -> store -> analyze -> report.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
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


def _noise_args(p: argparse.ArgumentParser) -> None:
    """The simulator's noise (linguamix.analysis.simulate.Noise; defaults calibrated on the paper's R^2)."""
    from .analysis.noise import Noise

    d = Noise()
    for flag, value, text in (
            ("--lang-sd", d.lang_sd, "SD of a language's own difficulty per model and task, shared by its mixtures"),
            ("--run-sd", d.run_sd, "SD of a training run's noise, shared by its evaluation languages"),
            ("--noise-sd", d.noise_sd, "SD of the remaining noise of each trained cell"),
            ("--rho", d.rho, "latent correlation of an item's outcomes across the cells of a model and task")):
        p.add_argument(flag, type=float, default=value, help=f"{text} (default: {value:g})")


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
    from .study import compute_plan, plan_rows

    cfg = load_config(args.config)
    rows = plan_rows(cfg)
    compute = compute_plan(cfg, build_data=args.build_data, progress=not args.quiet)
    for r in rows:
        r.update(compute.runs[r["name"]])
    if args.totals:
        json.dump({**compute.totals, "notes": list(compute.notes)}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    emit(rows, args.format, ["kind", "model", "task", "mixture", "n_languages", "seed", "status", "train_tokens",
                             "flops", "gpu_hours_floor", "gpu_hours_at_measured_mfu"])
    if args.format == "table":
        n_train = sum(r["kind"] == "train" for r in rows)
        done = sum(r["status"] == "done" for r in rows)
        print(f"{n_train} training runs + {len(rows) - n_train} baseline evaluations; {done} done", file=sys.stderr)
        t = compute.totals
        if t["flops"] is not None:
            measured = (f", {t['gpu_hours_at_measured_mfu']:.3g} at the MFU measured so far "
                        f"({t['runs_with_measured_mfu']} runs)" if t["gpu_hours_at_measured_mfu"] is not None
                        else "; no MFU measured yet")
            print(f"compute ({t['runs_with_compute']} of {t['training_runs']} training runs): {t['train_tokens']:,} "
                  f"training tokens, {t['flops']:.3g} FLOPs (6NT), {t['gpu_hours_floor']:.3g} GPU-hours at 100 % of "
                  f"{t['peak_flops_per_gpu'] / 1e12:g} TFLOP/s{measured}", file=sys.stderr)
        for note in compute.notes:
            print(f"note: {note}", file=sys.stderr)
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
    if code == 0 and os.environ.get("RANK", "0") == "0":  # under torchrun / accelerate launch: once
        _print_summary(rd)
    return code


def _print_summary(rd) -> None:
    summary = rd.read_summary("test")
    if summary:
        emit([{k: r[k] for k in ("lang", "n", "correct", "accuracy", "ci_low", "ci_high")} for r in summary["languages"]],
             "table")
    print(f"results in {rd.path}", file=sys.stderr)


def cmd_evaluate(args) -> int:
    """Evaluate a base model or a trained run's selected checkpoint; inputs are checked before anything is
    written, and a failure leaves status.json = failed with the reason."""
    from pathlib import Path

    from .data.build import load_test
    from .evaluate import evaluate, make_generator, parse_langs, resolve_request, with_test_source
    from .models import load_tokenizer
    from .records import RunSpec
    from .store import RunDir

    langs = parse_langs(args.langs) if args.langs is not None else None
    for name in ("limit", "batch_size", "max_new_tokens"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    req = resolve_request(args.model, config=args.config)
    cfg = with_test_source(req.cfg, args.task, args.test_source, args.test_format)
    tc = cfg.task(args.task)
    langs = langs or list(cfg.eval.languages)
    if req.run and Path(args.out).resolve() == Path(req.run).resolve():
        raise ConfigError(f"--out {args.out}: is the trained run itself; evaluate into another directory")
    backend = args.backend or cfg.eval.backend
    batch_size = args.batch_size or cfg.eval.batch_size
    max_new_tokens = args.max_new_tokens or tc.max_new_tokens
    test = load_test(cfg, args.task, langs)
    if args.limit:
        test = {lang: exs[: args.limit] for lang, exs in test.items()}
    tok = load_tokenizer(req.model_dir, trust_remote_code=req.model.trust_remote_code, revision=req.model.revision)

    spec = RunSpec(model=req.model.short_name, task=args.task, mixture=req.mixture, seed=req.seed)
    rd = RunDir(args.out)
    previous = rd.manifest().get("config_hash")
    digest = rd.init(spec.to_dict(), {"model": req.model.model_dump(mode="json"), "task": tc.model_dump(mode="json"),
                                      "eval": {"languages": langs, "limit": args.limit,
                                               "max_new_tokens": max_new_tokens, "backend": backend,
                                               "dtype": args.dtype},
                                      "evaluated_model": req.model_dir, "trained_run": req.run},
                     allow_config_change=args.allow_config_change)
    if previous == digest and rd.is_complete():
        print(f"{rd.path}: already complete (skipped)", file=sys.stderr)
        _print_summary(rd)
        return 0
    rd.set_status("running")
    try:
        gen = make_generator(backend, req.model_dir, tok, batch_size=batch_size, dtype=args.dtype,
                             trust_remote_code=req.model.trust_remote_code, revision=req.model.revision)
        evaluate(gen, args.task, test, rd, max_new_tokens=max_new_tokens, progress=not args.quiet,
                 extra={"model": req.model_dir, "trained_run": req.run, "batch_size": batch_size})
    except BaseException as e:
        reason = "interrupted" if isinstance(e, KeyboardInterrupt) else f"{type(e).__name__}: {e}".splitlines()[0][:500]
        rd.set_status("failed", reason=reason)
        raise
    rd.set_status("done")
    _print_summary(rd)
    return 0


def cmd_bench_train(args) -> int:
    from .bench.train import CONFIGS, run_bench

    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise ConfigError(f"--configs: unknown configuration(s) {unknown} (known: {', '.join(CONFIGS)})")
    rows = run_bench(args.shape, steps=args.steps, configs=configs, threads=args.threads)
    emit(rows, args.format, None if args.format != "table" else
         ["config", "shape", "device", "threads", "tokens_per_s", "mfu", "peak_mem_gib", "gradient_checkpointing",
          "vs_trl_padded_gc", "vs_trl_padded"])
    return 0


def cmd_bench_eval(args) -> int:
    """Generation throughput: HF batched vs one prompt at a time (and vLLM), on the same prompts."""
    from .bench.eval import parse_backends, run_eval_bench

    rows = run_eval_bench(None if args.tiny else args.model, task=args.task, n=args.n,
                          backends=parse_backends(args.backends), batch_size=args.batch_size,
                          max_new_tokens=args.max_new_tokens, dtype=args.dtype, threads=args.threads,
                          progress=not args.quiet,
                          log=lambda line: print(line, file=sys.stderr))
    emit(rows, args.format)
    return 0


# -- analyze stage -----------------------------------------------------------------------------------
def cmd_analyze(args) -> int:
    """Every analysis of the paper from one results table; nothing is written unless the input is valid."""
    import time

    from .analysis.inputs import load_results
    from .analysis.pipeline import AnalysisOptions, run_analysis, write_outputs
    from .report import write_report

    start = time.perf_counter()
    try:
        ks = tuple(int(k) for k in args.ks.split(",") if k.strip())
    except ValueError:
        raise ConfigError(f"--ks {args.ks!r}: expected comma-separated integers, e.g. 4,6,9") from None
    for flag, value in (("--n-boot-median", args.n_boot_median), ("--n-boot-regression", args.n_boot_regression),
                        ("--n-boot-cluster", args.n_boot_cluster - 1), ("--power-sims", args.power_sims - 1)):
        if value < 1:
            raise ConfigError(f"{flag} must be >= {2 if flag in ('--n-boot-cluster', '--power-sims') else 1}, "
                              f"got {value + (flag in ('--n-boot-cluster', '--power-sims'))}")
    if not 0 < args.train_fraction < 1:
        raise ConfigError(f"--train-fraction must be between 0 and 1, got {args.train_fraction}")
    results = load_results(args.results, predictions=args.predictions)
    options = AnalysisOptions(seed=args.seed, n_boot_median=args.n_boot_median,
                              n_boot_regression=args.n_boot_regression, train_fraction=args.train_fraction,
                              ks=ks, zero_shot_test=args.zero_shot_test, english_direct=args.english_direct,
                              n_boot_cluster=args.n_boot_cluster, intervals=args.intervals,
                              power_effect=args.power_effect, power_sims=args.power_sims)
    analysis = write_outputs(run_analysis(results, options), args.out)
    write_report(analysis, args.out)
    print(f"analysed {len(results.rows)} rows in {time.perf_counter() - start:.1f} s; "
          f"report: {args.out}/report.md, {args.out}/index.html", file=sys.stderr)
    return 0


def cmd_simulate(args) -> int:
    """A results table drawn from planted regression coefficients (validates `analyze`)."""
    from .analysis.simulate import load_design, parse_coefs, simulate, write_simulation

    design = load_design(args.design, n_items=args.n_items, seeds=_int_list(args.seeds, "--seeds"))
    with_items = bool(args.predictions) or args.out.lower().endswith((".duckdb", ".db"))
    sim = simulate(design, coefs=parse_coefs(args.coef), seed=args.seed, predictions=with_items,
                   lang_sd=args.lang_sd, run_sd=args.run_sd, noise_sd=args.noise_sd, rho=args.rho)
    written = write_simulation(sim, args.out, predictions=args.predictions)
    print(f"wrote {len(sim.table)} rows ({', '.join(map(str, written))}); planted: "
          + ", ".join(f"{k}={v:g}" for k, v in sim.coefs.items())
          + f"; {sim.clipped} instance(s) clipped to [0.01, 0.99]", file=sys.stderr)
    return 0


def _int_list(text: str | None, flag: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected comma-separated integers, e.g. 0,1,2") from None


def cmd_power(args) -> int:
    """Power of each of the paper's comparisons to detect an effect, by simulation through `analyze`'s code."""
    import time

    from .analysis.power import PowerOptions, power_analysis
    from .analysis.noise import Noise
    from .analysis.simulate import load_design, parse_coefs

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
    print(f"power: {len(design.models)} models x {len(design.tasks)} tasks x {len(design.mixtures)} mixtures x "
          f"{len(design.seeds)} seed(s), {args.n_sims} simulated studies per effect, "
          f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


# -- study orchestration and the results database -----------------------------------------------------
def cmd_study_run(args) -> int:
    from .config import load_config
    from .executors import make_executor
    from .study import parse_only, run_study

    cfg = load_config(args.config)
    only = parse_only(args.only)
    executor = make_executor(cfg, args.executor, max_parallel=args.max_parallel, isolation=args.isolation,
                             gpus_per_run=args.gpus_per_run)
    try:
        report = run_study(cfg, args.config, executor, only=only, max_retries=args.max_retries,
                           allow_config_change=args.allow_config_change, progress=not args.quiet)
    finally:
        if hasattr(executor, "close"):
            executor.close()
    return report.exit_code


def cmd_study_status(args) -> int:
    from collections import Counter

    from .config import load_config
    from .study import format_seconds, parse_only, select, status_rows, summary_line

    cfg = load_config(args.config)
    every = status_rows(cfg, select(cfg, parse_only(args.only)))
    rows = [r for r in every if not args.state or r["state"] in args.state]
    if args.format == "json":
        counts = Counter(r["state"] for r in every)
        summary = {s: counts.get(s, 0) for s in ("done", "running", "failed", "pending")}
        json.dump({"summary": {**summary, "line": summary_line(every)}, "runs": rows}, sys.stdout, indent=2,
                  ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    if args.format == "table":
        rows = [{**r, "elapsed": format_seconds(r["elapsed_s"])} for r in rows]
        emit(rows, "table", ["kind", "model", "task", "mixture", "seed", "state", "attempts", "elapsed", "reason"])
    else:
        emit(rows, args.format, list(every[0]) if every else None)
    print(summary_line(every), file=sys.stdout if args.format == "table" else sys.stderr)
    return 0


def cmd_study_run_one(args) -> int:
    from .config import load_config
    from .study import find_run, run_one

    cfg = load_config(args.config)
    return run_one(cfg, find_run(cfg, args.run), progress=not args.quiet, allow_config_change=args.allow_config_change)


def cmd_collect(args) -> int:
    from .collect import collect
    from .config import load_config

    res = collect(load_config(args.config), out=args.out, fmt=args.format)
    print(f"wrote {res.path} ({res.format}): " + ", ".join(f"{t} {n}" for t, n in res.rows.items()) + " rows",
          file=sys.stderr)
    return 0


# -- the embedded default -------------------------------------------------------------------------------
def cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(args.out, quick=args.quick, workers=args.workers, progress=not args.quiet)
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

    p = _add(sub, "demo", cmd_demo, "the whole study end to end on this CPU in minutes: design, base model, data, "
                                    "training with selection, evaluation, results database, analysis, report")
    p.add_argument("--out", default="linguamix-demo", help="output folder (default: ./linguamix-demo); rerun reuses it")
    p.add_argument("--quick", action="store_true", help="fewer, smaller runs (about three minutes)")
    p.add_argument("--workers", type=int, help="parallel worker processes (default: 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = _add(sub, "languages", cmd_languages, "[design] print the language table")
    p.add_argument("--extra", help="also load languages from this YAML file")
    _format_arg(p)

    p = _add(sub, "design", cmd_design, "[design] print the mixtures of a design (the paper's 22 by default)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--preset", default="paper", help="built-in design (default: paper)")
    g.add_argument("config", nargs="?", help="study config whose `mixtures` section to expand")
    _format_arg(p)

    p = _add(sub, "plan", cmd_plan, "[design] list every run of a study with its status in the store and its "
                                    "training compute (tokens, FLOPs = 6NT, GPU-hours)")
    p.add_argument("config", help="study config (YAML)")
    p.add_argument("--build-data", action="store_true", help="build missing training data (and tiny models) to count "
                   "tokens; may download tokenizers (default: use only what is on this machine)")
    p.add_argument("--totals", action="store_true", help="print only the totals, as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _format_arg(p)

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
    p.add_argument("--model", required=True, help="HF id, local path, or a trained run directory (run.json + model/)")
    p.add_argument("--task", required=True, choices=["math", "api"])
    p.add_argument("--langs", help="comma-separated codes (default: the config's evaluation languages)")
    p.add_argument("--out", required=True, help="output directory (rerun the command to skip a finished one)")
    p.add_argument("--config", help="study config (test data source, generation budget, evaluation settings); "
                                     "default: a trained run's own settings, else the default task sources")
    p.add_argument("--test-source", help="override the test data: HF dataset id or local path")
    p.add_argument("--test-format", help="format of --test-source (mgsm, api-bank, mapicall-bank, synthetic-math, ...; "
                                         "default: auto)")
    p.add_argument("--backend", choices=["hf", "vllm"], help="generation backend (default: the config's, else hf)")
    p.add_argument("--batch-size", type=int, help="HF batch size (default: the config's eval.batch_size, 32)")
    p.add_argument("--dtype", choices=["auto", "bf16", "fp32"], default="auto",
                   help="auto: bf16 on GPU, fp32 on CPU (default: auto)")
    p.add_argument("--max-new-tokens", type=int, help="default: the task's max_new_tokens")
    p.add_argument("--limit", type=int, help="only the first N items per language")
    p.add_argument("--allow-config-change", action="store_true", help="reuse --out although it holds another evaluation")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

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

    study = sub.add_parser("study", help="[study] run the whole design (local or SLURM) and watch its state",
                           description="[study] run the whole design (local or SLURM) and watch its state")
    ssub = study.add_subparsers(dest="study_command", metavar="COMMAND")
    ssub.required = True
    only_help = ("only runs matching KEY=VALUE[|VALUE...], comma-separated, repeatable; KEY: model, task, mixture, "
                 "kind (train|baseline), seed")
    p = _add(ssub, "run", cmd_study_run, "[study] build data, train, select and evaluate every run not yet complete; "
                                         "rerun to resume")
    p.add_argument("config", help="study config (YAML)")
    p.add_argument("--executor", choices=("local", "slurm", "submitit-local"),
                   help="where runs execute (default: the config's executor.kind); submitit-local = the slurm "
                        "code path on this machine")
    p.add_argument("--max-parallel", type=int, help="runs at a time (local: default one per GPU, or 1 on CPU; "
                                                    "slurm: the job array's parallelism)")
    p.add_argument("--only", action="append", metavar="KEY=VALUE,...", help=only_help)
    p.add_argument("--max-retries", type=int, help="retries of a failed run (default: the config's executor.max_retries)")
    p.add_argument("--isolation", choices=("inline", "pool", "process"), help="local: in this process, in a pool "
                   "of worker processes, or one subprocess per run (default on a CPU-only machine: inline for one "
                   "run at a time, pool for --max-parallel > 1; with GPUs: process)")
    p.add_argument("--gpus-per-run", type=int, help="local: GPUs per training run (default: all visible GPUs when "
                                                    "train.accelerate_config is set, else 1)")
    p.add_argument("--allow-config-change", action="store_true", help="reuse run directories although their config changed")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = _add(ssub, "status", cmd_study_status, "[study] the state of every run: pending, running, done, failed + reason")
    p.add_argument("config", help="study config (YAML)")
    p.add_argument("--only", action="append", metavar="KEY=VALUE,...", help=only_help)
    p.add_argument("--state", action="append", choices=("pending", "running", "done", "failed"),
                   help="list only runs in this state (repeatable; the summary line counts all)")
    _format_arg(p)

    p = _add(ssub, "run-one", cmd_study_run_one, "[study] (internal) run one run of the study to completion; the job "
                                                 "that `study run` starts")
    p.add_argument("config", help="study config (YAML)")
    p.add_argument("--run", required=True, help="run name, e.g. model=qwen3-0.6b,task=math,mix=en,seed=0")
    p.add_argument("--allow-config-change", action="store_true", help="reuse the run directory although its config changed")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = _add(sub, "collect", cmd_collect, "[store] gather every run directory into one database: tables runs, "
                                          "evaluations, predictions")
    p.add_argument("config", help="study config (YAML)")
    p.add_argument("--out", help="DuckDB file (default: <output_dir>/results.duckdb), or a directory for Parquet")
    p.add_argument("--format", choices=("duckdb", "parquet"),
                   help="default: duckdb, or parquet when --out is a directory (ends with /)")

    p = _add(sub, "analyze", cmd_analyze, "[analyze] every result of the paper from a results table: CSVs, "
                                          "figures (PNG, SVG), report.md and index.html")
    p.add_argument("results", help="results table: the DuckDB of `linguamix collect`, or CSV/Parquet with "
                                   "model, family, size_b, task, mixture, train_langs, n_train_langs, eval_lang, n, correct")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the regression split (default: 0)")
    p.add_argument("--predictions", help="per-item predictions (CSV/Parquet/JSONL: model, task, mixture, eval_lang, "
                                         "item_id, correct) for paired McNemar tests (default: the DuckDB's table)")
    p.add_argument("--n-boot-median", type=int, default=9999, help="bootstrap resamples per median delta (default: 9999)")
    p.add_argument("--n-boot-regression", type=int, default=2000,
                   help="bootstrap resamples of the regression coefficients (default: 2000)")
    p.add_argument("--train-fraction", type=float, default=0.7, help="regression training share (default: 0.7)")
    p.add_argument("--ks", default="4,6,9", help="diversity levels of the zero-shot analysis (default: 4,6,9)")
    p.add_argument("--zero-shot-test", choices=("paired", "welch", "mcnemar"), default="paired",
                   help="test deciding the zero-shot verdict: paired = exact McNemar (one run a side) or the paired "
                        "cluster bootstrap, where per-item predictions exist, else welch; welch = t-test on item "
                        "outcomes, as in the paper; mcnemar = paired (its former name). Both are always reported "
                        "(default: paired)")
    p.add_argument("--english-direct", choices=("english-only", "bilingual-mean"), default="english-only",
                   help="zero-shot analysis: what direct exposure means for English, the English-only model or the "
                        "mean of the bilingual en+X models (default: english-only)")
    p.add_argument("--intervals", choices=("cluster", "wilson"), default="cluster",
                   help="intervals drawn in the figures: cluster = bootstrap over items (and runs, where pooled); "
                        "wilson = the paper's pooled Wilson interval. The report shows both (default: cluster)")
    p.add_argument("--n-boot-cluster", type=int, default=2000,
                   help="replicates of the cluster bootstrap (default: 2000)")
    p.add_argument("--power-effect", type=float, metavar="POINTS",
                   help="also run `linguamix power` for this effect on the input's design (report appendix)")
    p.add_argument("--power-sims", type=int, default=50,
                   help="simulated studies per effect size for --power-effect (default: 50)")

    p = _add(sub, "simulate", cmd_simulate, "[analyze] a results table for a whole design drawn from planted "
                                            "regression coefficients (to validate `analyze`)")
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

    p = _add(sub, "power", cmd_power, "[analyze] power of each of the paper's comparisons to detect an effect, and "
                                      "the minimum detectable effect at power 0.8, by simulation through `analyze`")
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
    _format_arg(p)

    bench = sub.add_parser("bench", help="[bench] measure linguamix's fast paths against the plain ones on this machine",
                           description="[bench] measure linguamix's fast paths against the plain ones on this machine")
    bsub = bench.add_subparsers(dest="bench_command", metavar="COMMAND")
    bsub.required = True
    p = _add(bsub, "train", cmd_bench_train, "[bench] training throughput: linguamix's fast path vs TRL SFTTrainer "
                                             "(padded + gradient checkpointing, the paper's setting; padded without)")
    p.add_argument("--shape", default="tiny", help="model shape: qwen3-0.6b, qwen3-1.7b, gemma3-1b, tiny (default)")
    p.add_argument("--steps", type=int, default=8, help="optimizer steps per configuration, 3 of them warm-up")
    p.add_argument("--configs", default="linguamix,trl_padded_gc,trl_padded", help="comma-separated subset")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: 1 on CPU, see docs/performance.md)")
    _format_arg(p)

    p = _add(bsub, "eval", cmd_bench_eval, "[bench] generation throughput on the same prompts: HF batched and "
                                           "length-sorted (hf) vs one prompt at a time (hf1), and vLLM where installed")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--model", help="HF id, local path or trained run directory (default: a tiny random-init model)")
    g.add_argument("--tiny", action="store_true", help="a tiny random-init Qwen3 model made on the fly (the default)")
    p.add_argument("--task", choices=["math", "api"], default="math", help="prompt format (default: math)")
    p.add_argument("--n", type=int, default=64, help="prompts, synthetic items in the evaluation languages (default: 64)")
    p.add_argument("--backends", help="comma-separated from hf, hf1, vllm (default: hf,hf1 and vllm if importable)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size of the hf backend (default: 32)")
    p.add_argument("--max-new-tokens", type=int, default=32, help="generation budget per prompt (default: 32)")
    p.add_argument("--dtype", choices=["auto", "bf16", "fp32"], default="auto",
                   help="auto: bf16 on GPU, fp32 on CPU (default: auto)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's, one per core)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _format_arg(p)
    return parser


def _quiet_libraries() -> None:
    """--quiet: no library progress bars (model loading, checkpoint writing, dataset maps)."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read by transformers/hub at import
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if "transformers" in sys.modules:  # already imported (cli.main called in-process)
        import transformers

        transformers.utils.logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "quiet", False):
        _quiet_libraries()
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

"""[design] the language table, the mixtures of a design, the runs of a study and their compute, the models."""
from __future__ import annotations

import json
import sys

from ..errors import ConfigError
from .common import QUIET, TABLE, build_models, command, emit, group, load_study, say


def cmd_languages(args) -> int:
    from .. import languages

    with languages.extended(languages.load_yaml(args.extra) if args.extra else ()):
        rows = [{"code": lang.code, "iso639_3": lang.iso639_3, "name": lang.name, "resource": lang.resource,
                 "family": lang.family, "subfamily": lang.subfamily, "script": lang.script, "role": lang.role,
                 "cot_trigger": lang.cot_trigger, "answer_phrase": lang.answer_phrase}
                for lang in languages.all_languages()]
    emit(rows, args.format)
    return 0


def cmd_design(args) -> int:
    from .. import mixtures

    mix = load_study(args.config).mixture_list() if args.config else mixtures.design_mixtures(args.preset)
    emit([m.to_dict() for m in mix], args.format, ["id", "n_languages", "languages", "group"])
    if args.format == "table":
        print(f"{len(mix)} mixtures", file=sys.stderr)
    return 0


def cmd_plan(args) -> int:
    from ..study.compute import compute_plan
    from ..study.forecast import forecast, forecast_line
    from ..study.state import plan_rows

    if args.gpus < 1:
        raise ConfigError(f"--gpus must be at least 1 (got {args.gpus})")
    cfg = load_study(args.config)
    if args.build_data:
        build_models(cfg)
    rows = plan_rows(cfg)
    compute = compute_plan(cfg, build_data=args.build_data, progress=not args.quiet, tokenizer=args.tokenizer)
    ahead = forecast(cfg, compute.runs, gpus=args.gpus)
    for r in rows:
        r.update(compute.runs[r["name"]], predicted_s=ahead["per_run"].get(r["name"]))
    if args.totals:
        json.dump({**compute.totals, "forecast": {k: v for k, v in ahead.items() if k != "per_run"},
                   "notes": list(compute.notes)}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if args.format == "table":
        from ..timing import format_seconds

        rows = [{**r, "predicted": format_seconds(r["predicted_s"])} for r in rows]
    emit(rows, args.format, ["kind", "model", "task", "mixture", "n_languages", "seed", "status", "train_tokens",
                             "estimate", "flops", "gpu_hours_floor", "gpu_hours_at_measured_mfu", "predicted"])
    if args.format == "table":
        sys.stdout.flush()  # the table before the summary lines on stderr
        n_train = sum(r["kind"] == "train" for r in rows)
        done = sum(r["status"] == "done" for r in rows)
        say(f"{n_train} training runs + {len(rows) - n_train} baseline evaluations; {done} done")
        t = compute.totals
        if t["flops"] is not None:
            measured = (f", {t['gpu_hours_at_measured_mfu']:.3g} at the MFU measured so far "
                        f"({t['runs_with_measured_mfu']} runs)" if t["gpu_hours_at_measured_mfu"] is not None
                        else "; no MFU measured yet")
            est = f", {t['runs_estimated']} of them estimated from a sample" if t.get("runs_estimated") else ""
            say(f"compute ({t['runs_with_compute']} of {t['training_runs']} training runs{est}): {t['train_tokens']:,} "
                f"training tokens, {t['flops']:.3g} FLOPs (6NT), {t['gpu_hours_floor']:.3g} GPU-hours at 100 % of "
                f"{t['peak_flops_per_gpu'] / 1e12:g} TFLOP/s ({t['reference_gpu']}){measured}")
        say(forecast_line(ahead))
        for note in compute.notes:
            say(f"note: {note}")
    return 0


def cmd_model_build(args) -> int:
    cfg = load_study(args.config)
    if not any(m.build for m in cfg.models):
        say(f"{args.config}: no model has `build:`; nothing to make")
    build_models(cfg)
    emit([{"model": m.short_name, "build": m.build, "path": m.path(cfg.base_dir)} for m in cfg.models if m.build],
         "table")
    return 0


def _languages_args(p) -> None:
    p.add_argument("--extra", help="also show the languages of this YAML file")


def _design_args(p) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--preset", default="paper", help="built-in design (default: paper)")
    g.add_argument("config", nargs="?", help="study config whose `mixtures` section to expand")


def _plan_args(p) -> None:
    p.add_argument("config", help="study config (YAML)")
    p.add_argument("--build-data", action="store_true", help="build missing training data (and tiny models) to count "
                   "tokens; may download tokenizers (default: use only what is on this machine)")
    p.add_argument("--gpus", type=int, default=1, help="devices the remaining runs are spread over for the "
                   "predicted wall-clock (default: 1)")
    p.add_argument("--totals", action="store_true", help="print only the totals, as one JSON object")
    p.add_argument("--tokenizer", metavar="PATH", help="a local tokenizer folder to count tokens with for models whose "
                   "own tokenizer is not on this machine (e.g. scripts/qwen_base_tokenizer.py's); N then comes "
                   "from size_b")


def _config_arg(p) -> None:
    p.add_argument("config", help="study config (YAML)")


def register(sub) -> None:
    command(sub, "languages", cmd_languages, "[design] print the language table", TABLE, args=_languages_args)
    command(sub, "design", cmd_design, "[design] print the mixtures of a design (the paper's 22 by default)", TABLE,
            args=_design_args)
    command(sub, "plan", cmd_plan, "[design] list every run of a study with its status in the store and its "
                                   "training compute (tokens, FLOPs = 6NT, GPU-hours)", QUIET, TABLE, args=_plan_args)
    model = group(sub, "model", "[design] the study's base models")
    command(model, "build", cmd_model_build, "[design] make the config's `build: tiny` base models (a tokenizer "
                                             "and a tiny Qwen3 model pretrained on CPU); reused when made",
            args=_config_arg)

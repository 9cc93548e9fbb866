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

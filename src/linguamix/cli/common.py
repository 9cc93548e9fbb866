"""What every command shares: output formats, the flags every command has, config loading, and flags that
are a config model's fields (their type, choices, help and default come from the model, not from here)."""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import sys
import types
import typing
from typing import Any, Callable, Sequence

from ..errors import ConfigError

FORMATS = ("table", "json", "csv")
SCOPES = contextlib.ExitStack()
"""Language scopes of the configs a command loaded; closed when the command ends (`main`)."""


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


def _cell(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    if isinstance(v, float):
        return f"{v:g}"
    return "" if v is None else str(v)


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- parsers ---------------------------------------------------------------------------------------------
QUIET = argparse.ArgumentParser(add_help=False)
QUIET.add_argument("--quiet", action="store_true", help="no progress bars")


def format_parent(default: str = "table") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--format", choices=FORMATS, default=default, help=f"output format (default: {default})")
    return p


TABLE = format_parent()


WANTED: list[str] | None = None
"""The words of the command line being run (`main` sets it): only the matching command gets its arguments
built, so `--help` and the light commands never import the config models or the task registry."""


def command(sub, name: str, func: Callable, help: str, *parents: argparse.ArgumentParser,
            args: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.ArgumentParser:
    """A subcommand; `args(parser)` adds its arguments (when this command is the one asked for, or always
    when `WANTED` is None)."""
    p = sub.add_parser(name, help=help, description=help, parents=list(parents))
    p.set_defaults(func=func)
    path = p.prog.split()[1:]
    if args is not None and (WANTED is None or WANTED[:len(path)] == path):
        args(p)
    return p


def group(sub, name: str, help: str):
    p = sub.add_parser(name, help=help, description=help)
    s = p.add_subparsers(dest=f"{name}_command", metavar="COMMAND")
    s.required = True
    return s


# -- configs -----------------------------------------------------------------------------------------------
def load_study(path: str):
    """The study config, its extra languages active until the command ends."""
    from ..config import load_config

    cfg = load_config(path)
    SCOPES.enter_context(cfg.language_scope())
    return cfg


def build_models(cfg) -> None:
    """The explicit model-building step (`build: tiny` models) before a command that needs the models."""
    from ..tinymodel import build_models as build

    build(cfg, say=say)


def config_flags(p: argparse.ArgumentParser, model: type, fields: Sequence[str], section: str) -> None:
    """`--field-name` for each field of a config model: type and choices from its annotation, help from its
    docstring, and no default of its own (unset = the config's value; `override` applies the set ones)."""
    for name in fields:
        info = model.model_fields[name]
        kind, choices = _arg_type(info.annotation)
        default = info.get_default(call_default_factory=True)
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, choices=choices, default=None,
                       metavar=None if choices else name.upper(),
                       help=f"{(info.description or '').strip()} (default: the config's {section}.{name}; "
                            f"{default!r} if unset)".replace("%", "%%"))


def override(obj, args: argparse.Namespace, fields: Sequence[str]):
    """`obj` (a config model) with the flags of `config_flags` that were given, validated like the config."""
    from pydantic import ValidationError

    given = {n: getattr(args, n) for n in fields if getattr(args, n, None) is not None}
    if not given:
        return obj
    try:
        return type(obj).model_validate({**obj.model_dump(), **given})
    except ValidationError as e:
        first = e.errors()[0]
        flag = "--" + str(first["loc"][0]).replace("_", "-")
        raise ConfigError(f"{flag}: {first['msg'].removeprefix('Value error, ')}") from None


def _arg_type(annotation) -> tuple[Callable[[str], Any], list | None]:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return _arg_type(args[0])
    if typing.get_origin(annotation) is typing.Literal:
        return type(args[0]), list(args)
    if annotation in (int, float, str):
        return annotation, None
    return str, None


def split_list(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",") if x.strip()] if text else None

"""The `linguamix` command: the only place that imports every stage (lazily, so `--help` and the light
commands start fast). Commands are listed in stage order:

    demo | languages design plan model | data translate | train evaluate score | study collect | analyze simulate | bench
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..errors import EXIT_CONFIG, EXIT_INTERRUPTED, EXIT_OK, LinguamixError
from . import analyze, bench, common, data, design, run, study


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `argv`, only the command it names gets its arguments (fast start-up)."""
    from .. import __version__

    common.WANTED = None if argv is None else [a for a in argv if not a.startswith("-")]
    parser = argparse.ArgumentParser(
        prog="linguamix",
        description="Controlled multilingual post-training studies: design -> data -> train -> evaluate -> "
                    "store -> analyze -> report.")
    parser.add_argument("--version", action="version", version=f"linguamix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    study.register_demo(sub)
    for module in (design, data, run, study, analyze, bench):
        module.register(sub)
    return parser


def _quiet_libraries() -> None:
    """--quiet: no library progress bars (model loading, checkpoint writing, dataset maps)."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read by transformers/hub at import
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if "transformers" in sys.modules:  # already imported (main called in-process)
        import transformers

        transformers.utils.logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    if getattr(args, "quiet", False):
        _quiet_libraries()
    try:
        with common.SCOPES:
            return int(args.func(args) or EXIT_OK)
    except LinguamixError as e:
        print(f"linguamix: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("linguamix: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except OSError as e:  # a file the command reads or writes: its name and the system's reason, one line
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"linguamix: error: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_CONFIG


emit = common.emit

__all__ = ["main", "build_parser", "emit"]

"""Loaders: benchmark files (local paths or Hugging Face dataset ids) -> items per language.

Every loader is `loader(src, langs, options) -> Loaded` ({lang: [item, ...]} + the files read), with item
ids shared by the parallel versions of an item; `pools.check_parallel` then aligns the languages by id.

    mgsm            MGSM TSVs or hub `juletxara/mgsm`                        (mgsm.py)
    mcot, msvamp    mCoT-MATH records or hub `laihuiyuan/mCoT-MATH`; MSVAMP  (mcot.py)
    api-bank, mapicall-bank   API-Bank's layout, one folder per language    (apibank.py)
    synthetic-math, synthetic-api   linguamix's generated parallel tasks    (synthetic.py)

A task from another package brings loaders for its own formats (`Task.loaders`); `load` finds them.
The option `allow_missing` belongs to the pool, not to a loader (see `data.build`).
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from ... import languages, tasks
from ...errors import DataError
from .apibank import load_api_bank
from .common import Loaded, resolve, sha256_file
from .mcot import load_mcot, load_msvamp
from .mgsm import load_mgsm
from .synthetic import load_synthetic

BUILTIN = {
    "mgsm": load_mgsm,
    "mcot": load_mcot,
    "msvamp": load_msvamp,
    "api-bank": partial(load_api_bank, per_language=False),
    "mapicall-bank": partial(load_api_bank, per_language=True),
    "synthetic-math": lambda src, langs, options: load_synthetic("synthetic-math", langs, options),
    "synthetic-api": lambda src, langs, options: load_synthetic("synthetic-api", langs, options),
}
NEEDS_NO_SOURCE = ("synthetic-math", "synthetic-api")
POOL_OPTIONS = ("allow_missing",)
"""Options of a source that tell the pool (not the loader) what to do."""


def detect_format(src: Path | str, task: str) -> str:
    """`format: auto`: a known hub id, or a local folder's layout; else the task's first format."""
    if isinstance(src, str):
        return {"juletxara/mgsm": "mgsm", "laihuiyuan/mCoT-MATH": "mcot"}.get(src, tasks.get(task).formats[0])
    if src.is_dir():
        if list(src.glob("mgsm_*.tsv")):
            return "mgsm"
        if list(src.glob("test_*.json")):
            return "msvamp"
        if (src / "level-1-given-desc").is_dir():
            return "api-bank"
        if any((src / c / "level-1-given-desc").is_dir() for c in languages.codes()):
            return "mapicall-bank"
    return "mcot" if "mcot" in tasks.get(task).formats else tasks.get(task).formats[0]


def load(source, *, task: str, langs: list[str], base_dir: str | Path = ".") -> Loaded:
    """Load a SourceConfig (`source`, `format`, `options`) of `task` for the given languages."""
    fmt = source.format
    options = {k: v for k, v in source.options.items() if k not in POOL_OPTIONS}
    own = tasks.get(task).loaders
    if fmt in own:  # a plugin's loader: a local path when there is one, else the text as written
        local = Path(base_dir) / source.source
        return own[fmt](local.resolve() if local.exists() else source.source, list(langs), options)
    src: Any = None if fmt in NEEDS_NO_SOURCE else resolve(source.source, base_dir)
    if fmt == "auto":
        fmt = detect_format(src, task)
    loader = BUILTIN.get(fmt)
    if loader is None:
        raise DataError(f"unknown data format '{fmt}' (known: {', '.join([*BUILTIN, *own])})")
    return loader(src, list(langs), options)


__all__ = ["BUILTIN", "Loaded", "detect_format", "load", "resolve", "sha256_file"]

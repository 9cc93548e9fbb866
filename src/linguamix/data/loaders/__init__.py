"""Loaders: benchmark files (local paths or Hugging Face dataset ids) -> items per language.

Every loader is `loader(src, langs, options) -> Loaded` ({lang: [item, ...]} + the files read and what was
taken from each), with item ids shared by the parallel versions of an item; `pools.check_parallel` then
aligns the languages by id (and, where ids are only positions, checks that the golds agree).

    mgsm            MGSM TSVs or hub `juletxara/mgsm`                        (mgsm.py)
    mcot, msvamp    mCoT-MATH records or hub `laihuiyuan/mCoT-MATH`; MSVAMP  (mcot.py)
    mcot-outputs    mCoT-7B's MGSM answers: a local sample of mCoT-MATH's style (mcot.py)
    api-bank, mapicall-bank   API-Bank's layout, one folder per language    (apibank.py, apibank_train.py)
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
from .common import Loaded, resolve, sha256_file, source_checksums
from .mcot import load_mcot, load_mcot_outputs, load_msvamp
from .mgsm import load_mgsm
from .synthetic import load_synthetic

BUILTIN = {
    "mgsm": load_mgsm,
    "mcot": load_mcot,
    "msvamp": load_msvamp,
    "mcot-outputs": load_mcot_outputs,
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
        out = own[fmt](local.resolve() if local.exists() else source.source, list(langs), options)
        return out if isinstance(out, Loaded) else Loaded(dict(out), [])
    src: Any = None if fmt in NEEDS_NO_SOURCE else resolve(source.source, base_dir)
    if fmt == "auto":
        fmt = detect_format(src, task)
    loader = BUILTIN.get(fmt)
    if loader is None:
        raise DataError(f"unknown data format '{fmt}' (known: {', '.join([*BUILTIN, *own])})")
    return loader(src, list(langs), options)


def local_source(source, *, task: str, base_dir: str | Path = ".") -> Path | None:
    """The local file or folder a SourceConfig reads (None for a hub id or a generated source): what the
    data cache's key checksums."""
    if source.format in NEEDS_NO_SOURCE:
        return None
    if source.format in tasks.get(task).loaders:
        local = Path(base_dir) / source.source
        return local.resolve() if local.exists() else None
    try:
        src = resolve(source.source, base_dir)
    except DataError:
        return None
    return src if isinstance(src, Path) else None


__all__ = ["BUILTIN", "Loaded", "detect_format", "load", "local_source", "resolve", "sha256_file", "source_checksums"]

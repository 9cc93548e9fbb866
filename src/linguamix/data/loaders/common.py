"""What every loader shares: where a source lives, the hub, the record of files read and rows taken,
and the checks made at the boundary (text encoding, numbers, integer options)."""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from ...errors import DataError
from ...store import sha256_file


class Loaded(dict):
    """{lang: [items]} plus what the data stage reports about them.

    - `files`: the files read (path + sha256) for the data manifest;
    - `sources`: per file and language, the rows read, taken and dropped with the reason
      (`{"file", "lang", "rows", "taken", "dropped": {reason: n}}`; `data stats` shows them);
    - `positional`: the item ids are positions in the files (MGSM, MSVAMP): the parallel check then also
      requires every item's gold to agree across languages, since an id alone proves nothing;
    - `check_golds`: the ids are identities, and the parallel check requires an item's gold to agree in
      every language it is in (API calls: the API name and argument names; translations keep them);
    - `where`: {lang: the file its items came from}, for messages;
    - `warnings`: one line each, shown by `data build` / `data stats` and kept in the manifest.
    """

    def __init__(self, items: dict[str, list], files: list[dict[str, str]], *, sources: list[dict] | None = None,
                 positional: bool = False, check_golds: bool = False, where: dict[str, str] | None = None,
                 warnings: list[str] | None = None):
        super().__init__(items)
        self.files = files
        self.sources = sources if sources is not None else [
            {"file": (where or {}).get(lang, ""), "lang": lang, "rows": len(rows), "taken": len(rows), "dropped": {}}
            for lang, rows in items.items()]
        self.positional = positional
        self.check_golds = check_golds
        self.where = where or {}
        self.warnings = warnings or []


def resolve(source: str, base_dir: str | Path = ".") -> Path | str:
    """A local path if it exists (relative to the config, then to the working directory), else a hub id."""
    p = Path(source).expanduser()
    for cand in ([p] if p.is_absolute() else [Path(base_dir) / p, p]):
        if cand.exists():
            return cand.resolve()
    if re.fullmatch(r"[\w.-]+/[\w.-]+", source) and not source.startswith((".", "/")):
        return source  # looks like a hub id
    raise DataError(f"data source '{source}' not found (relative paths are taken from the config's folder "
                    f"{base_dir})")


def file_record(path: Path) -> dict[str, str]:
    return {"path": str(path), "sha256": sha256_file(path)}


def read_text(path: Path) -> str:
    """A UTF-8 text file, a byte-order mark dropped; anything else is one line naming the file."""
    try:
        return path.read_bytes().decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start}; re-save the file as UTF-8)") from None


def finite_number(text: Any, where: str, field: str) -> float:
    """A gold number from a file: finite, or one line naming the file, row and field (`NaN`, `inf` and
    `"Infinity"` parse as floats but are no answer a model can give)."""
    try:
        value = float(str(text).replace(",", "")) if not isinstance(text, (int, float)) else float(text)
    except ValueError:
        raise DataError(f"{where}: field '{field}': {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: field '{field}': {text!r} is not a finite number")
    return value


def int_option(fmt: str, options: dict[str, Any], name: str, default: int, *, lo: int = 0,
               hi: int = 10 ** 9) -> int:
    """An integer option of a loader, in [lo, hi] (YAML reads `1e30` as a string and `1.0e+30` as a float:
    both are refused here rather than looping for ever or overflowing later)."""
    value = options.get(name, default)
    integral = (isinstance(value, int) and not isinstance(value, bool)) or \
        (isinstance(value, float) and math.isfinite(value) and value.is_integer())
    if not integral or not lo <= int(value) <= hi:
        raise DataError(f"format '{fmt}': option '{name}' must be an integer from {lo} to {hi:,}, got {value!r}")
    return int(value)


def hub_dataset(repo: str, *, name: str | None = None, split: str | None = None, hint: str,
                data_files: str | None = None) -> Any:
    """Load from the Hugging Face hub, failing with one line that suggests a local path."""
    try:
        import datasets

        return datasets.load_dataset(repo, name=name, split=split, data_files=data_files)
    except Exception as e:  # offline, gated, renamed, script-based datasets...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise DataError(f"cannot load '{repo}'{f' ({name})' if name else ''} from the Hugging Face hub: {first}; "
                        f"download it and point the config at a local path ({hint})") from None


def check_options(fmt: str, options: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(options) - allowed
    if unknown:
        raise DataError(f"format '{fmt}': unknown option(s) {sorted(unknown)} (allowed: {sorted(allowed)})")


# -- source checksums: the content half of a data cache key -------------------------------------------
def source_checksums(src: Path | str | None, cache_file: Path | None = None) -> list[dict[str, str]]:
    """sha256 of every file a local source holds (a file, or every file under a folder, hidden ones
    skipped), as [{"path" (relative to the source), "sha256"}]; [] for a hub id or no source.

    A data cache keyed by these rebuilds when a source file is edited. Hashes are remembered in
    `cache_file` by (path, size, mtime), so an unchanged 11 GB file is not read again on every build.
    """
    if not isinstance(src, Path):
        return []
    root = src if src.is_dir() else src.parent
    paths = sorted(p for p in (src.rglob("*") if src.is_dir() else [src])
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))
    memo: dict[str, Any] = {}
    if cache_file is not None and cache_file.exists():
        try:
            memo = json.loads(cache_file.read_text("utf-8"))
        except (ValueError, OSError):
            memo = {}  # a damaged memo only costs hashing again
    out, changed = [], False
    for p in paths:
        st = p.stat()
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
        key = str(p.resolve())
        if memo.get(key, {}).get("stamp") != stamp:
            memo[key] = {"stamp": stamp, "sha256": sha256_file(p)}
            changed = True
        out.append({"path": str(p.relative_to(root)), "sha256": memo[key]["sha256"]})
    if changed and cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(memo, sort_keys=True), "utf-8")
            os.replace(tmp, cache_file)
        except OSError:  # the memo is an optimisation: a read-only store still works
            tmp.unlink(missing_ok=True)
    return out

"""What every loader shares: where a source lives, the hub, and the record of files read."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ...errors import DataError
from ...store import sha256_file


class Loaded(dict):
    """{lang: [items]} plus the files it came from (path + sha256) for the data manifest."""

    def __init__(self, items: dict[str, list], files: list[dict[str, str]]):
        super().__init__(items)
        self.files = files


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


def hub_dataset(repo: str, *, name: str | None = None, split: str | None = None, hint: str) -> Any:
    """Load from the Hugging Face hub, failing with one line that suggests a local path."""
    try:
        import datasets

        return datasets.load_dataset(repo, name=name, split=split)
    except Exception as e:  # offline, gated, renamed, script-based datasets...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise DataError(f"cannot load '{repo}'{f' ({name})' if name else ''} from the Hugging Face hub: {first}; "
                        f"download it and point the config at a local path ({hint})") from None


def check_options(fmt: str, options: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(options) - allowed
    if unknown:
        raise DataError(f"format '{fmt}': unknown option(s) {sorted(unknown)} (allowed: {sorted(allowed)})")

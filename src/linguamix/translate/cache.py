"""The request cache: one JSON file per finished unit, keyed by what determines its translation."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .. import store
from ..errors import DataError
from .prompt import Prompt
from .units import Unit

CACHE_FORMAT = 1


def cache_key(model: str, prompt: Prompt, lang: str, unit: Unit) -> str:
    blob = json.dumps({"model": model, "prompt_version": prompt.version, "prompt_sha256": prompt.sha256,
                       "lang": lang, "kind": unit.kind, "source": unit.view}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class Cache:
    """One JSON file per finished unit, written atomically (so an interrupted run leaves only whole files)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _file(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        p = self._file(key)
        if not p.exists():
            return None
        try:
            entry = store.read_json(p)
        except DataError:
            return None
        return entry if isinstance(entry, dict) and entry.get("cache_format") == CACHE_FORMAT else None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        store.write_json(self._file(key), entry)

"""The run store: the only module that knows paths and file formats.

Layout under a study's output root:

    runs/<run name>/            one self-describing directory per run (name = RunSpec.name)
        run.json                spec, resolved config, config hash, git commit, package versions
        status.json             state (pending/running/done/failed), reason, attempts, timings
        train/                  trainer checkpoints (best + last while training), logs
        selection.jsonl         per-epoch validation accuracy per language (checkpoint selection)
        model/                  the selected checkpoint (trained runs)
        eval/<split>/predictions.jsonl   one row per item (always kept)
        eval/<split>/summary.json        per-language n, correct, accuracy, Wilson interval
    data/<task>/<key>/          cached mixture datasets (Parquet) + manifest.json
    results.duckdb              written only by `linguamix collect`

Every write is atomic (temporary file in the same directory, then os.replace), so a crash never
leaves a half-written file behind.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import ConfigError, DataError
from .records import RunSpec

STATES = ("pending", "running", "done", "failed")
PACKAGES = ("linguamix", "torch", "transformers", "trl", "accelerate", "datasets", "peft", "vllm", "tokenizers")


# -- atomic primitives ------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_path(path: str | Path, mode: str = "w") -> Iterator[Any]:
    """Open a temporary file next to `path`; on success rename it over `path`, on error remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as f:
        f.write(text)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> int:
    n = 0
    with atomic_path(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")
            n += 1
    return n


def append_jsonl(path: str | Path, row: Any) -> None:
    """Append one line (logs only: a torn last line is skipped by read_jsonl(tolerant=True))."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None


def read_jsonl(path: str | Path, tolerant: bool = False) -> list[Any]:
    path = Path(path)
    rows = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if tolerant and i >= len(lines) - 1:
                break  # a torn final line from an interrupted append
            raise DataError(f"{path}: line {i}: invalid JSON ({e.msg})") from None
    return rows


def _json_default(o: Any) -> Any:
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    try:  # numpy scalars
        return o.item()
    except AttributeError:
        raise TypeError(f"not JSON serialisable: {type(o).__name__}") from None


# -- provenance -------------------------------------------------------------------------------------
def git_commit() -> dict[str, Any]:
    """Commit of the linguamix source tree (when installed from a git checkout)."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return {"commit": None}
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
        return {"commit": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None}


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# -- one run directory ------------------------------------------------------------------------------
class RunDir:
    """Everything about one run lives here; the directory alone says what it is and how far it got."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # paths (private to the store; other stages ask for them by role)
    @property
    def checkpoints(self) -> Path:
        return self.path / "train"

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    def eval_dir(self, split: str) -> Path:
        return self.path / "eval" / split

    @property
    def log_file(self) -> Path:
        return self.path / "logs" / "run.log"

    @property
    def lock_file(self) -> Path:
        """flock()ed while a process works on this run (two orchestrators never run it twice at once)."""
        return self.path / ".lock"

    # manifest
    def init(self, spec: dict[str, Any], config: dict[str, Any], *, allow_config_change: bool = False) -> str:
        """Create (or re-open) the run directory; refuse to reuse it for a different config."""
        from .config import config_hash

        h = config_hash({"spec": spec, "config": config})
        manifest = self.path / "run.json"
        if manifest.exists():
            old = read_json(manifest)
            if old.get("config_hash") != h and not allow_config_change:
                raise ConfigError(
                    f"{self.path}: run directory exists with a different config (hash {old.get('config_hash')} "
                    f"!= {h}); use another output directory or --allow-config-change")
            if old.get("config_hash") == h:
                return h
        write_json(manifest, {"spec": spec, "config": config, "config_hash": h, "created": now(),
                              "git": git_commit(), "versions": package_versions(), "host": platform.node()})
        if not (self.path / "status.json").exists():
            self.set_status("pending")
        return h

    def manifest(self) -> dict[str, Any]:
        p = self.path / "run.json"
        return read_json(p) if p.exists() else {}

    # status
    def status(self) -> dict[str, Any]:
        p = self.path / "status.json"
        return read_json(p) if p.exists() else {"state": "pending"}

    def set_status(self, state: str, **extra: Any) -> dict[str, Any]:
        if state not in STATES:
            raise ValueError(f"unknown state {state}")
        st = self.status() if (self.path / "status.json").exists() else {}
        st = {k: v for k, v in st.items() if k not in ("reason",)}
        st["state"] = state
        st["updated"] = now()
        if state == "running":
            st["attempts"] = int(st.get("attempts", 0)) + 1
            st["started_unix"] = time.time()
            st["host"] = platform.node()
        if state in ("done", "failed") and "started_unix" in st:
            st["elapsed_s"] = round(time.time() - st["started_unix"], 1)
        st.update(extra)
        write_json(self.path / "status.json", st)
        return st

    def is_complete(self) -> bool:
        return self.status().get("state") == "done" and (self.eval_dir("test") / "summary.json").exists()

    # logs and curves
    def log(self, name: str, row: dict[str, Any]) -> None:
        append_jsonl(self.path / "logs" / f"{name}.jsonl", row)

    def read_log(self, name: str) -> list[dict[str, Any]]:
        p = self.path / "logs" / f"{name}.jsonl"
        return read_jsonl(p, tolerant=True) if p.exists() else []

    def write_selection(self, curve: list[dict[str, Any]]) -> None:
        write_jsonl(self.path / "selection.jsonl", curve)

    def read_selection(self) -> list[dict[str, Any]]:
        p = self.path / "selection.jsonl"
        return read_jsonl(p) if p.exists() else []

    def write_json(self, name: str, obj: Any) -> None:
        write_json(self.path / name, obj)

    def read_json(self, name: str, default: Any = None) -> Any:
        p = self.path / name
        return read_json(p) if p.exists() else default

    # predictions
    def write_predictions(self, split: str, rows: Iterable[Any]) -> int:
        return write_jsonl(self.eval_dir(split) / "predictions.jsonl", rows)

    def read_predictions(self, split: str) -> list[dict[str, Any]]:
        p = self.eval_dir(split) / "predictions.jsonl"
        return read_jsonl(p) if p.exists() else []

    def write_summary(self, split: str, summary: Any) -> None:
        write_json(self.eval_dir(split) / "summary.json", summary)

    def read_summary(self, split: str) -> Any:
        p = self.eval_dir(split) / "summary.json"
        return read_json(p) if p.exists() else None

    def has_summary(self, split: str) -> bool:
        return (self.eval_dir(split) / "summary.json").exists()


# -- the study store --------------------------------------------------------------------------------
class Store:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def run(self, spec: RunSpec) -> RunDir:
        return RunDir(self.root / "runs" / spec.name)

    def is_complete(self, spec: RunSpec) -> bool:
        return self.run(spec).is_complete()

    def data_dir(self, task: str, key: str) -> Path:
        return self.root / "data" / task / key

    def run_dirs(self) -> list[RunDir]:
        base = self.root / "runs"
        return [RunDir(p) for p in sorted(base.iterdir()) if (p / "run.json").exists()] if base.exists() else []

    def results_db(self) -> Path:
        return self.root / "results.duckdb"

    def load_results(self, split: str = "test"):
        """One row per (run, evaluation language) of the finished runs, as a DataFrame."""
        return load_results([r.path for r in self.run_dirs()], split=split)


RESULT_COLUMNS = ["run", "model", "family", "size_b", "task", "mixture", "train_langs", "n_train_langs",
                  "seed", "eval_lang", "n", "correct", "accuracy", "ci_low", "ci_high"]


def load_results(run_paths: Iterable[str | Path], split: str = "test"):
    import pandas as pd

    rows = []
    for path in run_paths:
        rd = RunDir(path)
        summary = rd.read_summary(split)
        manifest = rd.manifest()
        if not summary or not manifest:
            continue
        spec, model = manifest["spec"], manifest.get("config", {}).get("model", {})
        mixture = spec["mixture"]
        train_langs = [] if spec.get("kind") == "baseline" else mixture.split("+")
        for lang_row in summary["languages"]:
            rows.append({
                "run": spec["name"], "model": spec["model"], "family": model.get("family"),
                "size_b": model.get("size_b"), "task": spec["task"], "mixture": mixture,
                "train_langs": "+".join(sorted(train_langs)), "n_train_langs": len(train_langs),
                "seed": spec.get("seed", 0), "eval_lang": lang_row["lang"], "n": lang_row["n"],
                "correct": lang_row["correct"], "accuracy": lang_row["accuracy"],
                "ci_low": lang_row.get("ci_low"), "ci_high": lang_row.get("ci_high"),
            })
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


# -- data cache ---------------------------------------------------------------------------------------
def write_parquet(path: str | Path, rows: list[dict[str, Any]], schema) -> None:
    """Deterministic Parquet (explicit schema, no pandas metadata): same rows -> same bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows, schema=schema)
    with atomic_path(path, "wb") as f:
        pq.write_table(table, f, compression="zstd", write_statistics=False)


def read_parquet(path: str | Path):
    import pyarrow.parquet as pq

    return pq.read_table(path)


class DataDir:
    """Cached data of one task for one tokenizer: the item selection, and one folder per mixture."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def selection_file(self) -> Path:
        return self.path / "selection.json"

    def mixture_dir(self, mixture_id: str) -> Path:
        return self.path / "mixtures" / mixture_id

    def split_file(self, mixture_id: str, split: str) -> Path:
        return self.mixture_dir(mixture_id) / f"{split}.parquet"

    def manifest_file(self, mixture_id: str) -> Path:
        return self.mixture_dir(mixture_id) / "manifest.json"

    def has_mixture(self, mixture_id: str) -> bool:
        return self.manifest_file(mixture_id).exists()

"""The run store: the only module that knows paths and file formats.

Layout under a study's output root:

    runs/<run name>/            one self-describing directory per run (name = RunSpec.name)
        run.json                spec, resolved config, config hash, git commit, package versions
        status.json             state (pending/running/done/failed), reason, attempts, elapsed time
        logs/timings.jsonl      wall time of each stage as it finished (linguamix.timing)
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
import os
import platform
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import ConfigError, StorageError
from ..records import RunSpec
from ..timing import STAGES as STAGES_TIMED
from .files import (  # noqa: F401  re-exported: every stage imports file helpers from linguamix.store
    STORAGE_ERRNOS, storage_error, temp_name, clean_litter, atomic_path, write_files, staged_dir, atomic_dir,
    write_text, json_text, jsonl_text, write_json, write_jsonl, append_jsonl, read_json, iter_records, read_jsonl,
    sha256_file, config_hash, git_commit, package_versions, now, write_parquet, read_parquet, _pid_alive)

STATES = ("pending", "running", "done", "failed", "cancelled")


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
        if state in ("done", "failed", "cancelled") and "started_unix" in st:
            st["elapsed_s"] = round(time.time() - st["started_unix"], 1)
        st.update(extra)
        write_json(self.path / "status.json", st)
        return st

    def is_complete(self) -> bool:
        return self.status().get("state") == "done" and (self.eval_dir("test") / "summary.json").exists()

    def state(self, expected_hash: str | None = None) -> dict[str, Any]:
        """status.json with the state a reader should act on: a `running` run whose process is gone (a killed
        orchestrator) is `pending` and resumable; `done` without a test summary is `pending`; a `done` run
        whose config hash differs from `expected_hash` keeps its state and says so in `reason` and `stale`."""
        st = dict(self.status())
        state = st.get("state", "pending")
        if state == "running" and not _alive(st):
            st["state"] = "pending"
            st["reason"] = (f"interrupted (process {st.get('pid')} on {st.get('host')} is gone); "
                            "resumes on the next `study run`")
        elif state == "done" and not self.is_complete():
            st["state"], st["reason"] = "pending", "marked done but its test summary is missing"
        if st["state"] == "done" and expected_hash:
            old = self.manifest().get("config_hash")
            if old and old != expected_hash and st.get("accepted_config_hash") != expected_hash:
                st["stale"] = True
                st["reason"] = (f"config changed since this run (hash {old}): `study run --rerun-changed` redoes it, "
                                "`--accept-changed` keeps it")
        return st

    def accept_config(self, config_hash: str, fields: list[str]) -> None:
        """Keep this run's results under another configuration (`--accept-changed`): recorded, not hidden."""
        st = self.status()
        st.update(accepted_config_hash=config_hash, accepted_changes=list(fields), updated=now())
        write_json(self.path / "status.json", st)

    def set_aside(self, root: str | Path) -> Path:
        """Move the whole run directory under `root` (`--rerun-changed`: the old results are kept, not reused)."""
        dest = Path(root) / f"{self.path.name}@{self.manifest().get('config_hash', 'unknown')}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            dest = dest.with_name(f"{dest.name}.{int(time.time())}")
        os.replace(self.path, dest)
        return dest

    @contextlib.contextmanager
    def attempt(self, **extra: Any) -> Iterator[None]:
        """Mark the run `running` (with this process's pid) for the block; an exception marks it `failed`
        with its first line as the reason and propagates (Ctrl-C leaves it `pending`: resumable, not failed)."""
        self.set_status("running", pid=os.getpid(), **extra)
        try:
            yield
        except KeyboardInterrupt:
            self._record("pending", reason="interrupted; resumes on the next run")
            raise
        except BaseException as e:
            self._record("failed", reason=failure_reason(e))
            raise

    def _record(self, state: str, **extra: Any) -> None:
        """set_status, best effort: on a full or read-only disk the original error is the one to report."""
        with contextlib.suppress(OSError, StorageError):
            self.set_status(state, **extra)

    # logs and curves
    def log(self, name: str, row: dict[str, Any]) -> None:
        append_jsonl(self.path / "logs" / f"{name}.jsonl", row)

    def read_log(self, name: str) -> list[dict[str, Any]]:
        p = self.path / "logs" / f"{name}.jsonl"
        return read_jsonl(p, tolerant=True) if p.exists() else []

    def log_timing(self, stage: str, seconds: float, **counts: Any) -> None:
        """One finished stage's wall time (linguamix.timing), appended as it happens."""
        if stage not in STAGES_TIMED:
            raise ValueError(f"unknown stage {stage!r}")
        self.log("timings", {"stage": stage, "seconds": round(seconds, 3), "at": now(), **counts})

    def read_timings(self) -> list[dict[str, Any]]:
        return self.read_log("timings")

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


def failure_reason(e: BaseException) -> str:
    """The one-line reason a failed run records: the exception's type and first line."""
    return f"{type(e).__name__}: {e}".splitlines()[0][:500]


def _alive(st: dict[str, Any]) -> bool:
    """Whether the process that marked a run `running` may still run it (only checkable on its own host)."""
    pid, host = st.get("pid"), st.get("host")
    if not pid or host != platform.node():
        return True
    try:
        return _pid_alive(int(pid))
    except (ValueError, OverflowError):
        return True


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

    def data_index(self, task: str) -> Path:
        """Which content key each data setting was last built under (why a mixture was rebuilt)."""
        return self.root / "data" / task / "index.json"

    def checksum_memo(self) -> Path:
        """sha256 of source files by (path, size, mtime): unchanged sources are not read again."""
        return self.root / "data" / "source-checksums.json"

    def results_db(self) -> Path:
        return self.root / "results.duckdb"

    @property
    def replaced(self) -> Path:
        """Where `--rerun-changed` keeps the run directories of an earlier configuration."""
        return self.root / "replaced"


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

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
import errno
import glob
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import ConfigError, DataError, StorageError
from .records import RunSpec

STATES = ("pending", "running", "done", "failed", "cancelled")
PACKAGES = ("linguamix", "torch", "transformers", "trl", "accelerate", "datasets", "peft", "vllm", "tokenizers")


# -- atomic primitives ------------------------------------------------------------------------------
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR,
                  errno.EFBIG, errno.EEXIST}
"""OSErrors that mean "this output cannot be written here" (reported in one line, exit 2)."""


def storage_error(path: str | Path, e: OSError) -> StorageError:
    what = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
            errno.EROFS: "read-only file system", errno.EISDIR: "is a directory",
            errno.ENOTDIR: "a parent is not a directory"}.get(e.errno, e.strerror or type(e).__name__)
    return StorageError(f"{path}: cannot write ({what})")


def temp_name(path: Path) -> str:
    """`.NAME.PID.` prefix of the temporary files beside `path`: the pid tells litter from work in progress."""
    return f".{path.name}.{os.getpid()}."


def clean_litter(path: str | Path) -> list[Path]:
    """Remove temporary files of `path` that a killed process left (their pid is gone); -> what was removed."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for p in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*"):
        pid = p.name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
                removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | Path, mode: str = "w") -> Iterator[Any]:
    """Open a temporary file next to `path`; on success rename it over `path`, on error remove it (so
    `path` is unchanged or complete). An output that cannot be written is a StorageError naming it."""
    path = Path(path)
    tmp = None
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_litter(path)
        fd, tmp = tempfile.mkstemp(prefix=temp_name(path), suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        if e.errno in STORAGE_ERRNOS:
            raise storage_error(path, e) from None
        raise
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp: str | None) -> None:
    if tmp is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_files(texts: dict[Path, str]) -> None:
    """Several text files that go together: all are written to temporary files first, then renamed into
    place, so a full disk leaves every target as it was."""
    temps: list[tuple[Path, str]] = []
    try:
        for path, text in texts.items():
            path = Path(path)
            if path.is_dir():
                raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=temp_name(path), suffix=".tmp", dir=path.parent)
            temps.append((path, tmp))
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_umask())
        for path, tmp in temps:
            os.replace(tmp, path)
    except OSError as e:
        for _, tmp in temps:
            _remove(tmp)
        failed = Path(e.filename) if getattr(e, "filename", None) else (temps[-1][0] if temps else "output")
        raise (storage_error(failed, e) if e.errno in STORAGE_ERRNOS else e) from None


@contextlib.contextmanager
def staged_dir(out: str | Path) -> Iterator[Path]:
    """A staging folder beside `out` to write many files into; on success each file is renamed into `out`
    (renames need no space), on error the staging folder goes and `out` is as it was."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        clean_litter(out)
        stage = Path(tempfile.mkdtemp(prefix=temp_name(out), suffix=".tmp", dir=out.parent))
    except OSError as e:
        raise (storage_error(out, e) if e.errno in STORAGE_ERRNOS else e) from None
    try:
        yield stage
        for p in sorted(stage.rglob("*")):
            if p.is_file():
                dest = out / p.relative_to(stage)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(p, dest)
    except OSError as e:
        raise (storage_error(out, e) if e.errno in STORAGE_ERRNOS else e) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Fill a temporary folder next to `path`; on success it replaces `path` as a whole, on error it is
    removed. A crash (or a full disk) leaves either the old complete folder or none, never a mix; a
    folder that cannot be written is a StorageError naming it."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_litter(path)
        tmp = Path(tempfile.mkdtemp(prefix=temp_name(path), suffix=".tmp", dir=path.parent))
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists():  # rename the old one aside first: os.replace cannot replace a non-empty folder
            old = path.with_name(f"{temp_name(path)}old.tmp")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise (storage_error(path, e) if e.errno in STORAGE_ERRNOS else e) from None
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as f:
        f.write(text)


def json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n"


def jsonl_text(rows: Iterable[Any]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n" for row in rows)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json_text(obj))


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
        return json.loads(path.read_text(encoding="utf-8").removeprefix("\ufeff"))  # a BOM is not content
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start})") from None


def iter_records(path: str | Path, *, tolerant: bool = False) -> Iterator[tuple[int, Any]]:
    """(line or row number, record) of a JSONL file, a JSON array or a Parquet file: the one reader of
    record files, so every malformed line is reported the same way (`FILE: line N: invalid JSON (...)`).

    `tolerant`: a torn final line (an append interrupted by a crash) is skipped instead of an error."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        yield from enumerate(pq.read_table(path).to_pylist(), 1)
        return
    try:
        text = path.read_text(encoding="utf-8").removeprefix("\ufeff")  # a BOM is not part of the first record
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start})") from None
    if text.lstrip()[:1] == "[":  # a JSON array (API-Bank, MSVAMP): rows numbered from 1
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None
        yield from enumerate(data, 1)
        return
    lines = text.split("\n")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            if tolerant and n >= len(lines) - 1:
                return  # a torn final line from an interrupted append
            raise DataError(f"{path}: line {n}: invalid JSON ({e.msg})") from None
        yield n, record


def read_jsonl(path: str | Path, tolerant: bool = False) -> list[Any]:
    return [record for _, record in iter_records(path, tolerant=tolerant)]


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


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks (source checksums in manifests, input hashes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def config_hash(obj: Any) -> str:
    """Stable short hash of any JSON-able object (keys sorted): the key of run directories and caches."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


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


def _pid_alive(pid: int) -> bool:
    """A process of this host with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    try:  # a killed process nobody has reaped yet is a zombie: gone all the same
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
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

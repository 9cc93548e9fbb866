"""The store's files: atomic writes (a crash never leaves a half-written file), JSON / JSONL / Parquet,
content hashes and provenance. Stages import these through `linguamix.store`, which re-exports them."""
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
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import DataError, StorageError

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



"""The results database: every run directory of a study gathered into three tables.

    linguamix collect CONFIG [--out results.duckdb | --out DIR/ --format parquet]

    runs         one row per run of the design (any state): spec, status, config + hash, git commit,
                 selection curve, selected epoch, elapsed time, seconds per stage (time_<stage>_s)
    evaluations  one row per finished run x evaluation language: n, correct, accuracy, Wilson interval
                 (the analysis's input; column names are its contract)
    predictions  one row per finished run x evaluated item

Only this command writes the database, and it writes it whole: into a temporary file that replaces the
old one at the end, so a reader never sees a half-written database. Jobs write only their run directories.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import StudyConfig
from .errors import ConfigError, StorageError
from .mixtures import label
from .records import RunSpec
from .runs import changed_runs, describe_changed, expand, run_hash
from .store import STORAGE_ERRNOS, RunDir, Store, clean_litter, staged_dir, storage_error, temp_name
from .timing import STAGES, stage_totals, throughput

SPLIT = "test"


def _schemas():
    import pyarrow as pa

    s, i, f, b = pa.string(), pa.int64(), pa.float64(), pa.bool_()
    return {
        "runs": pa.schema([
            ("name", s), ("kind", s), ("model", s), ("family", s), ("size_b", f), ("task", s), ("mixture", s),
            ("train_langs", s), ("n_train_langs", i), ("seed", i), ("status", s), ("reason", s), ("attempts", i),
            ("config_hash", s), ("git_commit", s), ("git_dirty", b), ("config", s), ("selection_curve", s),
            ("selected_epoch", i), ("selected_val_avg_acc", f), ("elapsed_s", f), ("host", s), ("created", s),
            ("updated", s), ("n_eval_items", i), ("config_changed", s),
            *[(f"time_{stage}_s", f) for stage in STAGES], ("train_tokens_per_s", f), ("generated_tokens_per_s", f)]),
        "evaluations": pa.schema([
            ("model", s), ("family", s), ("size_b", f), ("task", s), ("mixture", s), ("train_langs", s),
            ("n_train_langs", i), ("eval_lang", s), ("n", i), ("correct", i), ("run", s), ("seed", i),
            ("accuracy", f), ("ci_low", f), ("ci_high", f), ("split", s)]),
        "predictions": pa.schema([
            ("run", s), ("model", s), ("task", s), ("mixture", s), ("seed", i), ("eval_lang", s), ("item_id", s),
            ("prompt_hash", s), ("completion", s), ("prediction", s), ("correct", b), ("strict", b), ("lenient", b),
            ("gold", s), ("split", s)]),
    }


TABLES = ("runs", "evaluations", "predictions")


@dataclass(frozen=True)
class Collected:
    path: Path
    format: str
    rows: dict[str, int]


def gather(cfg: StudyConfig, store: Store | None = None, *, accept_changed: bool = False) -> dict[str, Any]:
    """The three tables (pyarrow) of the study's design, from its run directories. Finished runs made under
    another configuration are refused (ConfigError naming them and what changed) unless `accept_changed`;
    then, and for runs accepted by `study run --accept-changed`, `runs.config_changed` says what changed."""
    import pyarrow as pa

    store = store or Store(cfg.output_path)
    specs = expand(cfg)
    drift = {c.spec.name: c for c in changed_runs(cfg, specs, store) if c.complete}
    if drift and not accept_changed:
        raise ConfigError(f"{describe_changed(list(drift.values()))}: collecting them would mix configurations; "
                          "redo them (`study run --rerun-changed`) or collect them as they are with --accept-changed")
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
    for spec in specs:
        rd = store.run(spec)
        model = cfg.model(spec.model)
        langs = spec.train_languages
        common = {"model": spec.model, "family": model.family, "size_b": float(model.size_b), "task": spec.task,
                  "mixture": spec.mixture, "train_langs": label(langs), "n_train_langs": len(langs)}
        st = rd.state(run_hash(cfg, spec))
        complete = rd.is_complete()
        summary = rd.read_summary(SPLIT) if complete else None
        changes = drift[spec.name].fields if spec.name in drift else st.get("accepted_changes")
        rows["runs"].append({**_run_row(spec, rd, st, common, summary),
                             "config_changed": "; ".join(changes) if changes else None})
        if not complete:
            continue
        for r in summary["languages"]:
            rows["evaluations"].append({**common, "eval_lang": r["lang"], "n": int(r["n"]),
                                        "correct": int(r["correct"]), "run": spec.name, "seed": spec.seed,
                                        "accuracy": r.get("accuracy"), "ci_low": r.get("ci_low"),
                                        "ci_high": r.get("ci_high"), "split": SPLIT})
        for p in rd.read_predictions(SPLIT):
            rows["predictions"].append({
                "run": spec.name, "model": spec.model, "task": spec.task, "mixture": spec.mixture, "seed": spec.seed,
                "eval_lang": p["lang"], "item_id": str(p["item_id"]), "prompt_hash": p.get("prompt_hash"),
                "completion": p.get("completion"), "prediction": _json(p.get("prediction")),
                "correct": bool(p["correct"]), "strict": _bool(p.get("strict")), "lenient": _bool(p.get("lenient")),
                "gold": _json(p.get("gold")), "split": SPLIT})
    schemas = _schemas()
    return {t: pa.Table.from_pylist(rows[t], schema=schemas[t]) for t in TABLES}


def _run_row(spec: RunSpec, rd: RunDir, st: dict[str, Any], common: dict[str, Any],
             summary: dict[str, Any] | None) -> dict[str, Any]:
    manifest = rd.manifest()
    curve = rd.read_selection()
    best = max(curve, key=lambda c: (c.get("avg_acc", 0), -c.get("step", 0))) if curve else {}
    git = manifest.get("git") or {}
    return {"name": spec.name, "kind": spec.kind, **common, "seed": spec.seed,
            "status": st.get("state", "pending"), "reason": st.get("reason"), "attempts": int(st.get("attempts", 0)),
            "config_hash": manifest.get("config_hash"), "git_commit": git.get("commit"), "git_dirty": git.get("dirty"),
            "config": _json(manifest.get("config")) if manifest else None,
            "selection_curve": json.dumps(curve, ensure_ascii=False) if curve else None,
            "selected_epoch": st.get("selected_epoch", best.get("epoch")),
            "selected_val_avg_acc": st.get("selected_val_avg_acc", best.get("avg_acc")),
            "elapsed_s": st.get("elapsed_s"), "host": st.get("host"), "created": manifest.get("created"),
            "updated": st.get("updated"), "n_eval_items": summary.get("n_items") if summary else None,
            **_timing_columns(rd.read_timings())}


def _timing_columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Seconds per stage (None for a run never timed) and the throughput the run measured."""
    if not rows:
        return {**{f"time_{k}_s": None for k in STAGES}, "train_tokens_per_s": None, "generated_tokens_per_s": None}
    tp = throughput(rows)
    return {**{f"time_{k}_s": round(v, 3) for k, v in stage_totals(rows).items()},
            "train_tokens_per_s": tp["train_tokens_per_s"], "generated_tokens_per_s": tp["generated_tokens_per_s"]}


def _json(v: Any) -> str | None:
    return None if v is None else json.dumps(v, ensure_ascii=False, sort_keys=True)


def _bool(v: Any) -> bool | None:
    return None if v is None else bool(v)


def collect(cfg: StudyConfig, *, out: str | Path | None = None, fmt: str | None = None,
            store: Store | None = None, accept_changed: bool = False) -> Collected:
    """Write the database: DuckDB by default (`<output>/results.duckdb`), or one Parquet file per table
    when `fmt` is `parquet` or `out` names a directory (ends with '/', or exists as one)."""
    store = store or Store(cfg.output_path)
    if fmt is None:
        fmt = "parquet" if out is not None and (str(out).endswith(os.sep) or Path(out).is_dir()) else "duckdb"
    if fmt not in ("duckdb", "parquet"):
        raise ConfigError(f"--format {fmt}: expected duckdb or parquet")
    path = Path(out) if out is not None else (store.results_db() if fmt == "duckdb" else store.root / "results")
    tables = gather(cfg, store, accept_changed=accept_changed)
    if fmt == "duckdb":
        _write_duckdb(path, tables)
    else:
        _write_parquet(path, tables)
    return Collected(path, fmt, {t: tables[t].num_rows for t in TABLES})


def _write_duckdb(path: Path, tables: dict[str, Any]) -> None:
    import duckdb

    if path.is_dir():
        raise ConfigError(f"--out {path}: is a directory (use --format parquet, or a file name)")
    tmp = path.with_name(f"{temp_name(path)}tmp")  # `.NAME.PID.tmp`: litter of a killed collect is recognised
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_litter(path)
        for leftover in (tmp, Path(f"{tmp}.wal")):  # this very pid's, from a crash of an earlier process
            leftover.unlink(missing_ok=True)
        con = duckdb.connect(str(tmp))
        try:
            for name in TABLES:
                con.register("arrow_in", tables[name])
                con.execute(f"CREATE TABLE {name} AS SELECT * FROM arrow_in")
                con.unregister("arrow_in")
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, path)
    except OSError as e:
        raise (storage_error(path, e) if e.errno in STORAGE_ERRNOS else e) from None
    except duckdb.Error as e:  # DuckDB's own write errors (a full disk: IOException or FatalException)
        raise StorageError(f"{path}: cannot write ({str(e).splitlines()[0][:200]})") from None
    finally:
        for leftover in (tmp, Path(f"{tmp}.wal")):
            leftover.unlink(missing_ok=True)


def _write_parquet(folder: Path, tables: dict[str, Any]) -> None:
    import pyarrow.parquet as pq

    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder}: exists and is not a directory")
    with staged_dir(folder) as stage:  # the three tables appear together, or not at all
        for name in TABLES:
            pq.write_table(tables[name], stage / f"{name}.parquet", compression="zstd")

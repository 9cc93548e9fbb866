"""Reading and validating a results table: the analysis's only input.

Accepted inputs (chosen by file suffix):

* `.csv` / `.parquet` (`.pq`): one row per (model, task, mixture, evaluation language);
* a directory with `evaluations.parquet` (and optionally `predictions.parquet`): `collect --format parquet`;
* `.duckdb` / `.db`: the database written by `linguamix collect`, which holds
  - table `evaluations`: the same rows and columns as the CSV (extra columns such as `run`,
    `accuracy`, `ci_low`, `ci_high` are allowed and ignored; accuracy is always recomputed from counts),
  - table `predictions` (optional): one row per scored item, columns at least
    `model, task, mixture, eval_lang, item_id, correct` (correct: bool or 0/1; `seed` optional),
  - table `runs` (optional): only its time_<stage>_s columns are read, for the report's time section,
  - table `simulation` (optional, written by `linguamix simulate`): marks the data as simulated.

Per-item predictions may also come from a separate CSV/Parquet/JSONL file (`predictions=`); they enable
the paired tests and the item-clustered bootstrap (linguamix.analysis.clusters).

Required columns of the results table (one row per trained or pretrained model x task x eval language):

    model (str)         short model name, e.g. qwen3-8b
    family (str)        model family, e.g. qwen3, gemma3 (constant per model)
    size_b (float)      billions of parameters (constant per model, > 0)
    task (str)          `math` or `api`
    mixture (str)       mixture id = the training languages sorted and joined by '+', or `pretrained`
    train_langs (str)   the training languages joined by '+' (any order), empty for `pretrained`
    n_train_langs (int) number of training languages, 0 for `pretrained`
    eval_lang (str)     ISO code of the evaluation language (must be in the language table)
    n (int)             items evaluated (> 0)
    correct (int)       items answered correctly (0 <= correct <= n)

Duplicated (model, task, mixture, eval_lang) rows are an error, unless a `seed` column tells them apart:
then `rows` pools the seeds (n and correct summed; the paper's analyses) and `evaluations` keeps them apart
(seed-to-seed spread, run resampling). A column `p_planted` (or a DuckDB table `simulation`) marks a
table drawn by `linguamix simulate`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .. import languages, tasks
from ..errors import DataError
from ..mixtures import PRETRAINED, label, languages_of
from ..store import sha256_file
from .evaluations import Evaluations, from_frames, normalise_seed, pool_seeds

REQUIRED_COLUMNS = ("model", "family", "size_b", "task", "mixture", "train_langs", "n_train_langs",
                    "eval_lang", "n", "correct")
KEY = ("model", "task", "mixture", "eval_lang")
PREDICTION_COLUMNS = ("model", "task", "mixture", "eval_lang", "item_id", "correct")


@dataclass(frozen=True)
class ResultsTable:
    """A validated results table, ready for every analysis."""

    rows: pd.DataFrame
    """REQUIRED_COLUMNS, one row per KEY, sorted by family, size, model, task, n_train_langs, mixture, language."""
    source: str
    """Where it came from (the file path)."""
    sha256: str
    """SHA-256 of the input file's bytes (and of the predictions file, when separate)."""
    predictions: pd.DataFrame | None = None
    """KEY + item_id + correct (bool), or None when no per-item predictions were given."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    """Things the reader did that the report must state (e.g. pooled seeds)."""
    evaluations: Evaluations | None = None
    """Per-seed cells and per-item outcomes; None = derive from `rows` and `predictions` (one seed)."""
    simulated: str | None = None
    """How the table was simulated, when it was (`linguamix simulate`); None for real results."""
    timings: pd.DataFrame | None = None
    """The `runs` table's name, kind, model, task and time_<stage>_s columns (`linguamix collect`'s
    database or parquet folder), for the report's time section; None when the input has none."""

    def cells(self) -> Evaluations:
        return self.evaluations if self.evaluations is not None else from_frames(self.rows, self.predictions)


def load_results(path: str | Path, *, predictions: str | Path | None = None) -> ResultsTable:
    """Read, validate and normalise a results table (and optional per-item predictions)."""
    path = Path(path)
    pred_df = None
    timings = None
    if path.is_dir():  # `linguamix collect --format parquet`: one file per table
        if not (path / "evaluations.parquet").is_file():
            raise DataError(f"{path}: a results directory must hold evaluations.parquet")
        if predictions is None and (path / "predictions.parquet").is_file():
            predictions = path / "predictions.parquet"
        if (path / "runs.parquet").is_file():
            timings = _timing_columns(pd.read_parquet(path / "runs.parquet"))
        path = path / "evaluations.parquet"
    if not path.is_file():
        raise DataError(f"{path}: results file not found")
    suffix = path.suffix.lower()
    simulated = None
    if suffix in (".duckdb", ".db"):
        table, pred_df, simulated, runs = _read_duckdb(path)
        timings = _timing_columns(runs)
        line_offset = None
    elif suffix == ".csv":
        table = _read_table_file(path)
        line_offset = 2  # header is line 1
    elif suffix in (".parquet", ".pq"):
        table = _read_table_file(path)
        line_offset = None
    else:
        raise DataError(f"{path}: unsupported results format '{suffix}' (use .csv, .parquet or .duckdb)")
    digest = sha256_file(path)
    if predictions is not None:
        pred_path = Path(predictions)
        if not pred_path.is_file():
            raise DataError(f"{pred_path}: predictions file not found")
        pred_df = _read_table_file(pred_path, columns=[*PREDICTION_COLUMNS, "seed"])
        digest = f"{digest}+{sha256_file(pred_path)}"
        pred_source = str(pred_path)
    else:
        pred_source = f"{path}:predictions"
    if simulated is None and "p_planted" in table.columns:
        simulated = "a table with planted accuracies (column p_planted), as `linguamix simulate` writes"
    rows, cells, notes = validate_table(table, source=str(path), line_offset=line_offset)
    preds = None
    if pred_df is not None:
        preds, pred_notes = validate_predictions(pred_df, cells, source=pred_source)
        notes = notes + pred_notes
    return ResultsTable(rows=rows, source=str(path), sha256=digest, predictions=preds, notes=tuple(notes),
                        evaluations=from_frames(cells, preds), simulated=simulated, timings=timings)


def _timing_columns(runs: pd.DataFrame | None) -> pd.DataFrame | None:
    """The runs' identity and per-stage seconds, or None when there are no timed runs."""
    if runs is None or not any(c.startswith("time_") for c in runs.columns):
        return None
    cols = [c for c in ("name", "kind", "model", "task") if c in runs.columns]
    out = runs[cols + [c for c in runs.columns if c.startswith("time_")]]
    timed = out[[c for c in out.columns if c.startswith("time_")]].notna().any(axis=1)
    return out[timed].reset_index(drop=True) if timed.any() else None


# -- readers -------------------------------------------------------------------------------------------
def _read_table_file(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            # Everything as text: empty cells stay "" (train_langs of `pretrained`), types are checked below.
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        if suffix in (".parquet", ".pq"):
            if columns is not None:  # only what the analysis reads (predictions also hold completions)
                import pyarrow.parquet as pq

                have = set(pq.read_schema(path).names)
                columns = [c for c in columns if c in have]
            return pd.read_parquet(path, columns=columns)
        if suffix == ".jsonl":  # the store's reader: a bad line is named
            from ..store import iter_records

            return pd.DataFrame([r for _, r in iter_records(path)])
    except (OSError, ValueError, pd.errors.ParserError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{path}: cannot read ({first})") from None
    raise DataError(f"{path}: unsupported format '{suffix}' (use .csv, .parquet or .jsonl)")


def _read_duckdb(path: Path) -> tuple[pd.DataFrame, pd.DataFrame | None, str | None, pd.DataFrame | None]:
    import duckdb

    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as e:
        raise DataError(f"{path}: cannot open as DuckDB ({str(e).splitlines()[0]})") from None
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "evaluations" not in tables:
            raise DataError(f"{path}: no table 'evaluations' (have: {', '.join(sorted(tables)) or 'none'})")
        table = con.execute("SELECT * FROM evaluations").df()
        preds = None
        if "predictions" in tables:  # only the columns the analysis reads (not the completions)
            have = {r[0] for r in con.execute("DESCRIBE predictions").fetchall()}
            cols = [c for c in (*PREDICTION_COLUMNS, "seed") if c in have]
            preds = con.execute(f"SELECT {', '.join(cols)} FROM predictions").df() if cols else pd.DataFrame()
        runs = con.execute("SELECT * FROM runs").df() if "runs" in tables else None
        simulated = None
        if "simulation" in tables:
            row = con.execute("SELECT * FROM simulation LIMIT 1").df()
            simulated = str(row["description"].iloc[0]) if "description" in row and len(row) else "simulated"
    except duckdb.Error as e:  # a truncated or damaged file fails at the first read, not at connect
        raise DataError(f"{path}: cannot read as DuckDB ({str(e).splitlines()[0][:200]})") from None
    finally:
        con.close()
    return table, preds, simulated, runs


# -- validation ----------------------------------------------------------------------------------------
def _where(source: str, i: int, line_offset: int | None) -> str:
    return f"{source}: line {i + line_offset}" if line_offset is not None else f"{source}: row {i + 1}"


def _as_int(df: pd.DataFrame, col: str, source: str, line_offset: int | None) -> pd.Series:
    num = pd.to_numeric(df[col], errors="coerce")
    bad = num.isna() | (num != num.round())
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(f"{_where(source, i, line_offset)}: column '{col}': expected an integer, "
                        f"got {df[col].iloc[i]!r}")
    return num.astype("int64")


def _as_float(df: pd.DataFrame, col: str, source: str, line_offset: int | None) -> pd.Series:
    num = pd.to_numeric(df[col], errors="coerce")
    if num.isna().any():
        i = int(num.isna().to_numpy().nonzero()[0][0])
        raise DataError(f"{_where(source, i, line_offset)}: column '{col}': expected a number, got {df[col].iloc[i]!r}")
    return num.astype(float)


def _as_str(df: pd.DataFrame, col: str) -> pd.Series:
    return df[col].map(lambda v: "" if v is None or (isinstance(v, float) and v != v) else str(v).strip())


def validate_results(df: pd.DataFrame, *, source: str = "<results>",
                     line_offset: int | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Check every row; return the normalised table (REQUIRED_COLUMNS, seeds pooled) and notes."""
    rows, _, notes = validate_table(df, source=source, line_offset=line_offset)
    return rows, notes


def validate_table(df: pd.DataFrame, *, source: str = "<results>",
                   line_offset: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Check every row; return (rows: REQUIRED_COLUMNS with seeds pooled, cells: one row per seed with
    KEY + seed ('' without a seed column) + the other columns, notes).

    Errors name the first offending row (`line L` for CSV, where the header is line 1; else `row R`,
    1-based) and the column. Nothing is dropped silently.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)} "
                        f"(required: {', '.join(REQUIRED_COLUMNS)})")
    if len(df) == 0:
        raise DataError(f"{source}: no rows")
    df = df.reset_index(drop=True)
    out = pd.DataFrame({c: _as_str(df, c) for c in ("model", "family", "task", "mixture", "train_langs", "eval_lang")})
    out["size_b"] = _as_float(df, "size_b", source, line_offset)
    out["n_train_langs"] = _as_int(df, "n_train_langs", source, line_offset)
    out["n"] = _as_int(df, "n", source, line_offset)
    out["correct"] = _as_int(df, "correct", source, line_offset)
    has_seed = "seed" in df.columns
    out["seed"] = df["seed"].map(normalise_seed) if has_seed else ""

    known = {lang.code for lang in languages.all_languages()}
    for i, r in enumerate(out.itertuples(index=False)):
        where = _where(source, i, line_offset)
        for col in ("model", "family", "task", "mixture", "eval_lang"):
            if not getattr(r, col):
                raise DataError(f"{where}: column '{col}': empty")
        if r.task not in tasks.names():
            raise DataError(f"{where}: column 'task': {r.task!r} is not one of {', '.join(tasks.names())}")
        if not r.size_b > 0:
            raise DataError(f"{where}: column 'size_b': must be > 0, got {r.size_b}")
        if r.n <= 0:
            raise DataError(f"{where}: column 'n': must be > 0, got {r.n}")
        if not 0 <= r.correct <= r.n:
            raise DataError(f"{where}: column 'correct': must be between 0 and n={r.n}, got {r.correct}")
        if r.eval_lang not in known:
            raise DataError(f"{where}: column 'eval_lang': unknown language code {r.eval_lang!r} "
                            f"(not in the language table)")
        _check_mixture(r, where, known)

    for col in ("family", "size_b"):
        per_model = out.groupby("model")[col].nunique()
        if (per_model > 1).any():
            model = per_model[per_model > 1].index[0]
            i = int((out["model"] == model).to_numpy().nonzero()[0][0])
            values = sorted(map(str, out.loc[out["model"] == model, col].unique()))
            raise DataError(f"{_where(source, i, line_offset)}: column '{col}': model {model!r} has several "
                            f"values ({', '.join(values)})")

    notes: list[str] = []
    key = list(KEY) + (["seed"] if has_seed else [])
    dup = out.duplicated(key, keep=False)
    if dup.any():
        first, second = dup.to_numpy().nonzero()[0][:2]
        what = ", ".join(f"{k}={out.loc[first, k]}" for k in key)
        raise DataError(f"{_where(source, int(second), line_offset)}: duplicate of "
                        f"{_where(source, int(first), line_offset).split(': ', 1)[1]} ({what})"
                        + ("" if has_seed else "; add a 'seed' column to pool repeated runs"))
    out["train_langs"] = out["train_langs"].map(lambda s: label(languages_of(s)))
    cells = sort_results(out, extra=["seed"])
    if has_seed:
        n_seeds = out.groupby(list(KEY))["seed"].nunique()
        if (n_seeds > 1).any():
            notes.append(f"{int((n_seeds > 1).sum())} (model, task, mixture, eval_lang) cells have several seeds "
                         f"(up to {int(n_seeds.max())}); the paper's analyses use their counts pooled (n and correct "
                         f"summed); the cluster intervals resample the seeds as runs.")
        out = pool_seeds(out, list(REQUIRED_COLUMNS))
    return sort_results(out[list(REQUIRED_COLUMNS)]), cells, notes


def _check_mixture(r, where: str, known: set[str]) -> None:
    codes = list(languages_of(r.train_langs))
    if r.mixture == PRETRAINED:
        if codes:
            raise DataError(f"{where}: column 'train_langs': must be empty for mixture '{PRETRAINED}', "
                            f"got {r.train_langs!r}")
        if r.n_train_langs != 0:
            raise DataError(f"{where}: column 'n_train_langs': must be 0 for mixture '{PRETRAINED}', "
                            f"got {r.n_train_langs}")
        return
    if not codes or any(not c for c in codes):
        raise DataError(f"{where}: column 'train_langs': expected ISO codes joined by '+', got {r.train_langs!r}")
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise DataError(f"{where}: column 'train_langs': unknown language code(s) {', '.join(unknown)}")
    if len(set(codes)) != len(codes):
        raise DataError(f"{where}: column 'train_langs': a language is listed twice in {r.train_langs!r}")
    if r.n_train_langs != len(codes):
        raise DataError(f"{where}: column 'n_train_langs': {r.n_train_langs} but train_langs "
                        f"{r.train_langs!r} lists {len(codes)}")
    expected = label(codes)
    if r.mixture != expected:
        raise DataError(f"{where}: column 'mixture': {r.mixture!r} does not match train_langs {r.train_langs!r} "
                        f"(expected {expected!r}, or '{PRETRAINED}' with empty train_langs)")


def sort_results(df: pd.DataFrame, extra: list[str] | None = None) -> pd.DataFrame:
    """Canonical row order (so that the input's row order never changes a result)."""
    order = {lang.code: i for i, lang in enumerate(languages.all_languages())}
    return (df.assign(_lang=df["eval_lang"].map(order))
            .sort_values(["family", "size_b", "model", "task", "n_train_langs", "mixture", "_lang", *(extra or [])],
                         kind="mergesort")
            .drop(columns="_lang").reset_index(drop=True))


def validate_predictions(df: pd.DataFrame, results: pd.DataFrame, *,
                         source: str = "<predictions>") -> tuple[pd.DataFrame | None, list[str]]:
    """Check per-item predictions against the results table (per-seed cells, or rows without seeds).

    Returns (KEY + seed + item_id + correct) or None with a note when they cannot be paired unambiguously
    (an item scored twice for the same cell and seed, or seeds in one table only). Per-cell counts that
    disagree with the results table are an error: the two would describe different evaluations.
    """
    missing = [c for c in PREDICTION_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)} "
                        f"(required: {', '.join(PREDICTION_COLUMNS)})")
    p = pd.DataFrame({c: _as_str(df, c) for c in (*KEY, "item_id")})
    raw = df["correct"].reset_index(drop=True)
    truth = {"true": True, "1": True, "1.0": True, "false": False, "0": False, "0.0": False}
    parsed = raw.map(lambda v: truth.get(str(v).strip().lower()))
    if parsed.isna().any():
        i = int(parsed.isna().to_numpy().nonzero()[0][0])
        raise DataError(f"{source}: row {i + 1}: column 'correct': expected true/false or 0/1, got {raw.iloc[i]!r}")
    p["correct"] = parsed.astype(bool)
    p["seed"] = df["seed"].reset_index(drop=True).map(normalise_seed) if "seed" in df.columns else ""
    res = results if "seed" in results.columns else results.assign(seed="")
    unpaired = ["Per-item predictions score some items more than once for the same cell and seed; the paired "
                "tests and the item-clustered bootstrap are not computed."]
    if not (res["seed"] != "").any():
        if p.duplicated([*KEY, "item_id"]).any():
            return None, unpaired
        p["seed"] = ""
    elif not (p["seed"] != "").any():
        if res.groupby(list(KEY))["seed"].nunique().max() > 1:
            return None, ["Per-item predictions have no seed column but the results have several seeds; the paired "
                          "tests and the item-clustered bootstrap are not computed."]
        p = p.drop(columns="seed").merge(res[[*KEY, "seed"]], on=list(KEY), how="left").fillna({"seed": ""})
    if p.duplicated([*KEY, "seed", "item_id"]).any():
        return None, unpaired
    key = [*KEY, "seed"]
    counts = p.groupby(key).agg(n=("correct", "size"), correct=("correct", "sum")).reset_index()
    merged = counts.merge(res[[*key, "n", "correct"]], on=key, how="left", suffixes=("_pred", ""))
    orphan = merged["n"].isna()
    if orphan.any():
        r = merged[orphan].iloc[0]
        raise DataError(f"{source}: predictions for a cell absent from the results table "
                        f"({', '.join(f'{k}={r[k]}' for k in key if r[k] != '')})")
    bad = (merged["n_pred"] != merged["n"]) | (merged["correct_pred"] != merged["correct"])
    if bad.any():
        r = merged[bad].iloc[0]
        raise DataError(f"{source}: predictions disagree with the results table for "
                        f"{', '.join(f'{k}={r[k]}' for k in key if r[k] != '')}: {int(r['correct_pred'])}/"
                        f"{int(r['n_pred'])} items correct vs correct={int(r['correct'])}, n={int(r['n'])}")
    missing_cells = len(res) - len(counts)
    notes = [] if missing_cells == 0 else [
        f"Per-item predictions cover {len(counts)} of {len(res)} evaluation cells; the paired tests and the "
        f"item-clustered bootstrap need all of them and use the counts-only bound instead."]
    return p[[*KEY, "seed", "item_id", "correct"]], notes

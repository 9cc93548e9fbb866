"""What a translation run writes: one folder per language in API-Bank's own layout (what the
`mapicall-bank` loader reads), the rejects with their reasons, and a manifest.

    DIR/manifest.json                        engine (host, model), prompt version + sha256, source
                                             checksums, per-language counts and reject reasons, date
    DIR/en/...                               the English source, copied unchanged (+ apis.json, test-data/)
    DIR/<lang>/level-1-given-desc/<file>.jsonl   translated dialogues (rejected files left out)
    DIR/<lang>/training-data/<file>.json     translated rows, each with "id": "<file stem>#<row index>"
                                             (the implicit id of the English row), rejects left out
    DIR/<lang>/rejects.jsonl                 {source_file, index, turn, reason, detail, attempts}
    DIR/.cache/translate/                    the request cache (never holds the API key)
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .. import __version__, store
from . import validate as V
from .config import TranslateConfig
from .prompt import Prompt
from .units import ENGLISH_EXTRAS, SourceFile, rebuild_dialogue, rebuild_training_row


@dataclass(frozen=True)
class Plan:
    """What a run translates: the source files, into which languages, with which prompt."""

    source: str
    """`api-bank` or `jsonl`."""
    base: Path
    sources: list[SourceFile]
    targets: list[str]
    prompt: Prompt
    limit: int | None = None


@dataclass
class Results:
    """What a run got, by (language, unit label)."""

    results: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """Cache entries (accepted or rejected)."""
    errors: dict[tuple[str, str], str] = field(default_factory=dict)
    """Units that failed on engine errors (not cached: a rerun retries them)."""
    cached: Counter = field(default_factory=Counter)
    """Units per language served from the cache."""
    requests: Counter = field(default_factory=Counter)
    """The engine's request and retry counts."""
    served: set[str] = field(default_factory=set)
    """Model names the endpoint answered with."""


def write_outputs(cfg: TranslateConfig, plan: Plan, res: Results, out_dir: Path) -> dict[str, Any]:
    """Every language's folder, rejects and the manifest; -> the manifest."""
    prompt, source, base, sources, targets, limit = plan.prompt, plan.source, plan.base, plan.sources, plan.targets, plan.limit
    results, errors, cached, requests, served = res.results, res.errors, res.cached, res.requests, res.served
    out_dir.mkdir(parents=True, exist_ok=True)
    per_lang: dict[str, Any] = {}
    for lang in targets:
        stats = Counter()
        reasons = Counter()
        rejects = []
        for sf in sources:
            dest = out_dir / lang / sf.rel
            entries = {u.index: results.get((lang, u.label)) for u in sf.units}
            for unit in sf.units:
                entry = entries[unit.index]
                stats["units"] += 1
                if (lang, unit.label) in errors:
                    stats["engine_errors"] += 1
                    continue
                stats[entry["status"]] += 1
                stats["prompt_tokens"] += entry["usage"]["prompt_tokens"]
                stats["completion_tokens"] += entry["usage"]["completion_tokens"]
                if entry["status"] == "accepted":
                    stats["retried"] += len(entry["attempts"]) > 1
                else:
                    reasons[entry["reason"]] += 1
                    rejects.append({"source_file": sf.rel, "index": unit.index, "turn": V.turn_of(entry["detail"] or ""),
                                    "reason": entry["reason"], "detail": entry["detail"],
                                    "attempts": len(entry["attempts"])})
            ok = {i: e["translation"] for i, e in entries.items() if e is not None and e["status"] == "accepted"}
            if sf.fmt == "dialogue":
                if not sf.units:  # nothing to translate (an empty file): copy it
                    _copy(sf.path, dest)
                elif None in ok:
                    store.write_jsonl(dest, rebuild_dialogue(sf.records, ok[None]))
                elif dest.exists():
                    dest.unlink()  # rejected now: drop a translation left by an earlier run
            else:
                rows = []
                has_unit = {u.index for u in sf.units}
                for i in sf.selected:
                    row_id = f"{Path(sf.rel).stem}#{i}"
                    if i not in has_unit:
                        rows.append(_with_id(sf.records[i], row_id))
                    elif i in ok:
                        rows.append(_rebuild_row(sf, i, ok[i], lang, cfg.source_lang, row_id))
                if sf.fmt == "training":
                    store.write_json(dest, rows)
                else:
                    store.write_jsonl(dest, rows)
        store.write_jsonl(out_dir / lang / "rejects.jsonl", rejects)
        finished = stats["accepted"] + stats["rejected"]
        per_lang[lang] = {
            "units": stats["units"], "translated": stats["accepted"], "rejected": stats["rejected"],
            "reject_rate": round(stats["rejected"] / finished, 4) if finished else None,
            "rejects_by_reason": dict(sorted(reasons.items())), "engine_errors": stats["engine_errors"],
            "accepted_after_retry": stats["retried"], "cached_before_this_run": cached[lang],
            "tokens": {"prompt": stats["prompt_tokens"], "completion": stats["completion_tokens"]},
        }
    _write_source_copy(source, base, sources, out_dir / cfg.source_lang, cfg.source_lang)

    reasons_all = Counter()
    for v in per_lang.values():
        reasons_all.update(v["rejects_by_reason"])
    manifest = {
        "format": "mapicall-bank" if source == "api-bank" else "translated-jsonl",
        "created": store.now(), "linguamix_version": __version__, "git": store.git_commit(),
        "complete": not errors,
        "source": {"kind": source, "dir": str(base), "lang": cfg.source_lang, "limit": limit,
                   "copied_to": cfg.source_lang,
                   "files": [{"path": sf.rel, "sha256": sf.sha256, "units": len(sf.units),
                              "rows_selected": len(sf.selected) if sf.fmt != "dialogue" else None} for sf in sources]},
        "engine": {"base_url_host": _host(cfg.engine.base_url), "model": cfg.engine.model,
                   "served_models": sorted(served), "api_key_env": cfg.engine.api_key_env,
                   "temperature": cfg.engine.temperature, "max_tokens": cfg.engine.max_tokens,
                   "structured_output": cfg.engine.structured_output, "extra_body": cfg.engine.extra_body},
        "prompt": {"version": prompt.version, "sha256": prompt.sha256},
        "validation": cfg.validation.model_dump(),
        "languages": per_lang,
        "totals": {"units": sum(v["units"] for v in per_lang.values()),
                   "translated": sum(v["translated"] for v in per_lang.values()),
                   "rejected": sum(v["rejected"] for v in per_lang.values()),
                   "engine_errors": sum(v["engine_errors"] for v in per_lang.values()),
                   "rejects_by_reason": dict(sorted(reasons_all.items()))},
        "this_run": {"requests": requests.get("requests", 0),
                     "http_retries": {k.split(":", 1)[1]: v for k, v in sorted(requests.items()) if k.startswith("retry:")}},
    }
    store.write_json(out_dir / "manifest.json", manifest)
    return manifest


def _rebuild_row(sf: SourceFile, i: int, view: dict[str, Any], lang: str, source_lang: str, row_id: str) -> dict:
    row = sf.records[i]
    if sf.fmt == "training":
        return rebuild_training_row(row, sf.skeletons[i], view, row_id)
    new = {**row, **{k: view[k] for k in view}}
    if new.get("lang") == source_lang:
        new["lang"] = lang
    return _with_id(new, row_id)


def _with_id(row: dict[str, Any], row_id: str) -> dict[str, Any]:
    """Rows get the English row's id so a loader can pair them once rejects are left out."""
    if "id" in row or "lang-id" in row:
        return row
    return {**row, "id": row_id}


def _write_source_copy(source: str, base: Path, sources: list[SourceFile], dest: Path, source_lang: str) -> None:
    """DIR/<source lang>: the source, unchanged, so DIR is a complete parallel set (for the selected files)."""
    for sf in sources:
        target = dest / sf.rel
        if sf.fmt == "dialogue" or (sf.fmt == "training" and len(sf.selected) == len(sf.records)):
            _copy(sf.path, target)
        elif sf.fmt == "training":
            store.write_json(target, [sf.records[i] for i in sf.selected])
        else:
            store.write_jsonl(target, [_with_id(sf.records[i], f"{Path(sf.rel).stem}#{i}") for i in sf.selected])
    if source == "api-bank":
        for p in _glob_optional(base, ENGLISH_EXTRAS):
            _copy(p, dest / p.relative_to(base))


def _glob_optional(base: Path, patterns) -> list[Path]:
    return [p for pattern in patterns for p in sorted(base.glob(pattern)) if p.is_file()]


def _copy(src: Path, dest: Path) -> None:
    with store.atomic_path(dest, "wb") as f:
        f.write(src.read_bytes())


def _host(url: str) -> str:
    """Host[:port] only: a base URL may carry credentials or tokens in its user info or query."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def summary_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for lang, v in manifest["languages"].items():
        rows.append({"lang": lang, "units": v["units"], "translated": v["translated"], "rejected": v["rejected"],
                     "reject_rate": v["reject_rate"], "engine_errors": v["engine_errors"],
                     "top_reason": max(v["rejects_by_reason"], key=v["rejects_by_reason"].get)
                     if v["rejects_by_reason"] else "",
                     "tokens": v["tokens"]["prompt"] + v["tokens"]["completion"]})
    return rows



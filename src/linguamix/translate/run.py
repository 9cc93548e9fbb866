"""`linguamix translate`: translate API-Bank (or any JSONL dataset) into other languages with an LLM.

    linguamix translate CONFIG --source api-bank --langs es,ja,bn --out DIR [--source-dir PATH]

The engine is any OpenAI-compatible chat endpoint (`vllm serve`, a hosted provider), configured by base
URL, model and the *name* of an environment variable holding the API key. Each translation unit — one
whole dialogue file, one training row, or one JSONL row — is sent as a JSON *view* (`units`) with a
versioned prompt (`prompt`); the answer must be the same JSON with the text translated. Every answer is
validated (`validate`); a failure is fed back to the model (up to `max_attempts` tries), then the unit
lands in `<lang>/rejects.jsonl` with its named reason.

Nothing is paid twice: each finished unit (accepted or rejected) is cached (`cache`), written atomically
when it finishes; a crash or Ctrl-C loses only the requests in flight and a rerun resumes from the cache.
Output files and the manifest are written atomically at the end of a run (`outputs`).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import languages, store
from ..errors import ConfigError, DataError, LinguamixError
from . import validate as V
from .cache import CACHE_FORMAT, Cache, cache_key
from .config import TranslateConfig
from .engine import Engine, EngineError
from .outputs import Plan, Results, write_outputs
from .prompt import DEFAULT_PROMPT, PROMPTS, Prompt
from .units import DEFAULT_INCLUDE, Unit, load_api_bank_sources, load_jsonl_sources, response_schema

log = logging.getLogger(__name__)
SOURCES = ("api-bank", "jsonl")


def translate(cfg: TranslateConfig, *, source: str, langs: list[str], out_dir: str | Path,
              source_dir: str | Path | None = None, files: list[str] | None = None, fields: list[str] | None = None,
              limit: int | None = None, progress: bool = True, engine: Engine | None = None) -> dict[str, Any]:
    """Translate the source into every language of `langs`, write DIR, and return the manifest.

    Raises EngineFatal when the endpoint refuses every request, and LinguamixError (after writing
    everything else) when some units failed on engine errors — rerunning resumes from the cache."""
    with cfg.language_scope():
        return _translate(cfg, source=source, langs=langs, out_dir=out_dir, source_dir=source_dir, files=files,
                          fields=fields, limit=limit, progress=progress, engine=engine)


def _translate(cfg: TranslateConfig, *, source, langs, out_dir, source_dir, files, fields, limit, progress,
               engine) -> dict[str, Any]:
    plan = _plan(cfg, source=source, langs=langs, source_dir=source_dir, files=files, fields=fields, limit=limit)
    out_dir = Path(out_dir)
    cache = Cache(cfg.path(cfg.cache_dir) if cfg.cache_dir else out_dir / ".cache" / "translate")
    res = Results()
    jobs = _jobs(cfg, plan, cache, res)
    if jobs:
        engine = engine or Engine.from_config(cfg.engine)
        total = sum(len(sf.units) for sf in plan.sources) * len(plan.targets)
        bar = None
        if progress:
            from tqdm import tqdm

            todo = sum(len(job.labels) for job in jobs)
            bar = tqdm(total=total, initial=total - todo, unit="ex", desc="translate", dynamic_ncols=True)
        try:
            asyncio.run(_run_jobs(jobs, engine, plan.prompt, cache, cfg, res, bar))
        finally:
            if bar is not None:
                bar.close()
        res.requests.update(engine.stats)
        res.served = engine.served_models
    manifest = write_outputs(cfg, plan, res, out_dir)
    if res.errors:
        raise LinguamixError(f"{len(res.errors)} example(s) failed on engine errors (first: "
                             f"{next(iter(res.errors.values()))}); everything else is written — rerun the same "
                             f"command to retry them")
    return manifest


def _plan(cfg: TranslateConfig, *, source: str, langs: list[str], source_dir, files, fields, limit) -> Plan:
    """What to translate into which languages with which prompt; bad arguments fail before any request."""
    if source not in SOURCES:
        raise ConfigError(f"--source must be one of {', '.join(SOURCES)}, got {source!r}")
    for code in langs:
        languages.get(code)
    targets = [code for code in dict.fromkeys(langs) if code != cfg.source_lang]
    prompt = PROMPTS[cfg.prompt_version or DEFAULT_PROMPT[source]]
    src = Path(source_dir) if source_dir is not None else cfg.path(cfg.source_dir) if cfg.source_dir else None
    if src is None:
        raise ConfigError("no source: pass --source-dir (or set source_dir in the config)")
    if not src.exists():
        raise DataError(f"{src}: source not found")
    if source == "api-bank":
        if not src.is_dir():
            raise DataError(f"{src}: API-Bank mode needs the API-Bank folder (with level-1-given-desc/)")
        base, sources = src, load_api_bank_sources(src, list(files or cfg.include or DEFAULT_INCLUDE), limit)
    else:
        fields = list(fields or cfg.fields or [])
        if not fields:
            raise ConfigError("generic JSONL mode needs the fields to translate (--fields a,b or 'fields' in the config)")
        base, sources = load_jsonl_sources(src, list(files or cfg.include or ["*.jsonl"]), fields, limit)
    return Plan(source=source, base=base, sources=sources, targets=targets, prompt=prompt, limit=limit)


def _jobs(cfg: TranslateConfig, plan: Plan, cache: Cache, res: Results) -> list["_Job"]:
    """The units still to translate (identical ones once); cached units go straight into `res`."""
    pending: dict[str, _Job] = {}
    for lang in plan.targets:
        for sf in plan.sources:
            for unit in sf.units:
                key = cache_key(cfg.engine.model, plan.prompt, lang, unit)
                entry = cache.get(key)
                # a rejection is final only for as many tries as this run allows
                if entry and (entry["status"] == "accepted" or len(entry["attempts"]) >= cfg.validation.max_attempts):
                    res.results[(lang, unit.label)] = entry
                    res.cached[lang] += 1
                elif key in pending:
                    pending[key].labels.append(unit.label)
                else:
                    pending[key] = _Job(lang, unit, key, [unit.label])
    return list(pending.values())


@dataclass
class _Job:
    lang: str
    unit: Unit
    key: str
    labels: list[str]
    """Every unit with this exact content (duplicates are translated once)."""


async def _run_jobs(jobs: list[_Job], engine: Engine, prompt: Prompt, cache: Cache, cfg: TranslateConfig,
                    res: Results, bar) -> None:
    queue: asyncio.Queue = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    tokens = Counter()
    done = Counter()

    async def worker() -> None:
        while True:
            try:
                job = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                entry = await translate_unit(engine, prompt, job.unit, lang=job.lang, source_lang=cfg.source_lang,
                                             settings=cfg.validation.settings(job.lang, cfg.source_lang),
                                             max_attempts=cfg.validation.max_attempts)
            except EngineError as e:
                res.errors.update({(job.lang, label): str(e) for label in job.labels})
                log.warning("%s [%s]: %s", job.unit.label, job.lang, e)
                done["error"] += len(job.labels)
            else:
                cache.put(job.key, entry)
                res.results.update({(job.lang, label): entry for label in job.labels})
                tokens.update(entry["usage"])
                done[entry["status"]] += len(job.labels)
                if entry["status"] == "rejected":
                    log.info("%s [%s] rejected: %s: %s", job.unit.label, job.lang, entry["reason"], entry["detail"])
            if bar is not None:
                finished = done["accepted"] + done["rejected"]
                bar.set_postfix(tokens=tokens["prompt_tokens"] + tokens["completion_tokens"],
                                rejects=f"{done['rejected'] / finished:.0%}" if finished else "-",
                                errors=done["error"], refresh=False)
                bar.update(len(job.labels))

    async with engine:
        tasks = [asyncio.create_task(worker()) for _ in range(min(cfg.engine.max_concurrency, max(len(jobs), 1)))]
        try:
            done_tasks, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done_tasks:
                if task.exception() is not None:  # EngineFatal (or a bug): stop the other workers too
                    raise task.exception()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def translate_unit(engine: Engine, prompt: Prompt, unit: Unit, *, lang: str, source_lang: str,
                         settings: V.Settings, max_attempts: int) -> dict[str, Any]:
    """Translate and validate one unit, feeding each validation error back; -> the cache entry."""
    messages = prompt.messages(unit, lang=lang, source_lang=source_lang)
    schema = response_schema(unit) if engine.cfg.structured_output in ("json_schema", "vllm") else None
    attempts: list[dict[str, Any]] = []
    verdict: Any = None
    parsed: Any = None
    for _ in range(max_attempts):
        reply = await engine.chat(messages, schema)
        parsed = V.parse_response(reply.content)
        if reply.finish_reason == "length" and isinstance(parsed, tuple):
            parsed = V.fail("invalid_json", f"the answer was cut off at max_tokens ({engine.cfg.max_tokens})")
        verdict = V.validate(unit.view, parsed, lang=lang, kind=unit.kind, settings=settings)
        attempts.append({"content": reply.content, "usage": reply.usage, "finish_reason": reply.finish_reason,
                         "model": reply.model, "verdict": "ok" if verdict is True else verdict[1],
                         "detail": None if verdict is True else verdict[2]})
        if verdict is True:
            break
        messages = messages + [{"role": "assistant", "content": reply.content or ""},
                               prompt.retry_message(verdict[1], verdict[2])]
    ok = verdict is True
    return {"cache_format": CACHE_FORMAT, "status": "accepted" if ok else "rejected",
            "translation": parsed if ok else None,
            "reason": None if ok else verdict[1], "detail": None if ok else verdict[2],
            "lang": lang, "model": engine.cfg.model, "prompt_version": prompt.version,
            "prompt_sha256": prompt.sha256, "source_sha256": _sha(unit.view), "unit": unit.label,
            "attempts": attempts, "max_attempts": max_attempts,
            "usage": {k: sum(a["usage"].get(k, 0) for a in attempts) for k in ("prompt_tokens", "completion_tokens")},
            "created": store.now()}


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

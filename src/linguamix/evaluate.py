"""Evaluate a model (a base checkpoint, or a trained run's selected checkpoint) on a task's test set in
every evaluation language, storing one scored row per example and a per-language summary.

    linguamix evaluate --model ID_OR_PATH_OR_RUN_DIR --task math|api --langs en,es,ja,bn,sw,te --out DIR

Prompts are rendered by the same task code as training (`data.build.load_test` -> `tasks.<task>.render`);
generation is greedy (HF or vLLM backend, `linguamix.generate`); each completion is scored by the task's
scorer after the same stop-string cut. Output, in the run-store layout (`store.RunDir`):

    DIR/run.json                       what was evaluated (spec, model, task config, languages, backend)
    DIR/status.json                    running / done / failed (with the reason)
    DIR/eval/test/predictions.jsonl    item_id, lang, prompt_hash, completion, prediction, correct, strict,
                                       lenient, gold, detail (records.Prediction)
    DIR/eval/test/summary.json         per language: n, correct, accuracy, ci_low, ci_high (95 % Wilson)
                                       (+ strict/lenient accuracy or API error counts), overall, throughput
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from . import languages, tasks
from .errors import ConfigError, LinguamixError
from .proportions import wilson_interval
from .records import Example, Prediction
from .store import RunDir


def prompt_hash(prompt: str) -> str:
    """Identifies the exact prompt text (16 hex digits of its SHA-256): equal hashes, equal prompts."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / "run.json").is_file()


def resolve_model_dir(model: str) -> str:
    """A trained run directory stands for its selected checkpoint (`<run>/model`); anything else is itself."""
    p = Path(model)
    if is_run_dir(p):
        model_dir = RunDir(p).model_dir
        if not (model_dir / "config.json").exists():
            raise ConfigError(f"{p}: a run directory without a selected model ({model_dir} is missing: "
                              "train it first)")
        return str(model_dir)
    return model


def parse_langs(text: str, option: str = "--langs") -> list[str]:
    """`en,es, ja` -> ['en', 'es', 'ja'] (order kept, repeats dropped); an unknown code is a ConfigError."""
    from . import languages

    codes = list(dict.fromkeys(c.strip() for c in text.split(",") if c.strip()))
    if not codes:
        raise ConfigError(f"{option}: no language codes given")
    for code in codes:
        if not languages.is_known(code):
            raise ConfigError(f"{option}: unknown language code '{code}' (known: {', '.join(languages.codes())})")
    return codes


def make_generator(backend: str, model_path: str, tok, *, batch_size: int = 32, dtype: str = "auto",
                   max_model_len: int | None = None, trust_remote_code: bool = False, revision: str | None = None):
    """An `HFGenerator` (model loaded here) or a `VLLMGenerator` for `model_path`.

    dtype `auto`: bf16 on GPU, fp32 on CPU (vLLM's CPU backend included), so both backends compute alike."""
    import torch

    cuda = torch.cuda.is_available()
    if dtype not in ("auto", "bf16", "fp32"):
        raise ConfigError(f"dtype must be auto, bf16 or fp32, got '{dtype}'")
    use_bf16 = dtype == "bf16" or (dtype == "auto" and cuda)
    if backend == "vllm":
        from .generate import VLLMGenerator

        return VLLMGenerator(model_path, tok, dtype="bfloat16" if use_bf16 else "float32",
                             max_model_len=max_model_len, trust_remote_code=trust_remote_code,
                             **({"revision": revision} if revision else {}))
    if backend != "hf":
        raise ConfigError(f"unknown generation backend '{backend}' (known: hf, vllm)")
    from .generate import HFGenerator
    from .models import load_model

    from safetensors import SafetensorError

    try:
        model = load_model(model_path, dtype=torch.bfloat16 if use_bf16 else torch.float32,
                           attn_implementation="sdpa", trust_remote_code=trust_remote_code, revision=revision)
    except (OSError, ValueError, SafetensorError) as e:  # a missing or corrupt checkpoint is bad input
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise LinguamixError(f"cannot load the model weights of '{model_path}': {type(e).__name__}: {first}") from None
    model.to("cuda" if cuda else "cpu")
    # on CPU, a budget of batch x (prompt + new) tokens keeps the KV cache of long API prompts in memory
    return HFGenerator(model, tok, batch_size=batch_size, max_batch_tokens=None if cuda else 64 * 1024)


def score_examples(task: str, examples: Sequence[Example], completions: Sequence[str]) -> list[Prediction]:
    """One `Prediction` per example, scored by the task's scorer (which applies the task's stop cut)."""
    if len(examples) != len(completions):
        raise ValueError(f"{len(examples)} examples but {len(completions)} completions")
    score = tasks.get(task).score
    out = []
    for ex, text in zip(examples, completions):
        s = score(text, ex.gold, ex.lang)
        out.append(Prediction(item_id=ex.item_id, lang=ex.lang, prompt_hash=prompt_hash(ex.prompt), completion=text,
                              prediction=s.prediction, correct=bool(s.correct), strict=bool(s.strict),
                              lenient=bool(s.lenient), gold=ex.gold, detail=s.detail))
    return out


def evaluate(generator, task: str, examples: dict[str, list[Example]], rd: RunDir, *, split: str = "test",
             max_new_tokens: int, progress: bool = True, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Generate, score, and store predictions + summary under `rd`'s `eval/<split>/`. -> the summary.

    Every language's examples go through the generator in one call (length-sorted batches across
    languages). Nothing is written until every example is scored; the summary is written last."""
    flat = [ex for lang in examples for ex in examples[lang]]
    if not flat:
        raise ConfigError(f"{task} {split}: no examples to evaluate")
    gens = generator.generate([ex.prompt for ex in flat], max_new_tokens=max_new_tokens,
                              stop=tasks.get(task).stop, progress=f"{task} {split}" if progress else False)
    stats = generator.last_stats
    preds = score_examples(task, flat, [g.text for g in gens])
    rd.write_predictions(split, (p.to_dict() for p in preds))
    finish = {r: sum(g.finish_reason == r for g in gens) for r in ("eos", "stop", "length")}
    summary = {
        "task": task, "split": split, "backend": generator.name, "n_items": len(preds),
        "languages": summarize(preds, group="lang", task=task), "overall": summarize(preds, group=None, task=task)[0],
        "generation": {**stats.to_dict(), "max_new_tokens": max_new_tokens, "finish": finish},
        **(extra or {})}
    rd.write_summary(split, summary)
    return summary


# -- summaries and `linguamix score` ------------------------------------------------------------------
SCORE_FIELDS = ("id", "lang", "completion", "answer")
"""A row of a prediction file `linguamix score` reads."""


def summarize(rows: Iterable[Any], group: str | None = "lang", *, task: str | None = None) -> list[dict[str, Any]]:
    """Per-group accuracy of scored rows (dicts, or records with `to_dict`), groups in first-seen order.

    Each row needs `correct` and the `group` field. Every output row has `group`'s value, `n`, `correct`,
    `accuracy`, `ci_low`, `ci_high` (95 % Wilson), `strict_correct`, `strict_accuracy`, `lenient_accuracy`,
    and the task's own counts (`Task.summary_counts`, e.g. API parse failures). `group=None`: one row.
    """
    rows = [r if isinstance(r, Mapping) else r.to_dict() for r in rows]
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r.get(group) if group else None, []).append(r)
    out = []
    for key, members in groups.items():
        n = len(members)
        correct = sum(bool(r.get("correct")) for r in members)
        strict = sum(bool(r.get("strict")) for r in members)
        lenient = sum(bool(r["lenient"] if r.get("lenient") is not None else r.get("correct")) for r in members)
        lo, hi = wilson_interval(correct, n)
        row: dict[str, Any] = {group: key} if group else {}
        row.update(n=n, correct=correct, accuracy=correct / n, ci_low=lo, ci_high=hi, strict_correct=strict,
                   strict_accuracy=strict / n, lenient_accuracy=lenient / n)
        if task is not None:
            row.update(tasks.get(task).summary_counts([r.get("detail") or {} for r in members]))
        out.append(row)
    return out


def score_row(row: Any, task: str, *, mode: str = "default") -> dict[str, Any]:
    """Validate and score one prediction-file row `{"id", "lang", "completion", "answer"}`.

    Returns the row with `prediction`, `correct`, `strict`, `lenient` and `detail` added (`linguamix score`'s
    output format). Raises ValueError naming the offending field; the caller adds file and line.
    """
    t = tasks.get(task)
    if not isinstance(row, Mapping):
        raise ValueError(f"expected a JSON object with fields {', '.join(SCORE_FIELDS)}")
    missing = [k for k in SCORE_FIELDS if k not in row]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(repr(k) for k in missing)}")
    if not isinstance(row["completion"], str):
        raise ValueError(f"field 'completion' must be a string, got {type(row['completion']).__name__}")
    lang = row["lang"]
    if not languages.is_known(lang):
        raise ValueError(f"field 'lang': unknown language code {lang!r} (known: {', '.join(languages.codes())})")
    try:  # a bad gold is a data error of this row, not a wrong prediction
        t.parse_gold(row["answer"])
    except ValueError as e:
        raise ValueError(f"field 'answer': {e}") from None
    s = t.score(row["completion"], row["answer"], lang, mode=mode)
    return {**row, "prediction": s.prediction, "correct": s.correct, "strict": s.strict, "lenient": s.lenient,
            "detail": s.detail}


# -- `linguamix evaluate`: what to evaluate, with which settings -------------------------------------
@dataclass(frozen=True)
class EvalRequest:
    """Everything `linguamix evaluate` resolved from its arguments, before anything is written."""

    cfg: Any
    """StudyConfig giving the task (test source, max_new_tokens) and evaluation settings."""
    model: Any
    """ModelConfig of the evaluated model (name, family, size; trust_remote_code)."""
    model_dir: str
    """What is loaded: the base checkpoint (hub id or path), or the run's selected `model/`."""
    mixture: str
    """The run's training mixture, or `pretrained` for a base model."""
    seed: int
    run: str | None
    """The trained run directory, if one was given."""


def resolve_request(model: str, *, config: str | None = None) -> EvalRequest:
    """Work out what `--model` (and `--config`) mean.

    - a trained run directory (`run.json` + `model/`): its selected checkpoint, its spec (model name,
      mixture, seed) and model config; task and evaluation settings from `--config`, else the run's own;
    - anything else is a base model (hub id or path): with `--config`, the config's model of that name,
      id or path if there is one (else described from its checkpoint), and the config's task settings;
      without, the default task sources.
    """
    from .config import ModelConfig, load_config, parse_config
    from .mixtures import PRETRAINED
    from .models import describe_model
    from .store import read_json

    cfg = load_config(config) if config else None
    if is_run_dir(model):
        model_dir = resolve_model_dir(model)
        manifest = read_json(Path(model) / "run.json")
        try:
            spec, run_cfg = manifest["spec"], manifest["config"]
            model_cfg = ModelConfig.model_validate(run_cfg["model"])
            own = {"models": [run_cfg["model"]], "tasks": {spec["task"]: run_cfg["task"]}}
            if "eval" in run_cfg:
                own["eval"] = run_cfg["eval"]
            if cfg is None:
                cfg = parse_config(own, source=f"{model}/run.json")
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"{model}/run.json: not a linguamix run manifest ({type(e).__name__}: {e})") from None
        return EvalRequest(cfg, model_cfg, model_dir, spec["mixture"], int(spec.get("seed", cfg.seeds[0])), str(model))

    if cfg is not None:
        local = Path(model).expanduser().resolve()
        for m in cfg.models:
            if model in (m.short_name, m.id) or cfg.resolve_path(m.id).resolve() == local:
                return EvalRequest(cfg, m, m.path(cfg.base_dir), PRETRAINED, cfg.seeds[0], None)
    family, size_b = describe_model(model)
    entry = {"id": model, "family": family, "size_b": size_b}
    if cfg is None:
        cfg = parse_config({"models": [entry]}, source="<command line>")
        return EvalRequest(cfg, cfg.models[0], model, PRETRAINED, cfg.seeds[0], None)
    return EvalRequest(cfg, ModelConfig.model_validate(entry), model, PRETRAINED, cfg.seeds[0], None)


def with_test_source(cfg, task: str, source: str | None, fmt: str | None):
    """`cfg` with the task's test data replaced by `--test-source/--test-format` (options kept only
    when the format stays the same)."""
    from .config import SourceConfig

    if not source and not fmt:
        return cfg
    tc = cfg.task(task)
    if source and Path(source).expanduser().exists():  # a local path is relative to the working directory
        source = str(Path(source).expanduser().resolve())
    new_fmt = fmt or ("auto" if source else tc.test.format)
    same = new_fmt == tc.test.format
    test = SourceConfig(source=source or tc.test.source, format=new_fmt, options=tc.test.options if same else {})
    return cfg.model_copy(update={"tasks": {**cfg.tasks, task: tc.model_copy(update={"test": test})}})


def evaluate_request(req: EvalRequest, task: str, out: str | Path, *, langs: list[str] | None = None,
                     limit: int | None = None, dtype: str = "auto", progress: bool = True,
                     allow_config_change: bool = False) -> tuple[RunDir, bool]:
    """`linguamix evaluate`: the request's model on the task's test set in `langs` (default: the config's
    evaluation languages), into the run directory `out`. Inputs are checked before anything is written;
    a failure leaves status.json = failed with the reason. -> (run dir, whether it was complete already)."""
    from .data.build import load_test
    from .data.tokenize import load_tokenizer
    from .records import RunSpec

    cfg = req.cfg
    tc = cfg.task(task)
    langs = langs or list(cfg.eval.languages)
    if req.run and Path(out).resolve() == Path(req.run).resolve():
        raise ConfigError(f"--out {out}: is the trained run itself; evaluate into another directory")
    test = load_test(cfg, task, langs)
    if limit:
        test = {lang: exs[:limit] for lang, exs in test.items()}
    tok = load_tokenizer(req.model_dir, trust_remote_code=req.model.trust_remote_code, revision=req.model.revision)
    spec = RunSpec(model=req.model.short_name, task=task, mixture=req.mixture, seed=req.seed)
    rd = RunDir(out)
    previous = rd.manifest().get("config_hash")
    digest = rd.init(spec.to_dict(), {"model": req.model.model_dump(mode="json"), "task": tc.model_dump(mode="json"),
                                      "eval": {"languages": langs, "limit": limit, "max_new_tokens": tc.max_new_tokens,
                                               "backend": cfg.eval.backend, "dtype": dtype},
                                      "evaluated_model": req.model_dir, "trained_run": req.run},
                     allow_config_change=allow_config_change)
    if previous == digest and rd.is_complete():
        return rd, True
    with rd.attempt():
        gen = make_generator(cfg.eval.backend, req.model_dir, tok, batch_size=cfg.eval.batch_size, dtype=dtype,
                             trust_remote_code=req.model.trust_remote_code, revision=req.model.revision)
        evaluate(gen, task, test, rd, max_new_tokens=tc.max_new_tokens, progress=progress,
                 extra={"model": req.model_dir, "trained_run": req.run, "batch_size": cfg.eval.batch_size})
    rd.set_status("done")
    return rd, False

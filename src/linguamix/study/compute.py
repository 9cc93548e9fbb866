"""Training compute of every run of a study: tokens, FLOPs = 6 N T, GPU-hours (`linguamix plan`)."""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from ..config import StudyConfig
from ..hardware import REFERENCE_GPU, REFERENCE_PEAK_FLOPS
from ..mixtures import languages_of
from ..runs import expand
from ..store import Store, read_json


@dataclass(frozen=True)
class ComputePlan:
    runs: dict[str, dict[str, Any]]
    """Run name -> train_tokens, flops, gpu_hours_floor, gpu_hours_at_measured_mfu, measured_mfu,
    matmul_params, compute_source."""
    totals: dict[str, Any]
    notes: tuple[str, ...] = ()


def compute_plan(cfg: StudyConfig, store: Store | None = None, *, build_data: bool = False,
                 progress: bool = False, tokenizer: str | None = None) -> ComputePlan:
    """Training compute of every run: T = epochs x the tokens of the mixture's training split (from the
    data manifests), N = matmul parameters, FLOPs = 6 N T, GPU-hours at 100 % of an H100's 989 TFLOP/s and
    at the MFU that finished runs of the same model measured. Never downloads anything: a model whose
    tokenizer is not on this machine gets `null` compute and a note (unless `build_data`, which may, or
    `tokenizer`, a local tokenizer folder to count with instead). Data not built is counted from the
    sources when they are local, else estimated from the task's `train.sample` (`_counted_tokens`)."""
    store = store or Store(cfg.output_path)
    unavailable: dict[str, list[str]] = {}
    per_model: dict[str, dict[str, Any]] = {}
    for model in cfg.models:
        tok, n_params, n_source, why = _model_facts(cfg, model, allow_download=build_data)
        if tok is None and tokenizer:
            tok, why = _given_tokenizer(tokenizer), f"tokens counted with --tokenizer {tokenizer}; N from {n_source}"
        if why:
            unavailable.setdefault(why, []).append(model.short_name)
        per_model[model.short_name] = {"tok": tok, "n": n_params, "n_source": n_source,
                                       "mfu": _measured_mfu(cfg, model.short_name, store)}
    notes = [f"{', '.join(names)}: {why}" for why, names in unavailable.items()]
    # per (model, task): tokens of each training language's copy of the selected items
    lang_tokens: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    counts: dict[tuple[str, str], tuple[dict, str]] = {}  # (tokenizer, task) -> counted once for all sizes
    uncounted: dict[str, dict[str, list[str]]] = {}  # task -> how its tokens were counted -> models
    missing_data: set[tuple[str, str]] = set()
    for name, facts in per_model.items():
        for task in cfg.tasks:
            known: dict[str, dict[str, int]] = {}
            if facts["tok"] is not None:  # (data.build imports tokenizers: only when there is data to look at)
                from ..data.build import data_dir, ensure_mixture, training_languages

                langs = training_languages(cfg)
                d = data_dir(cfg, task, facts["tok"], store, langs)
                for m in cfg.mixture_list():
                    if build_data and not d.has_mixture(m.id):
                        ensure_mixture(cfg, task, m, facts["tok"], store, progress=progress)
                    if d.has_mixture(m.id):
                        split = read_json(d.manifest_file(m.id))["splits"]["train"]
                        per_lang = int(split["examples_per_language"])
                        for lang, stats in split["tokens"].items():
                            known[lang] = {"tokens": int(stats["total"]), "examples": per_lang, "how": "data manifest"}
                if not build_data and not all(lang in known for lang in langs):
                    counted, how = _counted_tokens(cfg, task, facts["tok"], store, counts, progress)
                    known = {**{lang: {**v, "how": how} for lang, v in counted.items()}, **known}
                    uncounted.setdefault(task, {}).setdefault(how, []).append(name)
            lang_tokens[(name, task)] = known
    runs: dict[str, dict[str, Any]] = {}
    tc = cfg.train
    for spec in expand(cfg):
        facts = per_model[spec.model]
        row: dict[str, Any] = {"train_tokens": None, "flops": None, "gpu_hours_floor": None,
                               "gpu_hours_at_measured_mfu": None, "measured_mfu": facts["mfu"],
                               "matmul_params": facts["n"], "compute_source": None}
        if spec.kind == "baseline":
            row["compute_source"] = "baseline: evaluation only"
        else:
            known = lang_tokens[(spec.model, spec.task)]
            mix = languages_of(spec.mixture)
            if facts["tok"] is None:
                row["compute_source"] = "unavailable: tokenizer not on this machine"
            elif not all(lang in known for lang in mix):
                row["compute_source"] = (f"unavailable: no token count for "
                                         f"{', '.join(lang for lang in mix if lang not in known)}")
                missing_data.add((spec.model, spec.task))
            else:
                per_epoch = sum(known[lang]["tokens"] for lang in mix)
                tokens = tc.epochs * per_epoch
                if tc.max_steps:  # a step-capped run sees a fraction of its epochs
                    n_ex = sum(known[lang]["examples"] for lang in mix)
                    steps = tc.epochs * -(-n_ex // min(tc.global_batch_size, n_ex))
                    tokens = round(tokens * min(1.0, tc.max_steps / steps))
                flops = 6.0 * facts["n"] * tokens
                hows = sorted({known[lang]["how"] for lang in mix})
                row.update(train_tokens=int(tokens), flops=flops,
                           gpu_hours_floor=flops / REFERENCE_PEAK_FLOPS / 3600,
                           compute_source=f"{' + '.join(hows)}; N from {facts['n_source']}",
                           estimate=any(h.startswith("estimate") for h in hows))
                if facts["mfu"]:
                    row["gpu_hours_at_measured_mfu"] = row["gpu_hours_floor"] / facts["mfu"]
        runs[spec.name] = row
    for task, hows in uncounted.items():
        notes += [f"{task} ({', '.join(names)}): tokens {how}" for how, names in hows.items()]
    if missing_data:
        notes.append(f"no token count for some runs of {len(missing_data)} model x task pair(s): build the data "
                     "(`linguamix data build` or `plan --build-data`), or give the task's source a local `sample`")
    return ComputePlan(runs, _totals(runs), tuple(notes))


def _given_tokenizer(path: str):
    """`plan --tokenizer PATH`: a local tokenizer folder, for models whose own is not on this machine."""
    from ..data.tokenize import load_tokenizer

    return load_tokenizer(path, local_files_only=True)


def _counted_tokens(cfg: StudyConfig, task: str, tok, store: Store, memo: dict, progress: bool):
    """({lang: {"tokens", "examples"}}, how) for a task whose data is not built: counted from local sources,
    estimated from `train.sample` otherwise (data.inspect.training_tokens); once per tokenizer and task."""
    from ..data.inspect import training_tokens
    from ..data.tokenize import tokenizer_fingerprint
    from ..errors import LinguamixError

    key = (tokenizer_fingerprint(tok), task)
    if key not in memo:
        try:
            memo[key] = training_tokens(cfg, task, tok, store, progress=progress)
        except LinguamixError as e:  # the data's problem is reported, the plan still lists the runs
            memo[key] = ({}, f"data not readable: {str(e)[:160]}")
    return memo[key]


def _totals(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    train = [r for r in runs.values() if not str(r["compute_source"]).startswith("baseline")]
    have = [r for r in train if r["flops"] is not None]
    measured = [r for r in have if r["gpu_hours_at_measured_mfu"] is not None]
    return {"training_runs": len(train), "runs_with_compute": len(have),
            "runs_estimated": sum(bool(r.get("estimate")) for r in have),
            "train_tokens": sum(r["train_tokens"] for r in have) if have else None,
            "flops": sum(r["flops"] for r in have) if have else None,
            "gpu_hours_floor": sum(r["gpu_hours_floor"] for r in have) if have else None,
            "runs_with_measured_mfu": len(measured),
            "gpu_hours_at_measured_mfu": sum(r["gpu_hours_at_measured_mfu"] for r in measured) if measured else None,
            "peak_flops_per_gpu": REFERENCE_PEAK_FLOPS, "reference_gpu": REFERENCE_GPU}


def _model_facts(cfg: StudyConfig, model, *, allow_download: bool) -> tuple[Any, int, str, str | None]:
    """(tokenizer or None, matmul params N, where N came from, why something is unavailable)."""
    ident = _local_model(cfg, model)
    if ident is None and not allow_download:
        return None, int(model.size_b * 1e9), "size_b", "tokenizer and config not on this machine (offline?): " \
            "compute unavailable; N falls back to size_b"
    from ..data.tokenize import load_tokenizer
    from ..errors import ConfigError
    from ..models import matmul_params_from_config

    ident = ident or model.id
    kw = {"trust_remote_code": model.trust_remote_code, "revision": model.revision,
          "local_files_only": not allow_download}
    why = None
    try:
        tok = load_tokenizer(ident, **kw)
    except ConfigError as e:
        tok, why = None, f"tokenizer not loadable ({str(e)[:120]})"
    try:
        n, source = matmul_params_from_config(ident, **kw), "model config"
    except ConfigError as e:
        n, source = int(model.size_b * 1e9), "size_b"
        why = why or f"config not loadable ({str(e)[:120]}); N from size_b"
    return tok, n, source, why


def _local_model(cfg: StudyConfig, model) -> str | None:
    """The model's local folder or cached hub snapshot, without touching the network; None if neither
    (a `build:` model counts once it has been built: `linguamix` builds it as its own step)."""
    path = cfg.resolve_path(model.id)
    if path.exists():
        return str(path)
    if model.build:
        return None
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(model.id, "config.json", revision=model.revision)
    except ValueError:  # not a valid repo id (a missing local path)
        return None
    return model.id if isinstance(hit, str) else None


def _measured_mfu(cfg: StudyConfig, model: str, store: Store) -> float | None:
    """Median MFU over the logged intervals of this model's finished training runs (None if none)."""
    values = []
    for spec in expand(cfg):
        if spec.model == model and spec.kind == "train":
            rd = store.run(spec)
            if rd.is_complete():
                values += [r["mfu"] for r in rd.read_log("train")
                           if isinstance(r.get("mfu"), (int, float)) and r["mfu"] > 0]
    return float(statistics.median(values)) if values else None

"""How long the rest of a study will take (`linguamix plan --gpus N`): a prediction from the throughput
that the study's finished runs measured, not a benchmark.

Per model and task (and per model over its tasks), from the finished runs' timing rows (linguamix.timing): training tokens per second of the
training steps, generated tokens per second of generation (validation and test), generated tokens per
validation language-epoch and per test evaluation, and the fixed costs per run (data, model load,
saving, the part of each validation pass that is not generation). A remaining run is predicted as

    train_tokens / train_tok_s  +  langs x epochs x val_tokens_per_lang_epoch / gen_tok_s
    + epochs x val_overhead  +  test_tokens / gen_tok_s  +  fixed

(a baseline: test + model load). A model with no finished run borrows another model's rates scaled by
the ratio of matmul parameters (both rates go as 1/N at a fixed MFU) and says so. The runs are spread
over N devices longest first (each run on one device, as measured); the wall-clock is the busiest
device's sum. The rates are those of the machine the runs were measured on.
"""
from __future__ import annotations

import heapq
import statistics
from typing import Any

from ..config import StudyConfig
from ..mixtures import languages_of
from ..runs import expand
from ..store import Store
from ..timing import format_seconds, throughput

FIXED = ("data", "model_load", "saving")


def measured_rates(cfg: StudyConfig, store: Store) -> dict[str, dict[str, Any]]:
    """{"model/task": rates, "model": rates over its tasks} measured by the finished runs (module doc)."""
    by_key: dict[str, list[tuple[Any, list[dict[str, Any]]]]] = {}
    for spec in expand(cfg):
        rd = store.run(spec)
        if not rd.is_complete():
            continue
        t = rd.read_timings()
        if t:
            for key in (f"{spec.model}/{spec.task}", spec.model):
                by_key.setdefault(key, []).append((spec, t))
    return {key: _rates(runs) for key, runs in by_key.items()}


def _rates(runs: list[tuple[Any, list[dict[str, Any]]]]) -> dict[str, Any]:
    rows = [r for _, t in runs for r in t]
    val_lang_epochs = val_tokens = passes = 0
    val_overhead = 0.0
    for spec, t in runs:
        n_langs = len(languages_of(spec.mixture)) if spec.kind == "train" else 0
        for r in t:
            if r["stage"] == "validation" and r.get("generated_tokens") is not None:
                val_lang_epochs += n_langs
                val_tokens += int(r["generated_tokens"])
                val_overhead += max(0.0, r["seconds"] - float(r.get("generation_s") or 0.0))
                passes += 1
    test_tokens = [int(r["generated_tokens"]) for r in rows
                   if r["stage"] == "test_eval" and r.get("generated_tokens") is not None]
    fixed = [sum(r["seconds"] for r in t if r["stage"] in FIXED) for _, t in runs]
    tp = throughput(rows)
    return {"runs": len(runs), "devices": sorted({r["device"] for r in rows if r["stage"] == "train_steps"
                                                   and r.get("device")}),
            "train_tokens_per_s": tp["train_tokens_per_s"], "generated_tokens_per_s": tp["generated_tokens_per_s"],
            "val_tokens_per_lang_epoch": val_tokens / val_lang_epochs if val_lang_epochs else None,
            "val_overhead_s": val_overhead / passes if passes else 0.0,
            "test_tokens": statistics.mean(test_tokens) if test_tokens else None,
            "fixed_s": statistics.mean(fixed), "source": "measured"}


def _rates_for(model: str, task: str, params: dict[str, int | None], measured: dict[str, dict[str, Any]]):
    """The model's own rates on this task (else over its tasks), else the nearest measured model's on this
    task scaled by matmul parameters, else None."""
    for key in (f"{model}/{task}", model):
        if key in measured and measured[key]["train_tokens_per_s"]:
            return measured[key]
    n = params.get(model)
    have = [(k.split("/")[0], r) for k, r in measured.items() if k.endswith(f"/{task}")
            and params.get(k.split("/")[0]) and r["train_tokens_per_s"]]
    if not n or not have:
        return measured.get(f"{model}/{task}") or measured.get(model)  # a baseline needs no training rate
    m, r = min(have, key=lambda mr: abs(params[mr[0]] - n))
    k = params[m] / n
    return {**r, "train_tokens_per_s": r["train_tokens_per_s"] * k,
            "generated_tokens_per_s": r["generated_tokens_per_s"] and r["generated_tokens_per_s"] * k,
            "source": f"scaled from {m} by matmul parameters"}


def predict_run(spec, train_tokens: int | None, epochs: int, rates: dict[str, Any] | None) -> float | None:
    """Predicted seconds of one run (None when its tokens or the rates it needs are unknown)."""
    if rates is None:
        return None
    gen = rates["generated_tokens_per_s"]
    test = rates["test_tokens"] / gen if gen and rates["test_tokens"] is not None else None
    if test is None:
        return None
    if spec.kind == "baseline":
        return test + rates["fixed_s"] / 2  # no training data, no saving: roughly half the fixed costs
    if train_tokens is None or not rates["train_tokens_per_s"]:
        return None
    val = 0.0
    if rates["val_tokens_per_lang_epoch"] is not None:
        val = (len(languages_of(spec.mixture)) * epochs * rates["val_tokens_per_lang_epoch"] / gen
               + epochs * rates["val_overhead_s"])
    return train_tokens / rates["train_tokens_per_s"] + val + test + rates["fixed_s"]


def forecast(cfg: StudyConfig, compute_runs: dict[str, dict[str, Any]], store: Store | None = None, *,
             gpus: int = 1) -> dict[str, Any]:
    """{"per_run": {name: predicted seconds or None}, "wallclock_s", "device_s", "remaining", "unpredicted",
    "rates", "gpus", "label"} for the runs not finished yet (`compute_runs`: ComputePlan.runs)."""
    store = store or Store(cfg.output_path)
    measured = measured_rates(cfg, store)
    params = {name: r.get("matmul_params") for name, r in _params_by_model(cfg, compute_runs).items()}
    select = cfg.train.select_every_epoch
    per_run: dict[str, float | None] = {}
    for spec in expand(cfg):
        if store.run(spec).is_complete():
            continue
        r = compute_runs.get(spec.name, {})
        per_run[spec.name] = predict_run(spec, r.get("train_tokens"), cfg.train.epochs if select else 0,
                                         _rates_for(spec.model, spec.task, params, measured))
    known = sorted((s for s in per_run.values() if s is not None), reverse=True)
    loads = [0.0] * max(1, gpus)
    for s in known:  # longest first onto the least-loaded device
        heapq.heapreplace(loads, loads[0] + s)
    return {"label": "prediction", "gpus": gpus, "remaining": len(per_run),
            "unpredicted": sum(s is None for s in per_run.values()),
            "wallclock_s": max(loads) if known else None, "device_s": sum(known) if known else None,
            "per_run": per_run, "rates": {k: v for k, v in measured.items() if "/" not in k}}


def _params_by_model(cfg: StudyConfig, compute_runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for spec in expand(cfg):
        if spec.name in compute_runs and spec.model not in out:
            out[spec.model] = compute_runs[spec.name]
    return out


def forecast_line(f: dict[str, Any]) -> str:
    """The one-line prediction `plan` prints (labelled as one, with what it rests on)."""
    if not f["remaining"]:
        return "predicted: nothing left to run"
    if f["wallclock_s"] is None:
        return (f"predicted wall-clock: unavailable ({f['remaining']} runs left, no finished run has measured the "
                "throughput to predict from yet)")
    basis = "; ".join(f"{m}: {r['runs']} run(s) on {', '.join(r['devices']) or '?'}, training "
                      f"{r['train_tokens_per_s'] or 0:,.0f} tokens/s, generation {r['generated_tokens_per_s'] or 0:,.0f} "
                      f"tokens/s" for m, r in f["rates"].items())
    missing = f", {f['unpredicted']} not predicted" if f["unpredicted"] else ""
    return (f"predicted wall-clock (a prediction, not a measurement) of the {f['remaining']} remaining runs on "
            f"{f['gpus']} device(s): {format_seconds(f['wallclock_s'])} ({format_seconds(f['device_s'])} device "
            f"time{missing}); from {basis}")

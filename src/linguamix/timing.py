"""Where a run's time goes: the stages a run's wall time is split into, and their sums.

Each stage a run finishes appends one row to the run's `logs/timings.jsonl` (`RunDir.log_timing`):
`{"stage", "seconds", ...counts}`. Rows are appended as the work happens, so a resumed run adds its new
attempts' time to the old (the time was spent) and a crash loses at most the stage it was in.

Counts that rows carry, for throughput: `tokens` (training tokens, `train_steps`), `generated_tokens`
and `generation_s` (`validation`, `test_eval`).
"""
from __future__ import annotations

from typing import Any, Iterable

STAGES = ("data", "model_load", "train_steps", "validation", "test_eval", "saving")
"""In the order a run goes through them. `train_steps` is the trainer's wall time minus the epoch-end
validation and checkpoint saving inside it; `validation` includes writing the weights vLLM reads."""

LABELS = {"data": "data", "model_load": "model load", "train_steps": "training steps",
          "validation": "epoch-end validation", "test_eval": "test evaluation", "saving": "saving"}


class Stopwatch:
    """Seconds per stage accumulated in this process (for work that happens inside another stage's
    wall time, such as checkpoint saves during training)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        if name not in STAGES:
            raise ValueError(f"unknown stage {name!r} (known: {', '.join(STAGES)})")
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds


def stage_totals(rows: Iterable[dict[str, Any]]) -> dict[str, float]:
    """{stage: seconds} summed over a run's (or many runs') timing rows, every stage present."""
    out = dict.fromkeys(STAGES, 0.0)
    for r in rows:
        if r.get("stage") in out and isinstance(r.get("seconds"), (int, float)):
            out[r["stage"]] += float(r["seconds"])
    return out


def shares(totals: dict[str, float]) -> dict[str, float]:
    """{stage: fraction of the total}; all zeros when nothing was timed."""
    total = sum(totals.values())
    return {k: (v / total if total > 0 else 0.0) for k, v in totals.items()}


def throughput(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Measured rates of timing rows: training tokens per second of training steps, generated tokens per
    second of generation (validation and test), with the sums they come from (None where nothing ran)."""
    rows = list(rows)
    train_s = sum(r["seconds"] for r in rows if r.get("stage") == "train_steps")
    train_tokens = sum(int(r.get("tokens") or 0) for r in rows if r.get("stage") == "train_steps")
    gen = [r for r in rows if r.get("stage") in ("validation", "test_eval") and r.get("generated_tokens") is not None]
    gen_s = sum(float(r.get("generation_s") or r["seconds"]) for r in gen)
    gen_tokens = sum(int(r["generated_tokens"]) for r in gen)
    return {"train_tokens": train_tokens, "train_s": train_s,
            "train_tokens_per_s": train_tokens / train_s if train_s > 0 and train_tokens else None,
            "generated_tokens": gen_tokens, "generation_s": gen_s,
            "generated_tokens_per_s": gen_tokens / gen_s if gen_s > 0 and gen_tokens else None}


def shares_line(totals: dict[str, float]) -> str:
    """`training steps 61 %, epoch-end validation 25 %, ...` (stages that took time, largest first)."""
    parts = sorted(((v, k) for k, v in shares(totals).items() if totals[k] > 0), reverse=True)
    return ", ".join(f"{LABELS[k]} {v:.0%}".replace("%", " %") for v, k in parts)


def format_seconds(seconds: float | None) -> str:
    """`12.3s`, `4m05s`, `2h07m` (empty for None): how every duration is shown."""
    if seconds is None:
        return ""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{seconds:.1f}s"


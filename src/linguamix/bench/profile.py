"""`linguamix bench train --profile`: where the linguamix configuration's CPU time goes.

torch.profiler (CPU activities) records every op of the timed steps (after the warm-up). Each op's self
CPU time is assigned to a category by the innermost labelled region it ran in:
- forward: `record_function` regions opened and closed by forward pre-/post-hooks on the model's own
  submodules (attention block, its q/k/v/o projections, MLP, norms, embedding) and around the fused
  linear cross-entropy (which computes the LM head's gradients in its forward);
- backward: the autograd engine runs each node under a region carrying the sequence number of the
  forward op that made it, so a backward op gets the category of its forward op;
- optimizer: torch's own `Optimizer.step#...` / `Optimizer.zero_grad#...` regions.
Everything else (residual adds, RoPE tables, gradient clipping, loss bookkeeping, batching, Trainer
overhead) is "other". Shares are of the profiled self CPU time, which the profiler inflates a little
for a many-small-ops workload; the throughput rows are measured without it.
"""
from __future__ import annotations

from typing import Any

CATEGORIES = {
    "lm_head_ce": "LM head + fused cross-entropy",
    "attention": "attention (per-example SDPA, RoPE, reshapes)",
    "attn_proj": "attention q/k/v/o projections",
    "mlp": "MLP (gate/up/down, activation)",
    "norm": "norms (RMSNorm)",
    "embedding": "embedding",
    "optimizer": "optimizer (AdamW step, zero_grad)",
    "other": "other (residuals, grad clipping, batching, Trainer)",
}
PREFIX = "linguamix::"
_BACKWARD = "autograd::engine::evaluate_function"


def _category(module, parent: str | None) -> str | None:
    import torch

    kind = type(module).__name__
    if "RMSNorm" in kind or "LayerNorm" in kind:
        return "norm"
    if kind.endswith("Attention"):
        return "attention"
    if kind.endswith("MLP"):
        return "mlp"
    if isinstance(module, torch.nn.Embedding):
        return "embedding"
    if isinstance(module, torch.nn.Linear) and parent == "attention":
        return "attn_proj"
    return None


def label_regions(model) -> list[Any]:
    """Forward hooks that open a `linguamix::<category>` record_function region around each categorised
    submodule's forward -> the hook handles (`.remove()` to undo)."""
    import torch

    handles, stack = [], []

    def walk(module, parent):
        for child in module.children():
            cat = _category(child, parent)
            if cat is not None:
                def pre(mod, args, cat=cat):
                    rf = torch.profiler.record_function(PREFIX + cat)
                    rf.__enter__()
                    stack.append(rf)

                def post(mod, args, output):
                    stack.pop().__exit__(None, None, None)

                handles.extend([child.register_forward_pre_hook(pre), child.register_forward_hook(post)])
            walk(child, cat or parent)

    walk(model, None)
    return handles


def _label_fused_ce():
    """Wrap fastpath.fused_linear_cross_entropy (looked up at call time by the patched forward) in a
    region -> a function that restores it."""
    import torch

    from .. import fastpath

    original = fastpath.fused_linear_cross_entropy

    def labelled(*args, **kwargs):
        with torch.profiler.record_function(PREFIX + "lm_head_ce"):
            return original(*args, **kwargs)

    fastpath.fused_linear_cross_entropy = labelled

    def restore():
        fastpath.fused_linear_cross_entropy = original

    return restore


def categorise(events) -> list[dict[str, Any]]:
    """Self CPU time of profiler events by category -> rows (category, what, seconds, share_pct)."""

    def own(ev) -> str | None:
        name = ev.name
        if name.startswith(PREFIX):
            return name[len(PREFIX):]
        if name.startswith("Optimizer.step#") or name.startswith("Optimizer.zero_grad#"):
            return "optimizer"
        return None

    def labelled_ancestor(ev):
        while ev is not None:
            if own(ev) is not None or ev.name.startswith(_BACKWARD):
                return ev
            ev = ev.cpu_parent
        return None

    # forward ops: sequence number -> the category they ran under (the backward node carries the same number)
    by_seq: dict[int, str] = {}
    for ev in events:
        a = labelled_ancestor(ev)
        if a is not None and own(a) is not None and ev.sequence_nr >= 0:
            by_seq.setdefault(ev.sequence_nr, own(a))
    totals = dict.fromkeys(CATEGORIES, 0.0)
    for ev in events:
        a = labelled_ancestor(ev)
        if a is None:
            cat = "other"
        elif own(a) is not None:
            cat = own(a)
        else:
            cat = by_seq.get(a.sequence_nr, "other")
        totals[cat if cat in totals else "other"] += ev.self_cpu_time_total / 1e6
    whole = sum(totals.values()) or 1.0
    return [{"category": k, "what": CATEGORIES[k], "seconds": round(v, 3), "share_pct": round(100 * v / whole, 1)}
            for k, v in sorted(totals.items(), key=lambda kv: -kv[1])]


def Profiler(model, warmup: int):
    """A TrainerCallback that profiles the steps after `warmup` until the end of training; `.table()` ->
    categorise()'s rows."""
    import torch
    from transformers import TrainerCallback

    class _Profiler(TrainerCallback):
        def __init__(self):
            self.prof = self.rows = None
            self.undo = []

        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == warmup and self.prof is None:
                handles = label_regions(model)
                self.undo = [h.remove for h in handles] + [_label_fused_ce()]
                self.prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
                self.prof.start()

        def on_train_end(self, args, state, control, **kw):
            if self.prof is not None and self.rows is None:
                self.prof.stop()
                for undo in self.undo:
                    undo()
                self.rows = categorise(self.prof.events())

        def table(self) -> list[dict[str, Any]]:
            if self.rows is None:
                raise RuntimeError("bench train --profile: the profiler never started (steps <= warm-up?)")
            return self.rows

    return _Profiler()

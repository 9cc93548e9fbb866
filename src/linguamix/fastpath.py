"""The fast training path: padding-free micro-batches whose examples never attend to each other,
a fused linear cross-entropy that never materialises the (tokens x vocabulary) logits, token-budgeted
micro-batches, and no host-device synchronisation inside the step.

- `varlen_attention` is registered in transformers' attention interface as "linguamix_varlen". It reads
  the cumulative sequence lengths of the flattened micro-batch and runs PyTorch's variable-length flash
  attention (`torch.nn.attention.varlen`) on CUDA, or one SDPA call per example elsewhere. Either way no
  attention is computed across example boundaries (unlike a dense block mask) and none is wasted on padding.
- `fused_linear_cross_entropy` computes the loss and its gradients chunk by chunk in the forward pass.
- `pack` turns examples into one flattened row plus the indices of the positions that carry a loss,
  computed on the host, so the device never has to tell the host anything during the step.
"""
from __future__ import annotations

import functools
import inspect
import logging
import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)
ATTN_NAME = "linguamix_varlen"
_NOTICES: set[str] = set()


def notice(msg: str) -> None:
    """A one-line notice, once per process (for fallbacks)."""
    if msg not in _NOTICES:
        _NOTICES.add(msg)
        log.warning(msg)
        print(f"linguamix: {msg}", flush=True)


# -- attention --------------------------------------------------------------------------------------
def _cuda_varlen():
    """PyTorch's varlen flash attention, or None where this torch/device lacks it."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


def _flash_varlen(q, k, v, cu, max_len: int, scale: float, window: int | None):
    varlen_attn = _cuda_varlen()
    params = inspect.signature(varlen_attn).parameters
    kwargs: dict[str, Any] = {"scale": scale}
    gqa = q.shape[1] != k.shape[1]
    if gqa and "enable_gqa" not in params:  # older torch: repeat the shared key/value heads
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    elif gqa:
        kwargs["enable_gqa"] = True
    left = -1 if window is None else window - 1
    if "window_size" in params:
        kwargs["window_size"] = (left, 0)  # (left, 0) = causal, optionally banded
    elif window is None and "is_causal" in params:
        kwargs["is_causal"] = True
    else:
        raise RuntimeError("this torch's varlen_attn supports neither window_size nor is_causal")
    return varlen_attn(q, k, v, cu, cu, max_len, max_len, **kwargs)


def _sdpa_per_example(q, k, v, seq_lens: Sequence[int], scale: float, window: int | None):
    """One causal SDPA call per example: exact, no cross-example or padding work (CPU and fallback path)."""
    outs, start = [], 0
    groups = q.shape[1] // k.shape[1]
    for n in seq_lens:
        qs, ks, vs = (t[start:start + n].transpose(0, 1).unsqueeze(0) for t in (q, k, v))
        if groups > 1:
            ks, vs = ks.repeat_interleave(groups, dim=1), vs.repeat_interleave(groups, dim=1)
        if window is not None and n > window:
            i = torch.arange(n, device=q.device)
            mask = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - window)
            o = F.scaled_dot_product_attention(qs, ks, vs, attn_mask=mask, scale=scale)
        else:
            o = F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, scale=scale)
        outs.append(o[0].transpose(0, 1))
        start += n
    return torch.cat(outs, dim=0)


def varlen_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
                     sliding_window: int | None = None, cu_seq_lens_q=None, max_length_q: int | None = None,
                     linguamix_seq_lens: Sequence[int] | None = None, **kwargs):
    """transformers attention-interface function: q/k/v (1, heads, tokens, dim) -> (1, tokens, heads, dim)."""
    if attention_mask is not None:
        raise ValueError(f"'{ATTN_NAME}' attention is for padding-free training batches; generate with 'sdpa'")
    b, _, t, d = query.shape
    scale = scaling if scaling is not None else 1.0 / math.sqrt(d)
    if linguamix_seq_lens is None:  # an unpadded batch: every row is one sequence
        linguamix_seq_lens = [t] * b
        cu_seq_lens_q = None
    q, k, v = (x.transpose(1, 2).reshape(b * t, x.shape[1], d) for x in (query, key, value))
    if q.is_cuda and _cuda_varlen() is not None:
        if cu_seq_lens_q is None:
            cu_seq_lens_q = torch.arange(0, (b + 1) * t, t, device=q.device, dtype=torch.int32)
        out = _flash_varlen(q, k, v, cu_seq_lens_q.to(torch.int32), int(max_length_q or t), scale, sliding_window)
    else:
        if q.is_cuda:
            notice("torch.nn.attention.varlen is unavailable: padding-free attention falls back to one SDPA call per example")
        out = _sdpa_per_example(q, k, v, linguamix_seq_lens, scale, sliding_window)
    return out.reshape(b, t, out.shape[-2], out.shape[-1]), None


def register_attention() -> str:
    """Make "linguamix_varlen" a valid `attn_implementation` (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(ATTN_NAME, varlen_attention)
    # The attention builds its own (causal, banded, per-example) masking from the sequence lengths.
    AttentionMaskInterface.register(ATTN_NAME, lambda *args, **kwargs: None)
    return ATTN_NAME


# -- fused linear cross-entropy ---------------------------------------------------------------------
class _FusedLinearCE(torch.autograd.Function):
    """sum_i -log softmax(h_i W^T)[y_i], with dL/dh and dL/dW computed chunk by chunk in the forward.

    Peak extra memory is one (chunk x vocabulary) block instead of (tokens x vocabulary) logits plus
    their fp32 copy and gradient; the work is the usual three matmuls per chunk.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk: int):
        w = weight.to(hidden.dtype)
        grad_h = torch.empty_like(hidden)
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if weight.requires_grad else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for s in range(0, hidden.shape[0], chunk):
            h, y = hidden[s:s + chunk], targets[s:s + chunk]
            logits = (h @ w.T).float()
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(1, y[:, None]).squeeze(1)).sum()
            # d(sum loss)/d logits = softmax - onehot; softmax = exp(logits - lse), in place: one pass over
            # the (chunk x vocabulary) block instead of softmax's own max, exp and sum passes
            g = logits.sub_(lse[:, None]).exp_()
            g.scatter_add_(1, y[:, None], torch.full_like(lse[:, None], -1.0))
            g = g.to(hidden.dtype)
            grad_h[s:s + chunk] = g @ w
            if grad_w is not None:
                if g.dtype == torch.float32:
                    grad_w.addmm_(g.T, h)
                else:  # bf16 matmul (fp32 accumulation inside), summed across chunks in fp32
                    grad_w.add_((g.T @ h).float())
        ctx.save_for_backward(grad_h, grad_w if grad_w is not None else torch.empty(0))
        ctx.weight_dtype = weight.dtype
        ctx.has_grad_w = grad_w is not None
        return total

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        gw = (grad_w * grad_out).to(ctx.weight_dtype) if ctx.has_grad_w else None
        return grad_h * grad_out.to(grad_h.dtype), gw, None, None


def fused_linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                               chunk: int | None = None) -> torch.Tensor:
    """Sum of token cross-entropies of `hidden @ weight.T` against `targets` (hidden: (N, d), weight: (V, d)).

    `chunk` rows at a time: by default ~2^28 logits per chunk on CUDA (1 GiB in fp32) -> 1,766 rows for
    Qwen3's 151,936-token vocabulary, 1,024 for Gemma-3's 262,144; ~2^26 on CPU (441 rows for Qwen3), where
    the larger block bought no speed (the matmuls run at the same rate) and cost 1.2 GiB of peak memory
    (docs/performance.md, qwen3-cpu)."""
    if chunk is None:
        budget = 1 << (28 if hidden.is_cuda else 26)
        chunk = max(128, min(8192, budget // weight.shape[0]))
    if hidden.shape[0] == 0:
        return (hidden.sum() + weight.sum()) * 0.0  # keeps the graph connected for an all-prompt micro-batch
    return _FusedLinearCE.apply(hidden, weight, targets, chunk)


def patch_fused_forward(model) -> None:
    """Let `model(..., linguamix_loss_index=idx, linguamix_loss_targets=y)` return the summed loss of those
    positions through the model's own (possibly DDP/FSDP-wrapped) forward; other calls are unchanged."""
    if getattr(model, "_linguamix_fused", False):
        return
    text_config = model.config.get_text_config()
    if getattr(text_config, "final_logit_softcapping", None):
        raise ValueError("fused cross-entropy does not implement final-logit soft-capping")
    original = model.forward

    @functools.wraps(type(model).forward)
    def forward(self, *args, linguamix_loss_index=None, linguamix_loss_targets=None, **kwargs):
        if linguamix_loss_index is None:
            return original(*args, **kwargs)
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state
        hidden = hidden.reshape(-1, hidden.shape[-1]).index_select(0, linguamix_loss_index)
        weight = self.get_output_embeddings().weight
        if weight.__class__.__name__ == "DTensor":  # FSDP2 shards the head: gather it for the projection
            weight = weight.full_tensor()
        from trl.trainer.utils import maybe_gather_lm_head_ctx  # ZeRO-3: materialise the sharded head

        with maybe_gather_lm_head_ctx(weight):
            return fused_linear_cross_entropy(hidden, weight, linguamix_loss_targets)

    model.forward = forward.__get__(model, type(model))
    model._linguamix_fused = True


# -- batches ----------------------------------------------------------------------------------------
@dataclass
class MicroBatch:
    """Host-side tensors of one forward/backward; `to(device)` copies them without blocking."""

    inputs: dict[str, Any]
    n_tokens: int
    n_loss_tokens: int

    def to(self, device) -> "MicroBatch":
        moved = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) and k not in ("cu_seq_lens_cpu",) else v)
                 for k, v in self.inputs.items()}
        return MicroBatch(moved, self.n_tokens, self.n_loss_tokens)


def pack(examples: Sequence[dict[str, Any]], pin: bool = False) -> MicroBatch:
    """Flatten examples (input_ids + completion_mask) into one row for padding-free training.

    Position t carries a loss when token t+1 is a completion token of the same example; positions are
    listed on the host, so the loss needs no boolean indexing (a device sync) later.
    """
    ids, pos, index, targets, lens = [], [], [], [], []
    offset = 0
    for ex in examples:
        x, m = ex["input_ids"], ex["completion_mask"]
        n = len(x)
        ids.extend(x)
        pos.extend(range(n))
        for t in range(n - 1):
            if m[t + 1]:
                index.append(offset + t)
                targets.append(x[t + 1])
        lens.append(n)
        offset += n
    cu = [0]
    for n in lens:
        cu.append(cu[-1] + n)
    t = lambda v, dt: torch.tensor(v, dtype=dt).pin_memory() if pin else torch.tensor(v, dtype=dt)  # noqa: E731
    inputs = {"input_ids": t(ids, torch.long)[None], "position_ids": t(pos, torch.long)[None],
              "cu_seq_lens_q": t(cu, torch.int32), "cu_seq_lens_k": t(cu, torch.int32),
              "max_length_q": max(lens), "max_length_k": max(lens), "linguamix_seq_lens": tuple(lens),
              "linguamix_loss_index": t(index, torch.long), "linguamix_loss_targets": t(targets, torch.long)}
    return MicroBatch(inputs, offset, len(index))


def pad(examples: Sequence[dict[str, Any]], pad_id: int) -> MicroBatch:
    """The reference path: right-padded batch with an attention mask and -100 labels (HF's own loss)."""
    n = max(len(ex["input_ids"]) for ex in examples)
    ids = torch.full((len(examples), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), n), dtype=torch.long)
    labels = torch.full((len(examples), n), -100, dtype=torch.long)
    for i, ex in enumerate(examples):
        x = torch.tensor(ex["input_ids"])
        ids[i, : len(x)] = x
        mask[i, : len(x)] = 1
        m = torch.tensor(ex["completion_mask"], dtype=torch.bool)
        labels[i, : len(x)] = torch.where(m, x, torch.tensor(-100))
    n_loss = int((labels[:, 1:] != -100).sum())
    return MicroBatch({"input_ids": ids, "attention_mask": mask, "labels": labels}, int(mask.sum()), n_loss)


def plan_micro_batches(lengths: Sequence[int], token_budget: int) -> list[list[int]]:
    """Split one step's examples (in order) into micro-batches of at most `token_budget` tokens.

    The step keeps all its examples (the paper's examples per optimizer step); only how they are cut
    into forward passes changes. An example longer than the budget gets a micro-batch of its own.
    """
    plan: list[list[int]] = []
    cur: list[int] = []
    used = 0
    for i, n in enumerate(lengths):
        if cur and used + n > token_budget:
            plan.append(cur)
            cur, used = [], 0
        cur.append(i)
        used += n
    if cur:
        plan.append(cur)
    return plan


def auto_memory_plan(model, device: torch.device, longest_example: int, *, gradient_checkpointing) -> tuple[int, bool]:
    """(token budget per micro-batch, gradient checkpointing?) from the model's size and free memory.

    Activations per token without checkpointing ~ layers x (14 x hidden + 4 x intermediate) values (the
    residual stream, attention projections and the SwiGLU/GeGLU block, kept for backward); with
    checkpointing only ~ layers x hidden. Checkpointing is turned on only when an example of the longest
    length would not otherwise fit (`gradient_checkpointing="auto"`).
    """
    cfg = model.config.get_text_config()
    layers, hidden = cfg.num_hidden_layers, cfg.hidden_size
    inter = getattr(cfg, "intermediate_size", 4 * hidden)
    elem = 2 if next(model.parameters()).dtype in (torch.bfloat16, torch.float16) or device.type == "cuda" else 4
    per_token_full = layers * (14 * hidden + 4 * inter) * elem
    per_token_ckpt = layers * hidden * elem * 2 + (14 * hidden + 4 * inter) * elem
    if device.type != "cuda":
        budget = 4096  # cache-sized micro-batches are fastest on CPU; memory is not the constraint here
        return max(budget, longest_example), bool(gradient_checkpointing is True)
    free, _ = torch.cuda.mem_get_info(device)
    params = sum(p.numel() for p in model.parameters())
    states = params * (4 + 4 + 4 + 4)  # fp32 master weights, gradients, two AdamW moments
    spare = max(free - states - 2 * 1024**3, 0) * 0.7  # headroom for the fused loss chunk and allocator slack
    want_ckpt = gradient_checkpointing is True or (
        gradient_checkpointing == "auto" and spare / per_token_full < max(longest_example, 1024))
    per_token = per_token_ckpt if want_ckpt else per_token_full
    budget = int(min(max(spare / per_token, longest_example), 65536))
    return budget, want_ckpt


def apply_kernels(model) -> list[str]:
    """Fused RMSNorm / RoPE / SwiGLU-GeGLU Triton kernels from liger-kernel, on CUDA, when installed
    (its fused cross-entropy is not used: ours runs on the host-computed loss positions). Returns what
    was applied; a missing piece falls back with a one-line notice."""
    if not torch.cuda.is_available():
        return []
    try:
        import liger_kernel.transformers as liger
    except ImportError:
        notice("liger-kernel is not installed: RMSNorm/RoPE/MLP run unfused (pip install liger-kernel)")
        return []
    model_type = model.config.get_text_config().model_type
    fn = {"qwen3": "apply_liger_kernel_to_qwen3", "gemma3_text": "apply_liger_kernel_to_gemma3_text",
          "gemma3": "apply_liger_kernel_to_gemma3_text"}.get(model_type)
    if fn is None or not hasattr(liger, fn):
        notice(f"liger-kernel has no kernels for '{model_type}': unfused norms/activations")
        return []
    kwargs = {"rope": True, "rms_norm": True, "cross_entropy": False, "fused_linear_cross_entropy": False,
              "model": model}
    kwargs["swiglu" if model_type == "qwen3" else "geglu"] = True
    try:
        getattr(liger, fn)(**kwargs)
    except Exception as e:  # a version mismatch must not stop training: it only costs speed
        notice(f"liger-kernel could not patch the model ({type(e).__name__}: {e}); running unfused")
        return []
    return ["rms_norm", "rope", "swiglu" if model_type == "qwen3" else "geglu"]

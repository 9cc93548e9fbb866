"""Generation backends behind one interface: `generate(prompts, max_new_tokens=, stop=) -> [Generation]`.

Both backends decode greedily from the same token ids (the prompt tokenized exactly as for training)
and cut every completion at the first stop string with the same function, so HF and vLLM completions
are comparable strings.

- `HFGenerator`: transformers `generate`, batched with left padding; prompts are sorted by length so a
  batch holds similar lengths (little padding); CPU or GPU.
- `VLLMGenerator`: vLLM's offline engine (optional extra `linguamix[vllm]`), greedy, explicit
  `max_tokens` (vLLM's default is 16), the model's generation_config ignored (it would switch on sampling).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import torch

from .scoring.math import cut_at_stop


@dataclass(frozen=True)
class Generation:
    text: str
    """The completion, cut at the first stop string (stop string excluded)."""
    n_prompt_tokens: int
    n_new_tokens: int


def _progress(enabled, total: int, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc if isinstance(enabled, bool) else str(enabled), unit="item",
                dynamic_ncols=True, leave=False)


class HFGenerator:
    """Batched greedy generation with a transformers model (any device)."""

    name = "hf"

    def __init__(self, model, tokenizer, *, batch_size: int = 32, max_batch_tokens: int | None = None):
        self.model, self.tok = model, tokenizer
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.stats = {"items": 0, "new_tokens": 0, "seconds": 0.0}

    def _batches(self, lengths: list[int], max_new_tokens: int) -> list[list[int]]:
        order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))  # longest first: OOM shows up early
        batches, cur = [], []
        for i in order:
            width = lengths[cur[0]] if cur else lengths[i]
            too_many = self.max_batch_tokens and (len(cur) + 1) * (width + max_new_tokens) > self.max_batch_tokens
            if cur and (len(cur) == self.batch_size or too_many):
                batches.append(cur)
                cur = []
            cur.append(i)
        if cur:
            batches.append(cur)
        return batches

    @torch.inference_mode()
    def generate(self, prompts: Sequence[str], *, max_new_tokens: int, stop: Sequence[str] = (),
                 progress=False) -> list[Generation]:
        from transformers import GenerationConfig

        tok, model = self.tok, self.model
        device = next(model.parameters()).device
        ids = [tok(p, add_special_tokens=True)["input_ids"] for p in prompts]
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        # An explicit config: the checkpoint's own generation_config may switch sampling on.
        gen_cfg = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                                   eos_token_id=tok.eos_token_id, pad_token_id=pad,
                                   stop_strings=list(stop) or None)
        was_training = model.training
        model.eval()
        out: list[Generation | None] = [None] * len(prompts)
        bar = _progress(progress, len(prompts), "generating")
        t0, new_total = time.perf_counter(), 0
        try:
            for batch in self._batches([len(x) for x in ids], max_new_tokens):
                width = max(len(ids[i]) for i in batch)
                input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for r, i in enumerate(batch):  # left padding: every prompt ends where generation starts
                    input_ids[r, width - len(ids[i]):] = torch.tensor(ids[i])
                    mask[r, width - len(ids[i]):] = 1
                result = model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                                        generation_config=gen_cfg, tokenizer=tok if stop else None)
                new = result[:, width:].cpu()
                for r, i in enumerate(batch):
                    row = new[r].tolist()
                    n = len(row)
                    for j, t in enumerate(row):  # finished rows are padded (with pad or eos) after their EOS
                        if t == tok.eos_token_id:
                            n = j + 1
                            break
                    text = tok.decode(row[:n], skip_special_tokens=True)
                    out[i] = Generation(cut_at_stop(text, stop), len(ids[i]), n)
                    new_total += n
                if bar is not None:
                    bar.update(len(batch))
                    dt = time.perf_counter() - t0
                    bar.set_postfix(tok_s=f"{new_total / dt:.0f}")
        finally:
            if bar is not None:
                bar.close()
            if was_training:
                model.train()
        self.stats["items"] += len(prompts)
        self.stats["new_tokens"] += new_total
        self.stats["seconds"] += time.perf_counter() - t0
        return out  # type: ignore[return-value]


class VLLMGenerator:
    """vLLM offline engine; prompts are passed as token ids, so they are the HF backend's tokens."""

    name = "vllm"

    def __init__(self, model_path: str, tokenizer, *, dtype: str = "auto", max_model_len: int | None = None,
                 gpu_memory_utilization: float | None = None, seed: int = 0, enforce_eager: bool = False,
                 trust_remote_code: bool = False, **engine_kwargs):
        try:
            from vllm import LLM
        except ImportError:
            from .errors import ConfigError

            raise ConfigError("the vLLM backend needs vLLM: pip install 'linguamix[vllm]' "
                              "(CPU: see docs/vllm_cpu.md)") from None
        self.tok = tokenizer
        if gpu_memory_utilization is None:
            # on CPU the fraction is of host memory: the GPU default (0.92) would not fit beside the host process
            gpu_memory_utilization = 0.9 if torch.cuda.is_available() else 0.1
        self.llm = LLM(model=model_path, tokenizer=model_path, dtype=dtype, max_model_len=max_model_len,
                       gpu_memory_utilization=gpu_memory_utilization, seed=seed, enforce_eager=enforce_eager,
                       generation_config="vllm", trust_remote_code=trust_remote_code, **engine_kwargs)
        self.stats = {"items": 0, "new_tokens": 0, "seconds": 0.0}

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int, stop: Sequence[str] = (),
                 progress=False) -> list[Generation]:
        from vllm import SamplingParams

        params = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=max_new_tokens, stop=list(stop) or None,
                                skip_special_tokens=True, seed=0)
        ids = [self.tok(p, add_special_tokens=True)["input_ids"] for p in prompts]
        t0 = time.perf_counter()
        results = self.llm.generate([{"prompt_token_ids": x} for x in ids], params, use_tqdm=bool(progress))
        out = []
        for x, r in zip(ids, results):
            o = r.outputs[0]
            out.append(Generation(cut_at_stop(o.text, stop), len(x), len(o.token_ids)))
        self.stats["items"] += len(prompts)
        self.stats["new_tokens"] += sum(g.n_new_tokens for g in out)
        self.stats["seconds"] += time.perf_counter() - t0
        return out

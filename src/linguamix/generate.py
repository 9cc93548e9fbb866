"""Generation backends behind one interface:

    generator.generate(prompts, *, max_new_tokens=N, stop=("\\nQuestion:",), progress=False) -> [Generation]
    generator.last_stats                                  -> GenerationStats of that call (items/s, tokens/s)

Both backends decode greedily from the same token ids (each prompt tokenized alone, with the
tokenizer's special tokens, exactly as `data.tokenize.encode_example` does for training), stop at the
tokenizer's EOS or at a stop string found in the *generated* text, and turn the generated token ids
into text with the same function (`decode_completion`: decode, then `tasks.cut_at_stop`). So for
the same tokens the two backends give the same strings, and the scored text never contains a stop string.

- `HFGenerator`: transformers `generate`, batched with left padding; prompts are sorted by length so a
  batch holds similar lengths (little padding); CPU or GPU. The checkpoint's own generation_config is
  set aside during the call (it may switch on sampling or a repetition penalty).
- `VLLMGenerator`: vLLM's offline engine (optional extra `linguamix[vllm]`), greedy, explicit
  `max_tokens` (vLLM's default is 16), `generation_config="vllm"` for the same reason.

Why our own stop-string check for HF: transformers' `stop_strings` also matches a stop string that
starts inside the prompt (the math prompt ends with "\\n", so a model writing "Question:" first would
stop on "\\nQuestion:"), while vLLM looks at the generated text only.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch

from .data.tokenize import encode_prompts
from .tasks import cut_at_stop

FINISH_REASONS = ("eos", "stop", "length")


@dataclass(frozen=True)
class Generation:
    text: str
    """The completion, cut before the first stop string; special tokens (EOS) are not in it."""
    n_prompt_tokens: int
    n_new_tokens: int
    """Tokens generated, including the EOS or the token that completed a stop string."""
    finish_reason: str = "length"
    """`eos`, `stop` (a stop string) or `length` (ran out of max_new_tokens)."""


@dataclass(frozen=True)
class GenerationStats:
    """Throughput of one `generate` call (tokenization, generation and decoding included)."""

    backend: str
    items: int
    new_tokens: int
    seconds: float

    @property
    def items_per_s(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": round(self.seconds, 3), "items_per_s": round(self.items_per_s, 2),
                "tokens_per_s": round(self.tokens_per_s, 1)}


def decode_completion(tok, token_ids: Sequence[int], stop: Sequence[str]) -> str:
    """Generated ids -> the completion string both backends return (EOS dropped, cut at the first stop).

    A final EOS is removed by id, not left to `skip_special_tokens`: a tokenizer whose EOS is an ordinary
    vocabulary entry would otherwise print it."""
    ids = list(token_ids)
    if ids and ids[-1] == tok.eos_token_id:
        ids.pop()
    return cut_at_stop(tok.decode(ids, skip_special_tokens=True), stop)


def _progress(enabled, total: int):
    """A tqdm bar counting items (its rate is items/s); `enabled` may be a description string."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=enabled if isinstance(enabled, str) else "generating", unit="item",
                dynamic_ncols=True, leave=False)


class _StopOnStrings:
    """A transformers stopping criterion: a row is done once its *generated* text contains a stop string.

    Only the last few generated tokens are decoded each step: every token carries at least one byte,
    so a stop string of B bytes completed by the newest token lies within the last B tokens (the
    margin covers decoders that drop a leading space or mis-decode a partial first character)."""

    def __init__(self, tok, stop: Sequence[str], prompt_width: int, batch: int):
        self.tok, self.stop, self.width = tok, [s for s in stop if s], prompt_width
        self.window = max(len(s.encode("utf-8")) for s in self.stop) + 4
        self.stopped_at: list[int | None] = [None] * batch
        """Per row: generated tokens when the stop string was completed (None: not stopped by a string)."""

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        n_new = input_ids.shape[1] - self.width
        tails = input_ids[:, max(self.width, input_ids.shape[1] - self.window):].tolist()
        done = []
        for r, tail in enumerate(tails):
            if self.stopped_at[r] is None:
                text = self.tok.decode(tail, skip_special_tokens=True)
                if any(s in text for s in self.stop):
                    self.stopped_at[r] = n_new
            done.append(self.stopped_at[r] is not None)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class HFGenerator:
    """Batched greedy generation with a transformers model (any device).

    `batch_size=1` is plain one-prompt-at-a-time generation (no padding), the reference the batched
    path must reproduce. `max_batch_tokens` caps batch x (prompt width + max_new_tokens)."""

    name = "hf"

    def __init__(self, model, tokenizer, *, batch_size: int = 32, max_batch_tokens: int | None = None):
        if batch_size < 1:
            from .errors import ConfigError

            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.tok = model, tokenizer
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.last_stats = GenerationStats(self.name, 0, 0, 0.0)

    def _batches(self, lengths: list[int], max_new_tokens: int) -> list[list[int]]:
        """Indices grouped into batches of similar length, longest first (an out-of-memory shows up early)."""
        order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
        batches: list[list[int]] = []
        cur: list[int] = []
        for i in order:
            width = lengths[cur[0]] if cur else lengths[i]  # the first (longest) prompt sets the width
            too_many = bool(self.max_batch_tokens) and (len(cur) + 1) * (width + max_new_tokens) > self.max_batch_tokens
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
        from transformers import GenerationConfig, StoppingCriteriaList

        tok, model = self.tok, self.model
        stop = [stop] if isinstance(stop, str) else [s for s in stop if s]
        if not prompts:
            self.last_stats = GenerationStats(self.name, 0, 0, 0.0)
            return []
        device = next(model.parameters()).device
        t0 = time.perf_counter()
        ids = encode_prompts(tok, prompts)
        eos = tok.eos_token_id
        pad = tok.pad_token_id if tok.pad_token_id is not None else eos
        # Greedy and nothing else: a fresh config replaces the checkpoint's for the call, because
        # generate() fills every unset field from model.generation_config (sampling, penalties, extra EOS).
        gen_cfg = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                                   eos_token_id=eos, pad_token_id=pad)
        saved_cfg, was_training = model.generation_config, model.training
        model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad)
        model.eval()
        out: list[Generation | None] = [None] * len(prompts)
        bar = _progress(progress, len(prompts))
        new_total = 0
        try:
            for batch in self._batches([len(x) for x in ids], max_new_tokens):
                width = max(len(ids[i]) for i in batch)
                input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for r, i in enumerate(batch):  # left padding: every prompt ends where generation starts
                    input_ids[r, width - len(ids[i]):] = torch.tensor(ids[i])
                    mask[r, width - len(ids[i]):] = 1
                criteria = _StopOnStrings(tok, stop, width, len(batch)) if stop else None
                result = model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                                        generation_config=gen_cfg,
                                        stopping_criteria=StoppingCriteriaList([criteria] if criteria else []))
                new = result[:, width:].tolist()
                for r, i in enumerate(batch):
                    row = new[r]
                    # finished rows are filled with pad (often == EOS) after their end: find the end
                    n, reason = len(row), "length"
                    if eos in row:
                        n, reason = row.index(eos) + 1, "eos"
                    at = criteria.stopped_at[r] if criteria else None
                    if at is not None and at <= n:
                        n, reason = at, "stop"
                    out[i] = Generation(decode_completion(tok, row[:n], stop), len(ids[i]), n, reason)
                    new_total += n
                if bar is not None:
                    bar.update(len(batch))
                    bar.set_postfix(tok_s=f"{new_total / (time.perf_counter() - t0):.0f}")
        finally:
            model.generation_config = saved_cfg
            if bar is not None:
                bar.close()
            if was_training:
                model.train()
        self.last_stats = GenerationStats(self.name, len(prompts), new_total, time.perf_counter() - t0)
        return out  # type: ignore[return-value]


class VLLMGenerator:
    """vLLM offline engine; prompts are passed as token ids, so they are the HF backend's tokens.

    On CPU the engine needs `enforce_eager=True`, a head dimension its attention kernels support
    (64 works, 16 does not) and a small `gpu_memory_utilization` (there it is a fraction of host memory).
    `deterministic` turns off vLLM's engine process (VLLM_ENABLE_V1_MULTIPROCESSING=0), which makes its
    scheduling, hence its batches, the same from run to run (vLLM's reproducibility advice)."""

    name = "vllm"

    def __init__(self, model_path: str, tokenizer, *, dtype: str = "auto", max_model_len: int | None = None,
                 gpu_memory_utilization: float | None = None, seed: int = 0, enforce_eager: bool | None = None,
                 trust_remote_code: bool = False, deterministic: bool = True, **engine_kwargs):
        try:
            import vllm  # noqa: F401
        except ImportError:
            from .errors import ConfigError

            raise ConfigError("the vLLM backend needs vLLM: pip install 'linguamix[vllm]' "
                              "(CPU: see docs/evaluation.md)") from None
        from vllm import LLM

        if deterministic:
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        cuda = torch.cuda.is_available()
        if gpu_memory_utilization is None:
            # on CPU the fraction is of host memory: the GPU default (0.92) would not fit beside this process
            gpu_memory_utilization = 0.9 if cuda else 0.1
        self.tok = tokenizer
        self.llm = LLM(model=model_path, tokenizer=model_path, dtype=dtype, max_model_len=max_model_len,
                       gpu_memory_utilization=gpu_memory_utilization, seed=seed,
                       enforce_eager=(not cuda) if enforce_eager is None else enforce_eager,
                       generation_config="vllm", trust_remote_code=trust_remote_code, **engine_kwargs)
        self.last_stats = GenerationStats(self.name, 0, 0, 0.0)

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int, stop: Sequence[str] = (),
                 progress=False) -> list[Generation]:
        from vllm import SamplingParams

        stop = [stop] if isinstance(stop, str) else [s for s in stop if s]
        if not prompts:
            self.last_stats = GenerationStats(self.name, 0, 0, 0.0)
            return []
        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, stop=stop or None,
                                skip_special_tokens=True, seed=0)
        t0 = time.perf_counter()
        ids = encode_prompts(self.tok, prompts)
        results = self.llm.generate([{"prompt_token_ids": x} for x in ids], params, use_tqdm=bool(progress))
        out = []
        for x, r in zip(ids, results):
            o = r.outputs[0]
            # vLLM's own text drops the stop string; decoding its token ids with our tokenizer and cutting
            # gives exactly the HF backend's string for the same tokens
            reason = "length" if o.finish_reason == "length" else "stop" if isinstance(o.stop_reason, str) else "eos"
            out.append(Generation(decode_completion(self.tok, o.token_ids, stop), len(x), len(o.token_ids), reason))
        self.last_stats = GenerationStats(self.name, len(prompts), sum(g.n_new_tokens for g in out),
                                          time.perf_counter() - t0)
        return out

"""linguamix's trainer: TRL's SFTTrainer with the paper's batching and checkpoint selection.

What it changes in SFTTrainer, and why:
- Batches: every optimizer step holds exactly `global_batch_size` examples (the paper's 512), drawn in a
  seeded order per epoch; each rank's share is cut into the same number K of micro-batches (gradient
  accumulation steps), balanced by tokens. Fast path: padding-free micro-batches under a token budget
  (varlen attention, fused linear cross-entropy); reference path: padded micro-batches of
  `micro_batch_size` examples.
- Loss: summed over the completion tokens of the step and divided by the step's completion tokens over
  all ranks (known on the host, so no all-reduce and no device sync is needed to normalise).
- Evaluation: at the end of every epoch, greedy generation on the validation set of every mixture
  language, scored by the task scorer; the checkpoint with the best mean accuracy across those languages
  is kept (so no language is favoured), the last full checkpoint only for resuming. The completions come
  from HF generate here, or (`Validation.generate`, e.g. vLLM in a child process) from the epoch's saved
  weights; scoring and selection are the same either way.
- Logging: loss, learning rate, tokens/s and MFU; a SIGTERM saves a checkpoint and stops.
"""
from __future__ import annotations

import heapq
import math
import signal
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from transformers import TrainerCallback
from trl import SFTTrainer

from . import fastpath
from .errors import LinguamixError
from .timing import Stopwatch

# TRL's generation helper still calls transformers' renamed gradient-checkpointing methods
warnings.filterwarnings("ignore", message=r".*gradient_checkpointing.* is deprecated", category=FutureWarning)

def peak_flops() -> float | None:
    """Peak FLOP/s of this process's GPU (None on CPU or an unknown GPU): the MFU denominator."""
    from .hardware import peak_flops as by_name

    return by_name(torch.cuda.get_device_name()) if torch.cuda.is_available() else by_name(None)


# -- the step plan ----------------------------------------------------------------------------------
def _balanced_bins(indices: Sequence[int], lengths: Sequence[int], k: int) -> list[list[int]]:
    """Longest-first into the currently lightest of k bins; each bin keeps the step order."""
    heap = [(0, b) for b in range(k)]
    bins: list[list[int]] = [[] for _ in range(k)]
    for i in sorted(indices, key=lambda i: (-lengths[i], i)):
        load, b = heapq.heappop(heap)
        bins[b].append(i)
        heapq.heappush(heap, (load + lengths[i], b))
    return [sorted(b) for b in bins]


class StepPlan:
    """The examples of every optimizer step, per epoch, per rank, cut into K micro-batches."""

    def __init__(self, lengths: Sequence[int], loss_tokens: Sequence[int], *, global_batch: int, world: int,
                 rank: int, seed: int, epochs: int, packed: bool, token_budget: int, micro_batch_size: int):
        if global_batch % world:
            raise ValueError(f"global batch {global_batch} is not divisible by the {world} processes")
        self.lengths, self.loss_tokens = list(lengths), list(loss_tokens)
        self.n, self.global_batch, self.world, self.rank = len(lengths), global_batch, world, rank
        self.seed, self.packed = seed, packed
        self.token_budget, self.micro_batch_size = token_budget, micro_batch_size
        self.steps_per_epoch = math.ceil(self.n / global_batch)
        # K is fixed for the run (gradient accumulation steps): the most any step of any epoch needs
        need = 1
        for e in range(epochs):
            for step in self._steps(e):
                for r in range(world):
                    share = step[r::world]
                    if packed:
                        need = max(need, math.ceil(sum(self.lengths[i] for i in share) / token_budget))
                    else:
                        need = max(need, math.ceil(len(share) / micro_batch_size))
        per_rank_min = max(1, min(len(s[r::world]) for s in self._steps(0) for r in range(world)))
        self.k = max(1, min(need, per_rank_min))

    def _steps(self, epoch: int) -> list[list[int]]:
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n).tolist()
        return [order[s:s + self.global_batch] for s in range(0, self.n, self.global_batch)]

    def epoch(self, epoch: int) -> list[tuple[list[list[int]], int]]:
        """[(K micro-batches of this rank's example indices, completion tokens of the whole step)]."""
        out = []
        for step in self._steps(epoch):
            share = step[self.rank::self.world]
            if self.packed:
                bins = _balanced_bins(share, self.lengths, self.k)
            else:
                size = math.ceil(len(share) / self.k)
                bins = [share[i * size:(i + 1) * size] for i in range(self.k)]
            out.append((bins, sum(self.loss_tokens[i] for i in step)))
        return out


class _MicroBatchSampler:
    """Batch sampler over micro-batch keys; the epoch is set by the trainer at each epoch start."""

    def __init__(self, plan: StepPlan):
        self.plan, self.epoch = plan, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.plan.steps_per_epoch * self.plan.k

    def __iter__(self):
        for bins, step_tokens in self.plan.epoch(self.epoch):
            for b in bins:
                yield [(tuple(b), step_tokens)]


class _MicroBatchDataset(torch.utils.data.Dataset):
    def __init__(self, examples: list[dict[str, Any]], packed: bool, pad_id: int):
        self.examples, self.packed, self.pad_id = examples, packed, pad_id

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, key):
        idx, step_tokens = key
        exs = [self.examples[i] for i in idx]
        if not exs:  # an empty bin (a last step with fewer examples than K): one example, zero weight
            exs = [{**self.examples[0], "completion_mask": [0] * len(self.examples[0]["input_ids"])}]
        mb = fastpath.pack(exs) if self.packed else fastpath.pad(exs, self.pad_id)
        return {**mb.inputs, "linguamix_meta": {"step_loss_tokens": step_tokens, "tokens": mb.n_tokens,
                                                "loss_tokens": mb.n_loss_tokens, "examples": len(idx)}}


# -- checkpoint selection ---------------------------------------------------------------------------
@dataclass
class Validation:
    """What the epoch-end selection generates on and how it scores (set up by the train stage)."""

    examples: dict[str, list[Any]]
    """Validation examples per mixture language (records.Example)."""
    score: Callable[[str, Any, str], Any]
    """task.score(completion, gold, lang) -> object with `.correct`."""
    max_new_tokens: int
    stop: tuple[str, ...]
    batch_size: int = 32
    on_result: Callable[[dict[str, Any], list[dict[str, Any]]], None] | None = None
    """Called on the main process with (curve entry, per-example rows) after each selection pass."""
    best_dir: str | None = None
    """Where the best model so far is saved (model weights only)."""
    best_avg: float = -1.0
    """Best mean validation accuracy so far (restored on resume)."""
    backend: str = "hf"
    """Which backend generates (recorded in every selection curve entry)."""
    generate: Callable[[str, list[str]], tuple[list[str], int | None]] | None = None
    """None: HF generate in this process, the work split over the ranks. Else (saved model folder, prompts) ->
    (completions, generated tokens or None), called on the main process only, after the epoch's weights are saved to `weights_dir`
    (e.g. vLLM in a child process, `subgen.generate_in_subprocess`); the other ranks wait."""
    weights_dir: str | None = None
    """Scratch folder for the weights `generate` reads (removed after each pass)."""


# -- callbacks --------------------------------------------------------------------------------------
class _Preempted:
    flag = False


def install_sigterm_handler() -> dict[int, Any]:
    """SLURM preemption/time-limit: finish the current step, save a checkpoint, stop. -> the handlers it
    replaced (`restore_signal_handlers` puts them back once training is over)."""
    def handler(signum, frame):
        _Preempted.flag = True
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        try:
            previous[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):  # not the main thread
            pass
    return previous


def restore_signal_handlers(previous: dict[int, Any]) -> None:
    """After training a SIGTERM means "stop now" again (an evaluation has no checkpoint to save)."""
    for sig, old in previous.items():
        try:
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        except (ValueError, OSError):
            pass


def preempted() -> bool:
    return _Preempted.flag


class _Control(TrainerCallback):
    def __init__(self, trainer: "LinguamixTrainer"):
        self.trainer = trainer

    def on_epoch_begin(self, args, state, control, **kw):
        # state.epoch is fractional after a mid-epoch resume (2.4 = in the third epoch)
        self.trainer.sampler.set_epoch(int(math.floor((state.epoch or 0) + 1e-9)))

    def on_step_end(self, args, state, control, **kw):
        if preempted():
            control.should_save = True
            control.should_training_stop = True
        elif self.trainer.save_every_steps and state.global_step % self.trainer.save_every_steps == 0:
            control.should_save = True

    def on_epoch_end(self, args, state, control, **kw):
        # a preempted epoch stops early: checkpoint it (done at the step), but do not select on it
        control.should_evaluate = self.trainer.validation is not None and not preempted()
        control.should_save = self.trainer.save_at_epoch_end


class LinguamixTrainer(SFTTrainer):
    """SFTTrainer with the step plan, the fused padding-free loss and generation-based selection."""

    def __init__(self, *args, examples: list[dict[str, Any]], plan: StepPlan, packed: bool,
                 validation: Validation | None = None, save_every_steps: int | None = None,
                 log_fn: Callable[[dict[str, Any]], None] | None = None, save_at_epoch_end: bool = True,
                 timing_fn: Callable[..., None] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        # validation and checkpoint saves happen inside train(): timed here so that the train stage can
        # tell the training steps' own time from theirs; each is also reported as it happens (timing_fn)
        self.clock, self.timing_fn, self.tokens_trained = Stopwatch(), timing_fn, 0
        self.examples, self.plan, self.packed = examples, plan, packed
        self.sampler = _MicroBatchSampler(plan)
        self.validation, self.save_every_steps, self.log_fn = validation, save_every_steps, log_fn
        self.save_at_epoch_end = save_at_epoch_end
        self.loss_is_scaled_for_ga = True  # our loss is already normalised by the step's tokens
        self.n_matmul_params = None
        self._tokens_since_log = 0
        self._t_last_log = None
        self.peak = peak_flops()
        self.add_callback(_Control(self))
        if self.args.disable_tqdm:  # quiet: our run log has every logged row; don't print dicts too
            from transformers.trainer_callback import PrinterCallback

            self.remove_callback(PrinterCallback)
        if packed:
            fastpath.patch_fused_forward(self.model)

    # data -----------------------------------------------------------------------------------------
    def get_train_dataloader(self):
        pad = self.processing_class.pad_token_id
        return torch.utils.data.DataLoader(
            _MicroBatchDataset(self.examples, self.packed, pad), batch_sampler=self.sampler,
            collate_fn=lambda xs: xs[0], num_workers=0, pin_memory=torch.cuda.is_available())

    def _get_num_items_in_batch(self, batch_samples, device):
        return None  # normalisation is in compute_loss, from host-side counts

    def _prepare_inputs(self, inputs):
        dev = self.args.device  # pinned host memory + non_blocking: the copy does not wait for the device
        return {k: (v.to(dev, non_blocking=True) if torch.is_tensor(v) else v) for k, v in inputs.items()}

    def _track_num_input_tokens(self, inputs):
        self.state.num_input_tokens_seen += inputs["linguamix_meta"]["tokens"]
        self.tokens_trained += inputs["linguamix_meta"]["tokens"]  # this process, this attempt
        self._tokens_since_log += inputs["linguamix_meta"]["tokens"]

    def floating_point_ops(self, inputs):
        if self.n_matmul_params is None:
            from .models import matmul_params

            self.n_matmul_params = matmul_params(self.accelerator.unwrap_model(self.model))
        return 6 * self.n_matmul_params * inputs["linguamix_meta"]["tokens"]

    def _save_checkpoint(self, model, trial):
        t0 = time.perf_counter()
        super()._save_checkpoint(model, trial)
        self._timed("saving", time.perf_counter() - t0, what="checkpoint", step=self.state.global_step)

    def _timed(self, stage: str, seconds: float, **counts: Any) -> None:
        self.clock.add(stage, seconds)
        if self.timing_fn is not None and self.is_world_process_zero():
            self.timing_fn(stage, seconds, **counts)

    # loss -----------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        meta = inputs.pop("linguamix_meta")
        scale = self.accelerator.num_processes / max(meta["step_loss_tokens"], 1)
        if self.packed:
            loss_sum = model(**inputs)
        else:
            out = model(**inputs, use_cache=False)  # HF's own shifted cross-entropy, mean over label tokens
            loss_sum = out.loss * meta["loss_tokens"] if meta["loss_tokens"] else out.logits.sum() * 0.0
        loss = loss_sum * scale
        return (loss, None) if return_outputs else loss

    # logging --------------------------------------------------------------------------------------
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        self._metrics["train"].clear()  # SFTTrainer's metrics come from its own loss, which we replaced
        now = time.perf_counter()
        if "loss" in logs and self._t_last_log is not None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()  # once per logging interval, not per step
                now = time.perf_counter()
            dt = now - self._t_last_log
            tokens = self._tokens_since_log * self.accelerator.num_processes
            logs["tokens_per_s"] = round(tokens / dt, 1)
            if self.peak and self.n_matmul_params:
                logs["mfu"] = round(6 * self.n_matmul_params * tokens / dt / (self.peak * self.accelerator.num_processes), 4)
        if "loss" in logs or self._t_last_log is None:
            self._t_last_log, self._tokens_since_log = now, 0
        super().log(logs, start_time)
        if self.log_fn is not None and self.is_world_process_zero():
            self.log_fn({"step": self.state.global_step, "epoch": self.state.epoch, **logs})

    # selection ------------------------------------------------------------------------------------
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        v = self.validation
        if v is None:
            return {}
        items = [(lang, ex) for lang, exs in v.examples.items() for ex in exs]
        t_gen = time.perf_counter()
        if v.generate is not None:
            completions, new_tokens = self._generate_elsewhere(v, [ex.prompt for _, ex in items])
            texts = dict(enumerate(completions))
        else:
            texts, new_tokens = self._generate_here(v, items)
        generation_s = time.perf_counter() - t_gen
        rows, per_lang = [], {}
        for i, (lang, ex) in enumerate(items):
            s = v.score(texts[i], ex.gold, lang)
            rows.append({"item_id": ex.item_id, "lang": lang, "completion": texts[i], "correct": bool(s.correct)})
            n, c = per_lang.get(lang, (0, 0))
            per_lang[lang] = (n + 1, c + int(bool(s.correct)))
        accs = {lang: c / n for lang, (n, c) in per_lang.items()}
        metrics = {f"{metric_key_prefix}_acc_{lang}": a for lang, a in accs.items()}
        metrics[f"{metric_key_prefix}_avg_acc"] = float(np.mean(list(accs.values())))
        avg = metrics[f"{metric_key_prefix}_avg_acc"]
        # ties keep the earlier (fewer-step) checkpoint
        is_best = avg > v.best_avg
        epoch = int(round(self.state.epoch or 0))
        self._timed("validation", time.perf_counter() - t_gen, epoch=epoch, items=len(items),
                    generated_tokens=new_tokens, generation_s=round(generation_s, 3), backend=v.backend)
        if is_best and v.best_dir:
            t_save = time.perf_counter()
            self.save_model(v.best_dir)  # every rank takes part (FSDP / ZeRO-3 gather the weights)
            self._timed("saving", time.perf_counter() - t_save, what="best", epoch=epoch)
            v.best_avg = avg
        metrics["epoch"] = self.state.epoch
        if v.on_result is not None and self.is_world_process_zero():
            v.on_result({"step": self.state.global_step, "epoch": epoch, "avg_acc": avg,
                         "acc": accs, "n": {lang: n for lang, (n, _) in per_lang.items()}, "is_best": is_best,
                         "backend": v.backend, "generation_s": round(generation_s, 3)}, rows)
        self.log(metrics)
        return metrics

    def _generate_here(self, v: Validation, items: list[tuple[str, Any]]) -> tuple[dict[int, str], int]:
        """HF generate in the training process, each rank on its share of the items.
        -> ({item index: text}, generated tokens over all ranks)"""
        from trl.models.utils import unwrap_model_for_generation

        from .generate import HFGenerator

        with self.accelerator.split_between_processes(list(range(len(items)))) as mine:
            with unwrap_model_for_generation(self.model_wrapped, self.accelerator) as model:
                impl = model.config._attn_implementation
                if impl == fastpath.ATTN_NAME:
                    model.set_attn_implementation("sdpa")  # generation has padding and a KV cache
                try:
                    gens = HFGenerator(model, self.processing_class, batch_size=v.batch_size).generate(
                        [items[i][1].prompt for i in mine], max_new_tokens=v.max_new_tokens, stop=v.stop)
                finally:
                    if impl == fastpath.ATTN_NAME:
                        model.set_attn_implementation(impl)
            local = [(i, g.text, g.n_new_tokens) for i, g in zip(mine, gens)]
        from accelerate.utils import gather_object

        every = gather_object(local) if self.accelerator.num_processes > 1 else local
        return {i: text for i, text, _ in every}, sum(n for _, _, n in every)

    def _generate_elsewhere(self, v: Validation, prompts: list[str]) -> tuple[list[str], int | None]:
        """The epoch's weights saved once (every rank takes part: FSDP / ZeRO-3 gather them), `v.generate`
        on the main process, the completions (or its error) broadcast to the other ranks, which wait."""
        import shutil

        self.save_model(v.weights_dir)
        out: list[Any] = [None]
        if self.is_world_process_zero():
            try:
                out = [("ok", v.generate(v.weights_dir, prompts))]
            except Exception as e:  # every rank raises it, none waits forever
                out = [("error", e if isinstance(e, LinguamixError) else LinguamixError(f"{type(e).__name__}: {e}"))]
            finally:
                shutil.rmtree(v.weights_dir, ignore_errors=True)
        if self.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            broadcast_object_list(out)
        kind, value = out[0]
        if kind == "error":
            raise value
        return value


def process_state():
    """accelerate's process state; on CPU-only machines `torchrun`/`accelerate launch` ranks use gloo
    (without `cpu=True` every rank would believe it is alone)."""
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())

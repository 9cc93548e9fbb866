"""One run, start to finish: train (unless it is the pretrained baseline), select, evaluate the selected
model on the test languages. Every executor runs exactly this, under the run's lock.

    linguamix study run-one CONFIG --run NAME     (what a job runs)
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Any

from ..config import StudyConfig
from ..errors import EXIT_PREEMPTED, LinguamixError
from ..records import RunSpec
from ..runs import run_config
from ..store import RunDir, Store


def execute(cfg: StudyConfig, spec: RunSpec, rd: RunDir, *, progress: bool = True,
            allow_config_change: bool = False, evaluate_test: bool = True) -> int:
    """Run one run to completion. Idempotent: a complete run is skipped, a partial one resumes.
    Returns the process exit code (0, or EXIT_PREEMPTED after a SIGTERM during training)."""
    from .. import train as train_stage
    from ..data.build import load_test
    from ..data.tokenize import load_tokenizer
    from ..evaluate import evaluate, make_generator
    from ..trainer import process_state

    if rd.is_complete():
        return 0
    state = process_state()
    main = state.is_main_process
    if main:
        rd.init(spec.to_dict(), run_config(cfg, spec), allow_config_change=allow_config_change)
    state.wait_for_everyone()
    model_cfg = cfg.model(spec.model)
    # pid and job ids let `study status` tell a live run from one whose process was killed
    with rd.attempt(**_job_ids()) if main else contextlib.nullcontext():
        path = model_cfg.path(cfg.base_dir)
        selected: dict[str, Any] = {}
        if spec.kind == "train":
            res = train_stage.train(cfg, spec, rd, model_path=path, progress=progress)
            if res.preempted:
                if main:
                    rd.set_status("pending", reason="preempted: checkpoint saved; rerun to resume")
                return EXIT_PREEMPTED
            path = str(res.model_dir)
            selected = {"selected_epoch": res.best_epoch, "selected_val_avg_acc": res.best_avg_acc}
        if evaluate_test and main:
            t0 = time.perf_counter()
            test = load_test(cfg, spec.task, cfg.eval.languages)
            rd.log_timing("data", time.perf_counter() - t0, what="test set")
            t0 = time.perf_counter()
            tok = load_tokenizer(path, trust_remote_code=model_cfg.trust_remote_code)
            gen = make_generator(cfg.eval.backend, path, tok, batch_size=cfg.eval.batch_size,
                                 trust_remote_code=model_cfg.trust_remote_code)
            rd.log_timing("model_load", time.perf_counter() - t0, what=f"{cfg.eval.backend} generator")
            t0 = time.perf_counter()
            summary = evaluate(gen, spec.task, test, rd, max_new_tokens=cfg.task(spec.task).max_new_tokens,
                               progress=progress, extra={"model": path, **selected})
            g = summary["generation"]
            rd.log_timing("test_eval", time.perf_counter() - t0, items=summary["n_items"],
                          generated_tokens=g["new_tokens"], generation_s=g["seconds"], backend=g["backend"])
        if main:
            rd.set_status("done" if evaluate_test else "pending", **selected)
    state.wait_for_everyone()
    return 0


def _job_ids() -> dict[str, str]:
    keys = {"SLURM_JOB_ID": "slurm_job_id", "SLURM_ARRAY_JOB_ID": "slurm_array_job_id",
            "SLURM_ARRAY_TASK_ID": "slurm_array_task_id"}
    return {name: os.environ[k] for k, name in keys.items() if os.environ.get(k)}


def run_one(cfg: StudyConfig, spec: RunSpec, *, progress: bool = True, allow_config_change: bool = False) -> int:
    """`execute` under the run's lock (a second process for the same run — an orphan of a killed
    orchestrator still saving its checkpoint, a duplicate job — waits instead of training beside it) and
    with the study's extra languages in the language table."""
    rd = Store(cfg.output_path).run(spec)
    with _run_lock(rd), cfg.language_scope():
        return execute(cfg, spec, rd, progress=progress, allow_config_change=allow_config_change)


LOCK_WAIT_S = 60.0
"""How long a SLURM job waits for the run's lock (the previous holder saving its checkpoint) before it ends."""


class RunBusy(LinguamixError):
    """Another process holds the run: a SLURM job does not sit on its allocation waiting for it."""


@contextlib.contextmanager
def _run_lock(rd: RunDir):
    if int(os.environ.get("RANK", "0")) != 0:  # accelerate/torchrun workers: the main process holds it
        yield
        return
    import fcntl

    rd.path.mkdir(parents=True, exist_ok=True)
    with open(rd.lock_file, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"{rd.path.name}: another process holds this run; waiting for it to finish", file=sys.stderr)
            if os.environ.get("SLURM_JOB_ID"):
                _lock_within(f, LOCK_WAIT_S, rd)
            else:
                fcntl.flock(f, fcntl.LOCK_EX)
        except OSError:  # a file system without locks: go on unlocked
            pass
        yield


def _lock_within(f, seconds: float, rd: RunDir) -> None:
    import fcntl
    import time

    deadline = time.time() + seconds
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.time() >= deadline:
                st = rd.status()
                raise RunBusy(f"another process holds this run after {seconds:.0f} s (status {st.get('state')}, "
                              f"pid {st.get('pid')} on {st.get('host')}, job {st.get('slurm_job_id')}); "
                              "this job ends without running it") from None
            time.sleep(min(1.0, max(0.05, deadline - time.time())))

"""The orchestrator: run every selected run of a study that is not complete on an executor, retrying
failures and requeueing preempted runs, one console line per run event.

    linguamix study run CONFIG [--executor local|slurm] [--max-parallel N] [--only task=math,model=qwen3-8b]

The run store is the only shared state: a run is done when its directory says so, so the orchestrator
can be killed at any moment and rerun; it skips complete runs and resumes the others.
"""
from __future__ import annotations

import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable

from ..config import StudyConfig
from ..errors import EXIT_FAILED, EXIT_OK, EXIT_PREEMPTED, ConfigError
from ..mixtures import Mixture, languages_of
from ..records import RunSpec
from ..runs import changed_runs, describe_changed, run_hash, select
from ..store import Store
from .executors import Executor, Job, Outcome, make_job
from ..timing import format_seconds

MAX_PREEMPTIONS = 10
"""Requeues of one run after preemption within one `study run` (they do not count as failures)."""


@dataclass
class StudyReport:
    selected: int
    skipped: int
    """Runs that were complete before this invocation."""
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """Run name -> reason, after the last retry."""
    pending: dict[str, str] = field(default_factory=dict)
    """Runs left unfinished (stopped or preempted too often) -> why."""
    cancelled: dict[str, str] = field(default_factory=dict)
    """Runs a user cancelled on the cluster (now, or before this invocation) -> why."""
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.failed else EXIT_PREEMPTED if self.pending or self.cancelled else EXIT_OK


CHANGED = ("refuse", "rerun", "accept")
"""What `study run` does with runs made under another configuration (`--rerun-changed`, `--accept-changed`)."""


def run_study(cfg: StudyConfig, config_path: str, executor: Executor, *, only: dict[str, set[str]] | None = None,
              max_retries: int | None = None, changed: str = "refuse", progress: bool = True,
              poll_s: float = 0.5, prepare_data: bool = True, retry_cancelled: bool = False,
              out=None) -> StudyReport:
    """Run every selected run that is not complete on `executor`, retrying failures up to `max_retries`
    times; print a line per start and finish, and return the report (whose exit_code the CLI returns).
    Runs made under another configuration are refused (ConfigError listing them and what changed), redone
    from scratch (`changed="rerun"`; the old directory is kept under `replaced/`) or kept (`"accept"`). Runs a
    user cancelled on the cluster are left alone unless `retry_cancelled`."""
    out = out or sys.stderr
    console = _Console(out, progress)
    say = console.say
    t0 = time.time()
    store = Store(cfg.output_path)
    specs = select(cfg, only)
    accepted = _settle_changed(cfg, config_path, specs, store, changed, say)
    todo = sorted((s for s in specs if not store.run(s).is_complete()), key=lambda s: -_work(cfg, s))
    report = StudyReport(selected=len(specs), skipped=len(specs) - len(todo))
    if not retry_cancelled:
        st = {s.name: store.run(s).status() for s in todo}
        report.cancelled = {n: v.get("reason") or "cancelled" for n, v in st.items() if v.get("state") == "cancelled"}
        todo = [s for s in todo if s.name not in report.cancelled]
    left = (f"{len(report.cancelled)} cancelled (skipped; --retry-cancelled runs them), " if report.cancelled
            else "")
    say(f"study {cfg.name}: {len(specs)} runs selected, {report.skipped} complete (skipped), {left}{len(todo)} to "
        f"run on {executor.name}")
    if not todo:
        return report
    if prepare_data:
        prepare(cfg, todo, store, progress=progress, say=say)
    console.open_bar(len(todo), f"study {cfg.name}")
    loop = _Loop(cfg, store, executor, report, say, t0, retry_cancelled=retry_cancelled,
                 retries=cfg.executor.max_retries if max_retries is None else max_retries, todo=todo)
    queue = deque(make_job(cfg, config_path, s, store.run(s), executor=executor,
                           allow_config_change=s.name in accepted, progress=progress) for s in todo)
    active: dict[Any, Job] = dict(executor.adopt(list(queue)))
    if active:  # jobs an earlier orchestrator submitted are still queued or running: wait for them
        names = {job.spec.name for job in active.values()}
        queue = deque(job for job in queue if job.spec.name not in names)
        say(f"study: waiting for {len(active)} job(s) submitted earlier and still on the cluster")
    try:
        while queue or active:
            batch = [queue.popleft() for _ in range(executor.admit(list(queue)))]
            for handle, job in zip(executor.submit(batch, on_start=loop.on_start), batch):
                active[handle] = job
            stop = False
            for handle in list(active):
                outcome = executor.poll(handle)
                if outcome is not None:
                    job = active.pop(handle)
                    again, stop_now = loop.settle(job, outcome)
                    queue.extend([job] if again else [])
                    console.advance(0 if again else 1, report)
                    stop = stop or stop_now
            if stop or (queue and not active and executor.admit(list(queue)) == 0):  # stopped, or nothing can start
                for job in queue:
                    report.pending[job.spec.name] = "not started: the study was stopped"
                queue.clear()
            elif active:
                executor.wait(poll_s)
    except KeyboardInterrupt:
        say("study: interrupted" + (f"; stopping {len(active)} active run(s) (a training run saves a checkpoint)"
                                    if active else "; rerun `linguamix study run` to resume"))
        executor.stop()
        console.close()
        raise
    console.close()
    report.seconds = round(time.time() - t0, 1)
    _final(report, say)
    return report


def _settle_changed(cfg: StudyConfig, config_path: str, specs: list[RunSpec], store: Store, changed: str,
                    say: Callable[[str], None]) -> set[str]:
    """Deal with runs of another configuration before anything starts; -> names of accepted unfinished runs
    (their jobs continue under the new configuration)."""
    if changed not in CHANGED:
        raise ValueError(f"changed must be one of {CHANGED}")
    drift = changed_runs(cfg, specs, store)
    if not drift:
        return set()
    if changed == "refuse":
        raise ConfigError(f"{config_path}: {describe_changed(drift)}; redo them with --rerun-changed, or keep their "
                          "results with --accept-changed")
    for c in drift:
        rd = store.run(c.spec)
        if changed == "rerun":
            say(f"study: {c.spec.name}: config changed ({', '.join(c.fields)}); old results kept in "
                f"{rd.set_aside(store.replaced)}, redoing it")
        else:
            rd.accept_config(run_hash(cfg, c.spec), list(c.fields))
            say(f"study: {c.spec.name}: config changed ({', '.join(c.fields)}); its results are kept (--accept-changed)")
    return {c.spec.name for c in drift if changed == "accept" and not c.complete}


class _Console:
    """The orchestrator's console: one line per run event, printed above one progress bar for the whole
    study (runs settled / runs to run; the bar only where `progress` and the output is a terminal).
    The runs' own output goes to their logs (executors)."""

    def __init__(self, out, progress: bool):
        self.out, self.progress, self.bar = out, progress, None

    def open_bar(self, total: int, desc: str) -> None:
        isatty = getattr(self.out, "isatty", lambda: False)()
        if self.progress and isatty and total:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="run", file=self.out, dynamic_ncols=True, leave=True)

    def say(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.write(msg, file=self.out)
        else:
            print(msg, file=self.out, flush=True)

    def advance(self, n: int, report: StudyReport) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"{len(report.done)} done, {len(report.failed)} failed", refresh=False)
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class _Loop:
    """What the orchestrator says and decides when a job starts and when it ends."""

    def __init__(self, cfg, store: Store, executor: Executor, report: StudyReport, say, t0: float, *,
                 retries: int, todo: list[RunSpec], retry_cancelled: bool = False):
        self.cfg, self.store, self.executor, self.report, self.say, self.t0 = cfg, store, executor, report, say, t0
        self.retries, self.retry_cancelled = retries, retry_cancelled
        self.index = {s.name: i for i, s in enumerate(todo, 1)}
        self.width = len(str(len(todo)))
        self.failures: Counter = Counter()
        self.preemptions: Counter = Counter()
        self.started: dict[str, float] = {}

    def tag(self, name: str) -> str:
        return f"[{self.index[name]:>{self.width}}/{len(self.index)}]"

    def on_start(self, job: Job, where: str) -> None:
        attempt = int(self.store.run(job.spec).status().get("attempts", 0)) + 1
        self.say(f"{self.tag(job.spec.name)} {'start':<8} {job.spec.name} (attempt {attempt})"
                 f"{' ' + where if where else ''}")
        self.started[job.spec.name] = time.time()

    def settle(self, job: Job, outcome: Outcome) -> tuple[bool, bool]:
        """Record how a job ended -> (queue it again?, stop the study?)."""
        name, say, tag = job.spec.name, self.say, self.tag(job.spec.name)
        st = self.store.run(job.spec).status()
        took = st.get("elapsed_s") or round(time.time() - self.started.get(name, self.t0), 1)
        if outcome.state == "done":
            self.report.done.append(name)
            say(f"{tag} {'done':<8} {name} {format_seconds(took)}")
            return False, False
        if outcome.state == "cancelled" and not self.retry_cancelled:
            self.report.cancelled[name] = outcome.reason or "cancelled"
            say(f"{tag} {'cancel':<8} {name}: {outcome.reason or 'cancelled'}")
            return False, False
        if outcome.state in ("preempted", "cancelled"):
            self.preemptions[name] += 1
            inline = self.executor.kind == "inline"
            if inline or self.preemptions[name] > MAX_PREEMPTIONS:
                # inline: this very process was asked to stop; elsewhere: preempted too often
                self.report.pending[name] = outcome.reason or "preempted"
                say(f"{tag} {'stopped':<8} {name}: {outcome.reason or 'preempted'}")
                return False, inline
            why = "cancelled; --retry-cancelled" if outcome.state == "cancelled" else outcome.reason or "preempted"
            say(f"{tag} {'requeue':<8} {name}: {why} ({self.preemptions[name]})")
            return True, False
        can_retry = outcome.retryable and self.failures[name] < self.retries
        self.failures[name] += 1
        say(f"{tag} {'failed':<8} {name} {format_seconds(took)}: {outcome.reason}"
            + (f" (retry {self.failures[name]}/{self.retries})" if can_retry else ""))
        if not can_retry:
            self.report.failed[name] = outcome.reason or "failed"
        return can_retry, False


def prepare(cfg: StudyConfig, specs: list[RunSpec], store: Store, *, progress: bool = False,
            say: Callable[[str], None] = print) -> None:
    """Build the training data of the runs once, here, before any job starts: parallel jobs would
    otherwise tokenize the same pool side by side (results identical, work wasted)."""
    from ..data.build import build_all
    from ..data.tokenize import load_tokenizer, tokenizer_fingerprint

    needs: dict[str, tuple[Any, str, dict[str, set[str]]]] = {}  # tokenizer -> (tok, model, {task: mixtures})
    for model in cfg.models:
        train = [s for s in specs if s.model == model.short_name and s.kind == "train"]
        if not train:
            continue
        tok = load_tokenizer(model.path(cfg.base_dir), trust_remote_code=model.trust_remote_code,
                             revision=model.revision)
        entry = needs.setdefault(tokenizer_fingerprint(tok), (tok, model.short_name, {}))
        for s in train:
            entry[2].setdefault(s.task, set()).add(s.mixture)
    for tok, name, by_task in needs.values():
        for task, mixtures in by_task.items():
            build_all(cfg, task, tok, store, [Mixture.from_id(m) for m in sorted(mixtures)], progress=progress)
            say(f"data: {task} ({len(mixtures)} mixture(s)) ready for the tokenizer of {name}")


def _work(cfg: StudyConfig, spec: RunSpec) -> float:
    """A run's relative cost, to start the longest runs first (with a fixed number of workers this
    keeps one 10-language run from finishing alone at the end); stable order among equals."""
    if spec.kind == "baseline":
        return 0.0
    task = cfg.tasks[spec.task]
    return len(languages_of(spec.mixture)) * (task.train_per_lang or 1) * task.max_length


def _final(report: StudyReport, say: Callable[[str], None]) -> None:
    cancelled = f", {len(report.cancelled)} cancelled" if report.cancelled else ""
    say(f"study: {report.selected} runs: {report.skipped + len(report.done)} done ({report.skipped} were complete), "
        f"{len(report.failed)} failed, {len(report.pending)} pending{cancelled}; {format_seconds(report.seconds)}")
    for name, reason in report.failed.items():
        say(f"  failed  {name}: {reason}")
    for name, reason in report.pending.items():
        say(f"  pending {name}: {reason}")
    for name, reason in report.cancelled.items():
        say(f"  cancelled {name}: {reason}")

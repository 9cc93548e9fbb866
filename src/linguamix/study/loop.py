"""The study: expand a config into runs (models x tasks x mixtures x seeds, plus one pretrained baseline
per model x task), run them to completion with an executor, and report their state and compute.

    linguamix plan CONFIG                       every run, its state, its training tokens, FLOPs, GPU-hours
    linguamix study run CONFIG [--executor local|slurm] [--max-parallel N] [--only task=math,model=qwen3-8b]
    linguamix study status CONFIG [--format table|json|csv]

The run store is the only shared state: a run is done when its directory says so, so the orchestrator
can be killed at any moment and rerun; it skips complete runs and resumes the others.
"""
from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable

from .config import StudyConfig, config_hash
from .errors import ConfigError
from .mixtures import PRETRAINED, Mixture
from .records import RunSpec
from .store import RunDir, Store, read_json

H100_PEAK_FLOPS = 989e12
"""Dense BF16 tensor-core peak of an H100 (no sparsity): the physical floor of the GPU-hour estimate."""
MAX_PREEMPTIONS = 10
"""Requeues of one run after preemption within one `study run` (they do not count as failures)."""


# -- the design ---------------------------------------------------------------------------------------
def expand(cfg: StudyConfig) -> list[RunSpec]:
    """Every run of the study, baselines first within each (model, task)."""
    runs: list[RunSpec] = []
    mixtures = cfg.mixture_list()
    for model in cfg.models:
        for task in cfg.tasks:
            # Greedy decoding makes the base model's evaluation seed-free: one baseline per model x task.
            runs.append(RunSpec(model=model.short_name, task=task, mixture=PRETRAINED, seed=cfg.seeds[0]))
            for mixture in mixtures:
                for seed in cfg.seeds:
                    runs.append(RunSpec(model=model.short_name, task=task, mixture=mixture.id, seed=seed))
    return runs


def run_config(cfg: StudyConfig, spec: RunSpec) -> dict[str, Any]:
    """The part of the study config that determines this run's result (hashed into its manifest)."""
    out: dict[str, Any] = {
        "study": cfg.name,
        "model": cfg.model(spec.model).model_dump(mode="json"),
        "task": cfg.task(spec.task).model_dump(mode="json"),
        "eval": cfg.eval.model_dump(mode="json"),
        "seed": spec.seed,
    }
    if spec.kind == "train":
        out["mixture"] = Mixture.from_id(spec.mixture).languages
        out["train"] = cfg.train.model_dump(mode="json")
    return out


def run_hash(cfg: StudyConfig, spec: RunSpec) -> str:
    """The config hash RunDir.init stores for this run under the current config."""
    return config_hash({"spec": spec.to_dict(), "config": run_config(cfg, spec)})


ONLY_KEYS = ("model", "task", "mixture", "kind", "seed")


def parse_only(values: list[str] | None) -> dict[str, set[str]]:
    """`--only task=math,model=a|b` (repeatable; `|` separates alternatives) -> {key: allowed values}."""
    out: dict[str, set[str]] = {}
    for value in values or []:
        for part in filter(None, (p.strip() for p in value.split(","))):
            key, sep, alts = part.partition("=")
            key = {"mix": "mixture"}.get(key.strip(), key.strip())
            if not sep or key not in ONLY_KEYS or not alts.strip():
                raise ConfigError(f"--only {value!r}: expected KEY=VALUE[|VALUE...] with KEY one of "
                                  f"{', '.join(ONLY_KEYS)} (got {part!r})")
            out.setdefault(key, set()).update(a.strip() for a in alts.split("|") if a.strip())
    return out


def select(cfg: StudyConfig, only: dict[str, set[str]] | None = None) -> list[RunSpec]:
    """The runs of the design that match every `--only` key; a value that matches nothing is an error."""
    specs = expand(cfg)
    for key, allowed in (only or {}).items():
        have = {_field(s, key) for s in specs}
        if key == "mixture":  # accept the languages in any order: `es+en` means `en+es`
            allowed = {a if a == PRETRAINED else Mixture.from_id(a).id for a in allowed}
        unknown = sorted(allowed - have)
        if unknown:
            raise ConfigError(f"--only {key}={'|'.join(unknown)}: not in the design (have: "
                              f"{', '.join(sorted(have)[:12])}{' ...' if len(have) > 12 else ''})")
        specs = [s for s in specs if _field(s, key) in allowed]
    return specs


def _field(spec: RunSpec, key: str) -> str:
    return str(getattr(spec, key))


# -- the state of the runs ----------------------------------------------------------------------------
def run_state(cfg: StudyConfig, spec: RunSpec, rd: RunDir) -> dict[str, Any]:
    """The run's status.json, with the state a reader should act on: a `running` run whose process is gone
    (a killed orchestrator) is pending and resumable; a `done` run with another config is flagged."""
    st = dict(rd.status())
    state = st.get("state", "pending")
    if state == "running" and not _alive(st):
        st["state"] = "pending"
        st["reason"] = (f"interrupted (process {st.get('pid')} on {st.get('host')} is gone); "
                        "resumes on the next `study run`")
    elif state == "done" and not rd.is_complete():
        st["state"], st["reason"] = "pending", "marked done but its test summary is missing"
    if st["state"] == "done":
        old = rd.manifest().get("config_hash")
        if old and old != run_hash(cfg, spec):
            st["reason"] = f"config changed since this run (hash {old}); kept, not rerun"
    return st


def _alive(st: dict[str, Any]) -> bool:
    """Whether the process that marked a run `running` may still run it (only checkable on its own host)."""
    pid, host = st.get("pid"), st.get("host")
    if not pid or host != platform.node():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):
        return True
    try:  # a killed process nobody has reaped yet is a zombie: gone all the same
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def status_rows(cfg: StudyConfig, specs: list[RunSpec] | None = None,
                store: Store | None = None) -> list[dict[str, Any]]:
    """One row per run: name, kind, model, task, mixture, seed, state, attempts, elapsed_s, reason, host."""
    store = store or Store(cfg.output_path)
    now = time.time()
    rows = []
    for spec in specs if specs is not None else expand(cfg):
        st = run_state(cfg, spec, store.run(spec))
        elapsed = st.get("elapsed_s")
        if st["state"] == "running" and st.get("started_unix"):
            elapsed = round(now - st["started_unix"], 1)
        rows.append({"name": spec.name, "kind": spec.kind, "model": spec.model, "task": spec.task,
                     "mixture": spec.mixture, "seed": spec.seed, "state": st["state"],
                     "attempts": int(st.get("attempts", 0)), "elapsed_s": elapsed, "reason": st.get("reason"),
                     "host": st.get("host"), "updated": st.get("updated")})
    return rows


def summary_line(rows: list[dict[str, Any]]) -> str:
    n = Counter(r["state"] for r in rows)
    return (f"{len(rows)} runs: {n['done']} done, {n['running']} running, {n['failed']} failed, "
            f"{n['pending']} pending")


def plan_rows(cfg: StudyConfig, store: Store | None = None) -> list[dict[str, Any]]:
    store = store or Store(cfg.output_path)
    rows = []
    for spec in expand(cfg):
        st = run_state(cfg, spec, store.run(spec))
        model = cfg.model(spec.model)
        langs = [] if spec.kind == "baseline" else list(Mixture.from_id(spec.mixture).languages)
        rows.append({
            "name": spec.name, "kind": spec.kind, "model": spec.model, "model_id": model.id,
            "family": model.family, "size_b": model.size_b, "task": spec.task, "mixture": spec.mixture,
            "languages": langs, "n_languages": len(langs), "seed": spec.seed,
            "status": st.get("state", "pending"),
        })
    return rows


# -- compute: tokens, FLOPs, GPU-hours ----------------------------------------------------------------
@dataclass(frozen=True)
class ComputePlan:
    runs: dict[str, dict[str, Any]]
    """Run name -> train_tokens, flops, gpu_hours_floor, gpu_hours_at_measured_mfu, measured_mfu,
    matmul_params, compute_source."""
    totals: dict[str, Any]
    notes: tuple[str, ...] = ()


def compute_plan(cfg: StudyConfig, store: Store | None = None, *, build_data: bool = False,
                 progress: bool = False) -> ComputePlan:
    """Training compute of every run: T = epochs x the tokens of the mixture's training split (from the
    data manifests), N = matmul parameters, FLOPs = 6 N T, GPU-hours at 100 % of an H100's 989 TFLOP/s and
    at the MFU that finished runs of the same model measured. Never downloads anything: a model whose
    tokenizer is not on this machine gets `null` compute and a note (unless `build_data`, which may)."""
    store = store or Store(cfg.output_path)
    unavailable: dict[str, list[str]] = {}
    per_model: dict[str, dict[str, Any]] = {}
    for model in cfg.models:
        tok, n_params, n_source, why = _model_facts(cfg, model, allow_download=build_data)
        if why:
            unavailable.setdefault(why, []).append(model.short_name)
        per_model[model.short_name] = {"tok": tok, "n": n_params, "n_source": n_source,
                                       "mfu": _measured_mfu(cfg, model.short_name, store)}
    notes = [f"{', '.join(names)}: {why}" for why, names in unavailable.items()]
    # per (model, task): tokens of each training language's copy of the selected items
    lang_tokens: dict[tuple[str, str], dict[str, dict[str, int]]] = {}
    missing_data: set[tuple[str, str]] = set()
    for name, facts in per_model.items():
        for task in cfg.tasks:
            known: dict[str, dict[str, int]] = {}
            if facts["tok"] is not None:  # (data.build imports torch: only when there is data to look at)
                from .data.build import data_dir, ensure_mixture, training_languages

                langs = training_languages(cfg)
                d = data_dir(cfg, task, facts["tok"], store, langs)
                for m in cfg.mixture_list():
                    if build_data and not d.has_mixture(m.id):
                        ensure_mixture(cfg, task, m, facts["tok"], store, progress=progress)
                    if d.has_mixture(m.id):
                        split = read_json(d.manifest_file(m.id))["splits"]["train"]
                        per_lang = int(split["examples_per_language"])
                        for lang, stats in split["tokens"].items():
                            known[lang] = {"tokens": int(stats["total"]), "examples": per_lang}
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
            mix = Mixture.from_id(spec.mixture).languages
            if facts["tok"] is None:
                row["compute_source"] = "unavailable: tokenizer not on this machine"
            elif not all(lang in known for lang in mix):
                row["compute_source"] = "unavailable: data not built (`linguamix data build` or --build-data)"
                missing_data.add((spec.model, spec.task))
            else:
                per_epoch = sum(known[lang]["tokens"] for lang in mix)
                tokens = tc.epochs * per_epoch
                if tc.max_steps:  # a step-capped run sees a fraction of its epochs
                    n_ex = sum(known[lang]["examples"] for lang in mix)
                    steps = tc.epochs * -(-n_ex // min(tc.global_batch_size, n_ex))
                    tokens = round(tokens * min(1.0, tc.max_steps / steps))
                flops = 6.0 * facts["n"] * tokens
                row.update(train_tokens=int(tokens), flops=flops,
                           gpu_hours_floor=flops / H100_PEAK_FLOPS / 3600,
                           compute_source=f"data manifest; N from {facts['n_source']}")
                if facts["mfu"]:
                    row["gpu_hours_at_measured_mfu"] = row["gpu_hours_floor"] / facts["mfu"]
        runs[spec.name] = row
    if missing_data:
        notes.append(f"training data not built for {len(missing_data)} model x task pair(s): "
                     "run `linguamix data build` or `plan --build-data`")
    return ComputePlan(runs, _totals(runs), tuple(notes))


def _totals(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    train = [r for r in runs.values() if not str(r["compute_source"]).startswith("baseline")]
    have = [r for r in train if r["flops"] is not None]
    measured = [r for r in have if r["gpu_hours_at_measured_mfu"] is not None]
    return {"training_runs": len(train), "runs_with_compute": len(have),
            "train_tokens": sum(r["train_tokens"] for r in have) if have else None,
            "flops": sum(r["flops"] for r in have) if have else None,
            "gpu_hours_floor": sum(r["gpu_hours_floor"] for r in have) if have else None,
            "runs_with_measured_mfu": len(measured),
            "gpu_hours_at_measured_mfu": sum(r["gpu_hours_at_measured_mfu"] for r in measured) if measured else None,
            "peak_flops_per_gpu": H100_PEAK_FLOPS}


def _model_facts(cfg: StudyConfig, model, *, allow_download: bool) -> tuple[Any, int, str, str | None]:
    """(tokenizer or None, matmul params N, where N came from, why something is unavailable)."""
    ident = _local_model(cfg, model, build=allow_download)
    if ident is None and not allow_download:
        return None, int(model.size_b * 1e9), "size_b", "tokenizer and config not on this machine (offline?): " \
            "compute unavailable; N falls back to size_b"
    ident = ident or model.id
    kw = {"trust_remote_code": model.trust_remote_code, "revision": model.revision,
          "local_files_only": not allow_download}
    why = None
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(ident, **kw)
        if tok.pad_token_id is None:  # as models.load_tokenizer does, so the data cache key is the same
            tok.pad_token = tok.eos_token
    except (OSError, ValueError) as e:
        tok, why = None, f"tokenizer not loadable ({(str(e).splitlines() or [''])[0][:120]})"
    try:
        n, source = _matmul_params_from_config(ident, **kw), "model config"
    except (OSError, ValueError) as e:
        n, source = int(model.size_b * 1e9), "size_b"
        why = why or f"config not loadable ({(str(e).splitlines() or [''])[0][:120]}); N from size_b"
    return tok, n, source, why


def _local_model(cfg: StudyConfig, model, *, build: bool) -> str | None:
    """The model's local folder or cached hub snapshot, without touching the network; None if neither."""
    path = cfg.resolve_path(model.id)
    if model.build == "tiny":
        if not path.exists() and not build:
            return None
        from .models import model_path

        return model_path(model, cfg.base_dir)
    if path.exists():
        return str(path)
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(model.id, "config.json", revision=model.revision)
    except ValueError:  # not a valid repo id (a missing local path)
        return None
    return model.id if isinstance(hit, str) else None


def _matmul_params_from_config(ident: str, **kw) -> int:
    """N of 6NT from the config alone (meta device, no weights): every weight that multiplies activations;
    the input embedding counts only when it is tied to the LM head."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(ident, **kw)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config.get_text_config(),
                                                 trust_remote_code=kw.get("trust_remote_code", False))
    total = sum(p.numel() for p in model.parameters())  # a tied matrix is counted once
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings()
    return total if head is not None and head.weight is emb else total - emb.numel()


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


# -- one run ------------------------------------------------------------------------------------------
def execute(cfg: StudyConfig, spec: RunSpec, rd, *, progress: bool = True, allow_config_change: bool = False,
            evaluate_test: bool = True) -> int:
    """Run one run to completion: train (unless it is the pretrained baseline), select, evaluate the
    selected model on the test languages. Idempotent: a complete run is skipped, a partial one resumes.
    Returns the process exit code (0, or train.EXIT_PREEMPTED after a SIGTERM)."""
    from .trainer import process_state

    from . import train as train_stage
    from .data.build import load_test
    from .evaluate import evaluate, make_generator
    from .models import load_tokenizer, model_path

    if rd.is_complete():
        return 0
    state = process_state()
    if state.is_main_process:
        rd.init(spec.to_dict(), run_config(cfg, spec), allow_config_change=allow_config_change)
        # pid and job ids let `study status` tell a live run from one whose process was killed
        rd.set_status("running", pid=os.getpid(), **_job_ids())
    state.wait_for_everyone()
    try:
        model_cfg = cfg.model(spec.model)
        path = model_path(model_cfg, cfg.base_dir)
        selected: dict = {}
        if spec.kind == "train":
            res = train_stage.train(cfg, spec, rd, model_path=path, progress=progress)
            if res.preempted:
                if state.is_main_process:
                    rd.set_status("pending", reason="preempted: checkpoint saved; rerun to resume")
                return train_stage.EXIT_PREEMPTED
            path = str(res.model_dir)
            selected = {"selected_epoch": res.best_epoch, "selected_val_avg_acc": res.best_avg_acc}
        if evaluate_test and state.is_main_process:
            tok = load_tokenizer(path, trust_remote_code=model_cfg.trust_remote_code)
            test = load_test(cfg, spec.task, cfg.eval.languages)
            gen = make_generator(cfg.eval.backend, path, tok, batch_size=cfg.eval.batch_size,
                                 trust_remote_code=model_cfg.trust_remote_code)
            evaluate(gen, spec.task, test, rd, max_new_tokens=cfg.task(spec.task).max_new_tokens,
                     progress=progress, extra={"model": path, **selected})
        if state.is_main_process:
            rd.set_status("done" if evaluate_test else "pending", **selected)
        state.wait_for_everyone()
        return 0
    except BaseException as e:
        if state.is_main_process and not isinstance(e, KeyboardInterrupt):
            rd.set_status("failed", reason=f"{type(e).__name__}: {e}".splitlines()[0][:500])
        raise


def _job_ids() -> dict[str, str]:
    keys = {"SLURM_JOB_ID": "slurm_job_id", "SLURM_ARRAY_JOB_ID": "slurm_array_job_id",
            "SLURM_ARRAY_TASK_ID": "slurm_array_task_id"}
    return {name: os.environ[k] for k, name in keys.items() if os.environ.get(k)}


def find_run(cfg: StudyConfig, name: str) -> RunSpec:
    for spec in expand(cfg):
        if spec.name == name:
            return spec
    raise ConfigError(f"--run {name!r}: no such run in the study '{cfg.name}' (see `linguamix plan`)")


def run_one(cfg: StudyConfig, spec: RunSpec, *, progress: bool = True, allow_config_change: bool = False) -> int:
    """`execute` under the run's lock: a second process for the same run (an orphan of a killed
    orchestrator still saving its checkpoint, a duplicate job) waits instead of training beside it."""
    rd = Store(cfg.output_path).run(spec)
    with _run_lock(rd):
        return execute(cfg, spec, rd, progress=progress, allow_config_change=allow_config_change)


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
            fcntl.flock(f, fcntl.LOCK_EX)
        except OSError:  # a file system without locks: go on unlocked
            pass
        yield


# -- the orchestrator ---------------------------------------------------------------------------------
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
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        from .train import EXIT_PREEMPTED

        return 1 if self.failed else EXIT_PREEMPTED if self.pending else 0


def prepare(cfg: StudyConfig, specs: list[RunSpec], store: Store, *, progress: bool = False,
            say: Callable[[str], None] = print) -> None:
    """Build the models (`build: tiny`) and the training data of the runs once, here, before any job starts:
    parallel jobs would otherwise tokenize the same pool side by side (results identical, work wasted)."""
    from .data.build import build_all
    from .models import load_tokenizer, model_path, tokenizer_fingerprint

    needs: dict[str, tuple[Any, str, dict[str, set[str]]]] = {}  # tokenizer -> (tok, model, {task: mixtures})
    for model in cfg.models:
        mine = [s for s in specs if s.model == model.short_name]
        if not mine:
            continue
        path = model_path(model, cfg.base_dir)  # a `build: tiny` model is made once, here
        train = [s for s in mine if s.kind == "train"]
        if not train:
            continue
        tok = load_tokenizer(path, trust_remote_code=model.trust_remote_code, revision=model.revision)
        entry = needs.setdefault(tokenizer_fingerprint(tok), (tok, model.short_name, {}))
        for s in train:
            entry[2].setdefault(s.task, set()).add(s.mixture)
    for tok, name, by_task in needs.values():
        for task, mixtures in by_task.items():
            build_all(cfg, task, tok, store, [Mixture.from_id(m) for m in sorted(mixtures)], progress=progress)
            say(f"data: {task} ({len(mixtures)} mixture(s)) ready for the tokenizer of {name}")


def _work(cfg: StudyConfig, spec) -> float:
    """A run's relative cost, to start the longest runs first (with a fixed number of workers this
    keeps one 10-language run from finishing alone at the end); stable order among equals."""
    if spec.kind == "baseline":
        return 0.0
    task = cfg.tasks[spec.task]
    return (spec.mixture.count("+") + 1) * (task.train_per_lang or 1) * task.max_length


def run_study(cfg: StudyConfig, config_path: str, executor, *, only: dict[str, set[str]] | None = None,
              max_retries: int | None = None, allow_config_change: bool = False, progress: bool = True,
              poll_s: float = 0.5, prepare_data: bool = True, out=None) -> StudyReport:
    """Run every selected run that is not complete on `executor`, retrying failures up to `max_retries`
    times; print a line per start and finish, and return the report (whose exit_code the CLI returns)."""
    from .executors import make_job

    out = out or sys.stderr
    say = lambda msg: print(msg, file=out, flush=True)  # noqa: E731
    t0 = time.time()
    store = Store(cfg.output_path)
    specs = select(cfg, only)
    todo = sorted((s for s in specs if not store.run(s).is_complete()), key=lambda s: -_work(cfg, s))
    report = StudyReport(selected=len(specs), skipped=len(specs) - len(todo))
    say(f"study {cfg.name}: {len(specs)} runs selected, {report.skipped} complete (skipped), {len(todo)} to run "
        f"on {executor.name}")
    if not todo:
        return report
    if prepare_data:
        prepare(cfg, todo, store, progress=progress, say=say)
    retries = cfg.executor.max_retries if max_retries is None else max_retries
    index = {s.name: i for i, s in enumerate(todo, 1)}
    tag = lambda name: f"[{index[name]:>{len(str(len(todo)))}}/{len(todo)}]"  # noqa: E731
    queue = deque(make_job(cfg, config_path, s, store.run(s), executor=executor,
                           allow_config_change=allow_config_change, progress=progress) for s in todo)
    active: dict[Any, Any] = dict(executor.adopt(list(queue))) if hasattr(executor, "adopt") else {}
    if active:  # jobs an earlier orchestrator submitted are still queued or running: wait for them
        names = {job.spec.name for job in active.values()}
        queue = deque(job for job in queue if job.spec.name not in names)
        say(f"study: waiting for {len(active)} job(s) submitted earlier and still on the cluster")
    failures: Counter = Counter()
    preemptions: Counter = Counter()
    started: dict[str, float] = {}

    def on_start(job, where: str) -> None:
        attempt = int(store.run(job.spec).status().get("attempts", 0)) + 1
        say(f"{tag(job.spec.name)} {'start':<8} {job.spec.name} (attempt {attempt}){' ' + where if where else ''}")
        started[job.spec.name] = time.time()

    try:
        while queue or active:
            n = executor.admit(list(queue))
            batch = [queue.popleft() for _ in range(n)]
            for handle, job in zip(executor.submit(batch, on_start=on_start), batch):
                active[handle] = job
            stop = False
            for handle in list(active):
                outcome = executor.poll(handle)
                if outcome is None:
                    continue
                job = active.pop(handle)
                name = job.spec.name
                st = store.run(job.spec).status()
                took = st.get("elapsed_s") or round(time.time() - started.get(name, t0), 1)
                if outcome.state == "done":
                    report.done.append(name)
                    say(f"{tag(name)} {'done':<8} {name} {format_seconds(took)}")
                elif outcome.state == "preempted":
                    preemptions[name] += 1
                    if executor.kind == "inline" or preemptions[name] > MAX_PREEMPTIONS:
                        # inline: this very process was asked to stop; elsewhere: preempted too often
                        report.pending[name] = outcome.reason or "preempted"
                        say(f"{tag(name)} {'stopped':<8} {name}: {outcome.reason or 'preempted'}")
                        stop = stop or executor.kind == "inline"
                    else:
                        say(f"{tag(name)} {'requeue':<8} {name}: preempted ({preemptions[name]})")
                        queue.append(job)
                else:
                    can_retry = outcome.retryable and failures[name] < retries
                    failures[name] += 1
                    say(f"{tag(name)} {'failed':<8} {name} {format_seconds(took)}: {outcome.reason}"
                        + (f" (retry {failures[name]}/{retries})" if can_retry else ""))
                    if can_retry:
                        queue.append(job)
                    else:
                        report.failed[name] = outcome.reason or "failed"
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
        raise
    report.seconds = round(time.time() - t0, 1)
    _final(report, say)
    return report


def _final(report: StudyReport, say: Callable[[str], None]) -> None:
    say(f"study: {report.selected} runs: {report.skipped + len(report.done)} done ({report.skipped} were complete), "
        f"{len(report.failed)} failed, {len(report.pending)} pending; {format_seconds(report.seconds)}")
    for name, reason in report.failed.items():
        say(f"  failed  {name}: {reason}")
    for name, reason in report.pending.items():
        say(f"  pending {name}: {reason}")


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{seconds:.1f}s"

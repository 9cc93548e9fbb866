"""Study orchestration without training: run selection, run state, the retry/requeue logic of the
orchestrator (scripted executor), how a job's end is judged, the subprocess executor's plumbing (fake
commands), and `plan`/`status` on the paper's config. The SLURM executor: tests/test_slurm*.py."""
import io
import json
import os
import re
import subprocess
import sys
import time

import pytest
import yaml

from linguamix.cli import main
from linguamix.config import load_config
from linguamix.errors import ConfigError
from linguamix.study.executors.base import Job, Outcome, classify, make_job, resolve_accelerate_config, run_command
from linguamix.study.executors.local import ProcessExecutor
from linguamix.store import Store
from linguamix.runs import expand, parse_only, run_config, select
from linguamix.study.loop import run_study
from linguamix.study.state import run_state, status_rows


def _config(tmp_path, **extra):
    doc = {"name": "unit", "output_dir": "out",
           "models": [{"id": "m/a", "name": "a", "family": "qwen3", "size_b": 0.6},
                      {"id": "m/b", "name": "b", "family": "gemma3", "size_b": 1.0}],
           "tasks": {t: {"train": {"source": "synthetic", "format": f"synthetic-{t}"},
                         "test": {"source": "synthetic", "format": f"synthetic-{t}"}} for t in ("math", "api")},
           "mixtures": {"design": [["en"], ["en", "sw"], ["es", "ja"]]}, "eval": {"languages": ["en", "sw"]},
           **extra}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path, load_config(path)


def _finish(cfg, spec):
    """Make a run directory complete, as `execute` leaves it."""
    rd = Store(cfg.output_path).run(spec)
    rd.init(spec.to_dict(), run_config(cfg, spec))
    rd.set_status("running", pid=os.getpid())
    rd.write_summary("test", {"languages": []})
    rd.set_status("done")
    return rd


# -- selection -------------------------------------------------------------------------------------------
def test_only_filters_the_design(tmp_path):
    _, cfg = _config(tmp_path)
    assert len(select(cfg)) == 2 * 2 * (3 + 1)
    runs = select(cfg, parse_only(["task=math,model=a", "mix=ja+es|pretrained"]))
    assert [(s.model, s.task, s.mixture) for s in runs] == [("a", "math", "pretrained"), ("a", "math", "es+ja")]
    assert {s.kind for s in select(cfg, parse_only(["kind=baseline"]))} == {"baseline"}


@pytest.mark.parametrize("only, msg", [(["lang=en"], "expected KEY=VALUE"), (["task"], "expected KEY=VALUE"),
                                       (["model=c"], "model=c: not in the design")])
def test_only_rejects_unknown_keys_and_values(tmp_path, only, msg):
    _, cfg = _config(tmp_path)
    with pytest.raises(ConfigError, match=msg):
        select(cfg, parse_only(only))


def test_cli_only_error_is_one_line_exit_2(tmp_path, capsys):
    path, _ = _config(tmp_path)
    assert main(["study", "run", str(path), "--only", "language=en"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("linguamix: error: --only") and "\n" not in err


# -- state -----------------------------------------------------------------------------------------------
def test_a_running_run_whose_process_is_gone_is_pending(tmp_path):
    _, cfg = _config(tmp_path)
    spec = expand(cfg)[1]
    rd = Store(cfg.output_path).run(spec)
    rd.init(spec.to_dict(), run_config(cfg, spec))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    rd.set_status("running", pid=dead.pid)
    st = run_state(cfg, spec, rd)
    assert st["state"] == "pending" and st["reason"].startswith("interrupted")
    rd.set_status("running", pid=os.getpid())  # alive: still running
    assert run_state(cfg, spec, rd)["state"] == "running"
    row = next(r for r in status_rows(cfg) if r["name"] == spec.name)
    assert row["state"] == "running" and row["attempts"] == 2 and row["elapsed_s"] >= 0


def test_status_flags_a_done_run_with_another_config(tmp_path):
    path, cfg = _config(tmp_path)
    spec = expand(cfg)[0]
    _finish(cfg, spec)
    _, changed = _config(tmp_path, seeds=[0], eval={"languages": ["en", "sw"], "batch_size": 7})
    st = run_state(changed, spec, Store(changed.output_path).run(spec))
    assert st["state"] == "done" and "config changed" in st["reason"]


# -- the orchestrator, with a scripted executor -----------------------------------------------------------
class Scripted:
    """Runs nothing: each run ends as the script says (default: done), in submission order."""

    kind = "scripted"
    name = "scripted executor"

    def __init__(self, cfg, script):
        self.cfg, self.script, self.calls, self._out = cfg, {k: list(v) for k, v in script.items()}, [], {}

    def resources(self, spec):
        return 0, 1

    def admit(self, queue):
        return len(queue)

    def submit(self, jobs, on_start=None):
        for job in jobs:
            on_start(job, "")
            self.calls.append(job.spec.name)
            todo = self.script.get(job.spec.name)
            state = todo.pop(0) if todo else "done"
            rd = Store(self.cfg.output_path).run(job.spec)
            if state == "done":
                _finish(self.cfg, job.spec)
                out = Outcome("done", 0)
            elif state == "config":
                out = Outcome("failed", 2, "ConfigError: bad", retryable=False)
            elif state == "preempted":
                out = Outcome("preempted", 75, "preempted")
            else:
                rd.set_status("running")
                rd.set_status("failed", reason="RuntimeError: boom")
                out = Outcome("failed", 1, "RuntimeError: boom")
            self._out[job.spec.name] = out
        return [job.spec.name for job in jobs]

    def poll(self, handle):
        return self._out.pop(handle)

    def adopt(self, jobs):
        return {}

    def wait(self, seconds):
        pass

    def stop(self):
        pass


def test_orchestrator_retries_requeues_and_reports(tmp_path, capsys):
    path, cfg = _config(tmp_path, executor={"max_retries": 2})
    only = parse_only(["model=a,task=math"])
    names = [s.name for s in select(cfg, only)]
    flaky, broken, bad, preempted = names
    ex = Scripted(cfg, {flaky: ["fail", "done"], broken: ["fail"] * 5, bad: ["config"], preempted: ["preempted"]})
    report = run_study(cfg, str(path), ex, only=only, prepare_data=False, poll_s=0)
    assert ex.calls.count(flaky) == 2 and ex.calls.count(broken) == 3 and ex.calls.count(bad) == 1
    assert ex.calls.count(preempted) == 2  # requeued, not counted as a failure
    assert sorted(report.done) == sorted([flaky, preempted])
    assert report.failed == {broken: "RuntimeError: boom", bad: "ConfigError: bad"} and report.exit_code == 1
    err = capsys.readouterr().err
    assert "(retry 2/2)" in err and "2 failed" in err
    # rerun: the complete runs are skipped, only the failed ones run again
    ex2 = Scripted(cfg, {})
    report2 = run_study(cfg, str(path), ex2, only=only, prepare_data=False, poll_s=0)
    assert sorted(ex2.calls) == sorted([broken, bad]) and report2.skipped == 2 and report2.exit_code == 0


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_console_prints_one_line_per_event_above_one_study_bar(tmp_path):
    path, cfg = _config(tmp_path)
    only = parse_only(["model=a,task=math"])
    names = [s.name for s in select(cfg, only)]
    out = _Terminal()
    run_study(cfg, str(path), Scripted(cfg, {names[0]: ["preempted"]}), only=only, prepare_data=False, poll_s=0,
              out=out)
    text = out.getvalue()
    lines = [x for x in re.split(r"[\r\n]", text) if x.strip()]
    events = [x for x in lines if re.match(r"\[\d/4\] (start|done|requeue) ", x.strip())]
    assert len(events) == 4 + 1 + 4 + 1  # 5 starts (one requeued), 4 done, one requeue
    bars = [x for x in lines if x.strip().startswith(f"study {cfg.name}:")]
    assert bars and "4/4" in bars[-1] and "4 done, 0 failed" in bars[-1]
    assert not any("%|" in x or "run/s" in x for x in events)  # the bar is not printed into the event lines
    # not a terminal (a log file, CI): the same lines, no bar
    plain = io.StringIO()
    run_study(cfg, str(path), Scripted(cfg, {}), only=parse_only(["model=b,task=math"]), prepare_data=False,
              poll_s=0, out=plain)
    assert "%|" not in plain.getvalue() and "run/s" not in plain.getvalue()
    assert len([x for x in plain.getvalue().splitlines() if re.match(r"\[\d/4\] (start|done) ", x)]) == 8


def test_what_a_run_prints_goes_to_its_log(tmp_path, capfd):
    """Inline and pool runs print into their run's log (Python's streams and the file descriptors), and the
    console is left as it was."""
    from linguamix.store import RunDir
    from linguamix.study.executors.local import output_to_log

    rd = RunDir(tmp_path / "run")
    print("before")
    with output_to_log(rd):
        print("python stdout")
        print("python stderr", file=sys.stderr)
        os.write(1, b"fd one\n")
        os.write(2, b"fd two\n")
    print("after")
    log = rd.log_file.read_text()
    assert all(x in log for x in ("python stdout", "python stderr", "fd one", "fd two"))
    console = capfd.readouterr()
    assert "before" in console.out and "after" in console.out
    assert not any(x in console.out + console.err for x in ("python stdout", "python stderr", "fd one", "fd two"))


# -- judging a job's end -----------------------------------------------------------------------------------
def _job(cfg, spec, **kw):
    return Job(spec=spec, config_path="/x/study.yaml", run_dir=str(Store(cfg.output_path).run(spec).path), **kw)


def test_classify(tmp_path):
    _, cfg = _config(tmp_path)
    s0, s1, s2, s3 = expand(cfg)[:4]
    assert classify(_job(cfg, _finish(cfg, s0) and s0), 0).state == "done"
    assert classify(_job(cfg, s1), 75).state == "preempted"
    out = classify(_job(cfg, s2), 2)
    assert out.state == "failed" and not out.retryable
    rd = Store(cfg.output_path).run(s3)
    rd.log_file.parent.mkdir(parents=True)
    rd.log_file.write_text("loading\rloading 50%\rloading 100%\nTraceback ...\nMemoryError\n")
    out = classify(_job(cfg, s3), -9)
    assert out.retryable and out.reason == "killed by signal SIGKILL: MemoryError"
    assert rd.status()["state"] == "failed" and rd.status()["reason"] == out.reason  # shown by `study status`


def test_process_executor_assigns_gpus_and_reports_exit_codes(tmp_path, monkeypatch):
    _, cfg = _config(tmp_path)
    ex = ProcessExecutor(cfg, gpus=["4", "5", "6"])
    specs = expand(cfg)
    jobs = [make_job(cfg, "s.yaml", s, Store(cfg.output_path).run(s), executor=ex) for s in specs[:4]]
    assert [j.gpus for j in jobs] == [1, 1, 1, 1] and ex.admit(jobs) == 3
    script = "import os, sys; print('gpus', os.environ['CUDA_VISIBLE_DEVICES']); sys.exit(3)"
    monkeypatch.setattr("linguamix.study.executors.local.run_command", lambda job: [sys.executable, "-c", script])
    handles = ex.submit(jobs[:2])
    assert ex.admit(jobs[2:]) == 1  # one GPU left
    outs = {}
    deadline = time.time() + 60
    while len(outs) < 2 and time.time() < deadline:
        outs.update({h: o for h in handles if h not in outs for o in [ex.poll(h)] if o})
        time.sleep(0.05)
    assert {o.reason for o in outs.values()} == {"exit code 3: gpus 4", "exit code 3: gpus 5"}
    assert sorted(ex.free) == ["4", "5", "6"]


def test_multi_gpu_runs_use_accelerate(tmp_path):
    (tmp_path / "accelerate").mkdir()
    (tmp_path / "accelerate" / "fsdp2.yaml").write_text("distributed_type: FSDP\n")
    _, cfg = _config(tmp_path, train={"accelerate_config": "fsdp2"})
    assert resolve_accelerate_config(cfg) == str(tmp_path / "accelerate" / "fsdp2.yaml")
    ex = ProcessExecutor(cfg, gpus=["0", "1", "2", "3"])
    base, train = expand(cfg)[:2]
    jb = make_job(cfg, "s.yaml", base, Store(cfg.output_path).run(base), executor=ex)
    jt = make_job(cfg, "s.yaml", train, Store(cfg.output_path).run(train), executor=ex)
    assert (jb.gpus, jb.accelerate_config) == (1, None) and jt.gpus == 4
    cmd = run_command(jt)
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"] and cmd[cmd.index("--num_processes") + 1] == "4"
    assert cmd[cmd.index("--config_file") + 1] == jt.accelerate_config
    assert cmd[-8:] == ["-m", "linguamix", "study", "run-one", jt.config_path, "--run", train.name, "--quiet"]
    two_nodes = run_command(Job(**{**jt.__dict__, "nodes": 2}), machine_rank=1, num_machines=2, main_ip="n01")
    assert two_nodes[two_nodes.index("--num_processes") + 1] == "8" and "--machine_rank" in two_nodes
    _, missing = _config(tmp_path, train={"accelerate_config": "zero9"})
    with pytest.raises(ConfigError, match="train.accelerate_config"):
        resolve_accelerate_config(missing)


# -- the paper's config, no GPU, offline ----------------------------------------------------------------------
def test_plan_and_status_on_the_paper_config(repo, capsys):
    paper = str(repo / "configs" / "paper.yaml")
    assert main(["plan", paper, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 230
    train = [r for r in rows if r["kind"] == "train"]
    for r in train:  # the hub tokenizers are not on this machine: compute is unknown, not guessed
        assert r["train_tokens"] is None and r["flops"] is None and r["compute_source"].startswith("unavailable")
        assert r["matmul_params"] > 0
    assert main(["plan", paper, "--totals"]) == 0
    totals = json.loads(capsys.readouterr().out)
    assert totals["training_runs"] == 220 and totals["runs_with_compute"] == 0 and totals["flops"] is None
    assert main(["plan", paper]) == 0
    err = capsys.readouterr().err
    assert "220 training runs + 10 baseline evaluations" in err and "note:" in err
    assert main(["study", "status", paper, "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert len(status["runs"]) == 230 and status["summary"]["line"].startswith("230 runs:")
    assert main(["study", "status", paper, "--only", "model=qwen3-8b,task=api"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].split()[:6] == ["kind", "model", "task", "mixture", "seed", "state"]
    assert len(out) == 1 + 23 + 1 and out[-1].startswith("23 runs: ")

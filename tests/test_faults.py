"""The bad-input and fault suite (docs/reliability.md lists every case and what it promises).

Every bad input ends in one line on stderr (`linguamix: error: FILE...: field/line ...`), exit status 2,
and no output changed; every fault (a kill, a full or read-only disk, a broken checkpoint) is either
recovered from with the same results or ends like a bad input. No case may hang or leave a process."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from linguamix.cli import main

BASE = {"models": [{"id": "x", "name": "x", "family": "qwen3", "size_b": 0.6}]}


def fails(capsys, argv, *needles, code=2):
    """Run the CLI in-process: it must exit `code` with exactly one line on stderr containing `needles`."""
    assert main([str(a) for a in argv]) == code
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("linguamix: error:"), err
    for needle in needles:
        assert needle in err, err
    return err


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones included) -> its bytes: 'unchanged' means equal snapshots."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} \
        if folder.exists() else {}


def write(path: Path, doc) -> Path:
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


HAUSA = {"code": "ha", "iso639_3": "hau", "name": "Hausa", "resource": "low", "family": "Afro-Asiatic",
         "subfamily": "Chadic", "script": "Latn", "unicode_scripts": ["Latin"], "role": "unseen",
         "cot_trigger": "Mu yi tunani.", "answer_template": "Amsar ita ce {answer}.", "answer_phrases": ["Amsar ita ce"]}


# -- configs ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("doc, needles", [
    ({**BASE, "mixtures": {"design": []}}, ["field 'mixtures'", "no training run"]),
    ("models: [{id: x, family: qwen3, size_b: .inf}]", ["field 'models.0.size_b'", "finite"]),
    ("models: [{id: x, family: qwen3, size_b: .nan}]", ["field 'models.0.size_b'", "finite"]),
    ({**BASE, "train": {"learning_rate": float("nan")}}, ["field 'train.learning_rate'", "finite"]),
    ({**BASE, "seeds": []}, ["field 'seeds'"]),
    ({**BASE, "seeds": [1, 1]}, ["field 'seeds'", "distinct"]),
    ({**BASE, "tasks": {"translation": {"train": {"source": "s"}, "test": {"source": "s"}}}},
     ["field 'tasks.translation'", "unknown task 'translation'"]),
    ({**BASE, "tasks": {"math": {"train": {"source": "s", "format": "api-bank"}, "test": {"source": "s"}}}},
     ["field 'tasks.math.train.format'", "does not feed the math task"]),
    ({**BASE, "eval": {"languages": ["en", "xx"]}}, ["field 'eval.languages[1]'", "'xx'"]),
    ({**BASE, "train": {"learning_rat": 1e-5}}, ["field 'train.learning_rat'", "unknown field"]),
    ("models: [{id: x, family: qwen3, size_b: 1}\n  bad: [", ["not valid YAML"]),
    ("- just\n- a list\n", ["expected a mapping"]),
], ids=["empty-design", "inf", "nan", "nan-lr", "no-seeds", "repeated-seeds", "unknown-task", "foreign-format",
        "unknown-language", "typo", "broken-yaml", "not-a-mapping"])
def test_bad_configs(tmp_path, capsys, doc, needles):
    cfg = write(tmp_path / "study.yaml", doc)
    fails(capsys, ["plan", cfg], str(cfg), *needles)


@pytest.mark.parametrize("change, needles", [
    ({"answer_phrases": "Amsar ita ce"}, ["field 'answer_phrases'", "list of strings"]),
    ({"unicode_scripts": "Latin"}, ["field 'unicode_scripts'", "list of strings"]),
    ({"answer_template": "Amsar {answer} {unit}."}, ["field 'answer_template'", "{answer}"]),
    ({"code": "en"}, ["already defined with different facts"]),
], ids=["phrases-as-string", "scripts-as-string", "template-field", "redefines-english"])
def test_bad_extra_language_files(tmp_path, capsys, change, needles):
    write(tmp_path / "langs.yaml", {"languages": [{**HAUSA, **change}]})
    cfg = write(tmp_path / "study.yaml", {**BASE, "languages": {"extra": "langs.yaml"}})
    fails(capsys, ["plan", cfg], "field 'languages.extra'", "langs.yaml", *needles)


def test_unreadable_extra_language_files(tmp_path, capsys):
    cfg = write(tmp_path / "study.yaml", {**BASE, "languages": {"extra": "langs.yaml"}})
    fails(capsys, ["plan", cfg], "langs.yaml", "cannot read language file")
    (tmp_path / "langs.yaml").write_bytes("languages: [{name: Hausa é}]".encode("latin-1"))
    fails(capsys, ["plan", cfg], "langs.yaml", "not UTF-8")


def test_a_config_loads_without_registering_its_languages(tmp_path):
    from linguamix import languages
    from linguamix.config import load_config

    write(tmp_path / "langs.yaml", {"languages": [HAUSA]})
    cfg = load_config(write(tmp_path / "study.yaml", {**BASE, "languages": {"extra": "langs.yaml"},
                                                      "eval": {"languages": ["en", "ha"]}}))
    assert not languages.is_known("ha")
    with cfg.language_scope():
        assert languages.get("ha").name == "Hausa"


# -- `linguamix score` inputs and outputs ----------------------------------------------------------------------
def _rows(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


GOOD = {"id": "1", "lang": "en", "completion": "The answer is 18.", "answer": 18}


@pytest.mark.parametrize("rows, needles", [
    ([GOOD, "{broken"], ["line 2: invalid JSON"]),
    ([{**GOOD, "answer": None}], ["line 1: field 'answer'"]),
    (['{"id": "1", "lang": "en", "completion": "x", "answer": NaN}'], ["line 1: field 'answer'", "finite"]),
    ([{**GOOD, "answer": "Infinity"}], ["line 1: field 'answer'", "finite"]),
    ([GOOD, {"id": "2", "lang": "en", "completion": "x"}], ["line 2: missing field(s) 'answer'"]),
    ([{**GOOD, "lang": "xx"}], ["line 1: field 'lang'", "'xx'"]),
    ([{**GOOD, "completion": 18}], ["line 1: field 'completion' must be a string"]),
], ids=["json", "gold-null", "gold-nan", "gold-infinity", "missing-field", "unknown-language", "completion-type"])
def test_bad_score_inputs_write_nothing(tmp_path, capsys, rows, needles):
    src = _rows(tmp_path / "pred.jsonl", rows)
    fails(capsys, ["score", "--task", "math", "--input", src, "--output", tmp_path / "out.jsonl"], str(src), *needles)
    assert not (tmp_path / "out.jsonl").exists()


def test_binary_score_input(tmp_path, capsys):
    src = tmp_path / "pred.jsonl"
    src.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    fails(capsys, ["score", "--task", "api", "--input", src, "--output", tmp_path / "o.jsonl"], str(src), "not UTF-8")


def test_score_output_that_is_a_directory(tmp_path, capsys):
    src = _rows(tmp_path / "pred.jsonl", [GOOD])
    (tmp_path / "out").mkdir()
    fails(capsys, ["score", "--task", "math", "--input", src, "--output", tmp_path / "out"], "out", "is a directory")
    assert list((tmp_path / "out").iterdir()) == []


def test_score_writes_both_outputs_or_neither(tmp_path, capsys):
    src = _rows(tmp_path / "pred.jsonl", [GOOD])
    (tmp_path / "summary.json").mkdir()  # the second output cannot be written: the first must not appear either
    fails(capsys, ["score", "--task", "math", "--input", src, "--output", tmp_path / "out.jsonl",
                   "--summary", tmp_path / "summary.json"], "summary.json", "is a directory")
    assert not (tmp_path / "out.jsonl").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("task, completion, gold", [
    ("api", "API-Request: [F(" + ", ".join(f"a{i}='1'" for i in range(8000)) + ")]", "[F(a0='1')]"),
    ("api", "API-Request: [F(" + ", ".join(f"a{i}='1'" for i in range(32000)) + ")]", "[F(a0='1')]"),
    ("api", "API-Request: [F(a='" + ")]" * 2_500_000, "[F(a='1')]"),
    ("api", "[F(" + "a=1, " * 1_000_000, "[F(a='1')]"),
    ("math", "The answer is " * 8000, 18),
    ("math", "The answer is " * 360_000, 18),
    ("math", ")]" * 2_500_000, 18),
    ("math", "a=1, " * 1_000_000, 18),
    ("math", "\\boxed{" * 700_000 + "18", 18),
], ids=["api-8k-keys", "api-32k-keys", "api-5MB-closers", "api-5MB-pairs", "math-8k-phrases", "math-5MB-phrases",
        "math-5MB-closers", "math-5MB-pairs", "math-5MB-open-boxes"])
def test_degenerate_completions_are_scored(task, completion, gold):
    """What a degenerate model writes is scored, not stalled on: the scorers read a bounded, linear amount
    (docs/evaluation.md). These finished in 40 s to over 180 s each before."""
    from linguamix import tasks

    s = tasks.get(task).score(completion, gold, "en")
    assert s.correct is (task == "math" and completion.endswith("18"))


# -- analyze and collect ---------------------------------------------------------------------------------------
def _results_csv(path: Path) -> Path:
    from linguamix.analysis.simulate import load_design, simulate, write_simulation

    write_simulation(simulate(load_design("paper", n_items=20), seed=0, predictions=False), path)
    return path


def test_truncated_duckdb(tmp_path, capsys):
    db = tmp_path / "results.duckdb"
    import duckdb

    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE evaluations AS SELECT range AS n FROM range(100000)")
    con.close()
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])
    fails(capsys, ["analyze", db, "--out", tmp_path / "report"], str(db), "DuckDB")
    assert not (tmp_path / "report").exists() or not any((tmp_path / "report").iterdir())


def test_analyze_input_with_a_bad_predictions_line(tmp_path, capsys):
    table = _results_csv(tmp_path / "r.csv")
    preds = _rows(tmp_path / "p.jsonl", [{"model": "m", "task": "math"}, "{torn"])
    fails(capsys, ["analyze", table, "--predictions", preds, "--out", tmp_path / "rep"], "p.jsonl", "line 2")


# -- full and read-only disks ------------------------------------------------------------------------------------
def _mount(folder: Path, options: str):
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (a full / read-only disk is simulated that way)")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")


def _umount(folder: Path):
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def full_disk(tmp_path, request):
    """A small file system (64 KiB, or the test's `disk_size` mark): anything bigger does not fit."""
    mark = request.node.get_closest_marker("disk_size")
    folder = tmp_path / "full"
    _mount(folder, f"size={mark.args[0] if mark else '64k'}")
    yield folder
    _umount(folder)


@pytest.fixture
def read_only(tmp_path):
    folder = tmp_path / "ro"
    _mount(folder, "ro,size=64k")
    yield folder
    _umount(folder)


def test_analyze_on_a_full_disk_changes_nothing(tmp_path, full_disk, capsys):
    table = _results_csv(tmp_path / "r.csv")
    (full_disk / "report").mkdir()
    (full_disk / "report" / "keep.txt").write_text("an earlier report")
    before = snapshot(full_disk)
    fails(capsys, ["analyze", table, "--out", full_disk / "report", "--n-boot-median", "50",
                   "--n-boot-regression", "20"], "report", "no space left")
    assert snapshot(full_disk) == before


def test_analyze_into_a_read_only_folder(tmp_path, read_only, capsys):
    table = _results_csv(tmp_path / "r.csv")
    fails(capsys, ["analyze", table, "--out", read_only / "report"], "report", "read-only")


def test_score_on_a_full_disk_and_read_only_folder(tmp_path, full_disk, read_only, capsys):
    src = _rows(tmp_path / "pred.jsonl", [{**GOOD, "completion": "x" * 2000, "id": str(i)} for i in range(200)])
    fails(capsys, ["score", "--task", "math", "--input", src, "--output", full_disk / "o.jsonl"], "o.jsonl",
          "no space left")
    assert snapshot(full_disk) == {}
    fails(capsys, ["score", "--task", "math", "--input", src, "--output", read_only / "o.jsonl"], "o.jsonl",
          "read-only")


# -- run store: drift, litter, damaged records ---------------------------------------------------------------
def _finished_run(root: Path, cfg_path: Path):
    """A study whose one baseline run looks finished, written through the store as a job would."""
    from linguamix.config import load_config
    from linguamix.runs import expand, run_config
    from linguamix.store import Store

    cfg = load_config(cfg_path)
    spec = next(s for s in expand(cfg) if s.kind == "baseline")
    rd = Store(cfg.output_path).run(spec)
    rd.init(spec.to_dict(), run_config(cfg, spec))
    rd.set_status("running")
    rd.write_predictions("test", [{"item_id": "a", "lang": "en", "correct": True, "prompt_hash": "h",
                                   "completion": "c", "prediction": 1, "strict": True, "lenient": True, "gold": 1}])
    rd.write_summary("test", {"languages": [{"lang": "en", "n": 1, "correct": 1, "accuracy": 1.0}], "n_items": 1})
    rd.set_status("done")
    return cfg, spec, rd


def _study(tmp_path, **train) -> Path:
    doc = {"name": "drift", "output_dir": "out", **BASE,
           "tasks": {"math": {"train": {"source": "synthetic", "format": "synthetic-math"},
                              "test": {"source": "synthetic", "format": "synthetic-math"}}},
           "mixtures": {"design": [["en"]]}, "train": {"epochs": 1, **train}}
    return write(tmp_path / "study.yaml", doc)


def test_collect_refuses_runs_of_another_configuration(tmp_path, capsys):
    import duckdb

    cfg_path = _study(tmp_path)
    _finished_run(tmp_path, cfg_path)
    doc = yaml.safe_load(cfg_path.read_text())
    doc["tasks"]["math"]["max_new_tokens"] = 64  # changes what the finished baseline run was evaluated with
    write(cfg_path, doc)
    db = tmp_path / "r.duckdb"
    fails(capsys, ["collect", cfg_path, "--out", db], "1 run(s) were made with another configuration",
          "task.max_new_tokens: 512 -> 64", "--accept-changed")
    assert not db.exists()
    assert main(["collect", str(cfg_path), "--out", str(db), "--accept-changed"]) == 0
    con = duckdb.connect(str(db), read_only=True)
    changed = con.execute("SELECT config_changed FROM runs WHERE status = 'done'").fetchall()
    con.close()
    assert changed == [("task.max_new_tokens: 512 -> 64",)]


def test_study_run_refuses_reruns_or_keeps_changed_runs(tmp_path, capsys):
    from linguamix.config import load_config
    from linguamix.runs import run_hash
    from linguamix.store import Store

    cfg_path = _study(tmp_path)
    _, spec, rd = _finished_run(tmp_path, cfg_path)
    doc = yaml.safe_load(cfg_path.read_text())
    doc["tasks"]["math"]["max_new_tokens"] = 64
    write(cfg_path, doc)
    only = ["--only", "kind=baseline"]
    fails(capsys, ["study", "run", cfg_path, *only], "were made with another configuration", spec.name,
          "--rerun-changed")
    assert rd.is_complete()  # nothing was touched
    assert main(["study", "run", str(cfg_path), *only, "--accept-changed", "--quiet"]) == 0
    st = rd.status()
    cfg = load_config(cfg_path)
    assert st["accepted_config_hash"] == run_hash(cfg, spec) and st["accepted_changes"] == [
        "task.max_new_tokens: 512 -> 64"]
    assert "1 complete (skipped)" in capsys.readouterr().err
    # a later change is drift again, and --rerun-changed keeps the old directory aside
    doc["tasks"]["math"]["max_new_tokens"] = 32
    write(cfg_path, doc)
    from linguamix.study.loop import _settle_changed

    said = []
    _settle_changed(load_config(cfg_path), str(cfg_path), [spec], Store(load_config(cfg_path).output_path),
                    "rerun", said.append)
    assert not rd.path.exists() and len(list((tmp_path / "out" / "replaced").iterdir())) == 1
    assert "redoing it" in said[0]


def test_collect_leaves_no_litter_and_cleans_a_killed_ones(tmp_path, capsys):
    cfg_path = _study(tmp_path)
    _finished_run(tmp_path, cfg_path)
    db = tmp_path / "r.duckdb"
    dead = tmp_path / ".r.duckdb.999999999.tmp"  # what a SIGKILLed collect leaves (pid 999999999 is not alive)
    dead.write_text("half a database")
    (tmp_path / ".r.duckdb.999999999.tmp.wal").write_text("its log")
    alive = tmp_path / f".r.duckdb.{os.getppid()}.tmp"  # a live process's work in progress is left alone
    alive.write_text("in progress")
    assert main(["collect", str(cfg_path), "--out", str(db)]) == 0
    assert sorted(p.name for p in tmp_path.glob(".r.duckdb.*")) == [alive.name]


def test_collect_with_a_binary_predictions_file_keeps_the_old_database(tmp_path, capsys):
    cfg_path = _study(tmp_path)
    _, _, rd = _finished_run(tmp_path, cfg_path)
    db = tmp_path / "r.duckdb"
    assert main(["collect", str(cfg_path), "--out", str(db)]) == 0
    capsys.readouterr()
    before = db.read_bytes()
    preds = rd.eval_dir("test") / "predictions.jsonl"
    preds.write_bytes(b"\x00\x01\xff binary")
    fails(capsys, ["collect", cfg_path, "--out", db], str(preds), "not UTF-8")
    assert db.read_bytes() == before


@pytest.mark.parametrize("name", ["run.json", "status.json"])
def test_damaged_run_records_are_named(tmp_path, capsys, name):
    cfg_path = _study(tmp_path)
    _, _, rd = _finished_run(tmp_path, cfg_path)
    (rd.path / name).write_text('{"state": "do')
    fails(capsys, ["study", "status", cfg_path], str(rd.path / name), "invalid JSON")


@pytest.mark.disk_size("4m")  # a first small database fits (DuckDB writes 256 KiB blocks), a big one not
def test_collect_on_a_full_disk_keeps_the_old_database(tmp_path, full_disk, capsys):
    cfg_path = _study(tmp_path)
    _, _, rd = _finished_run(tmp_path, cfg_path)
    db = full_disk / "r.duckdb"
    assert main(["collect", str(cfg_path), "--out", str(db)]) == 0
    capsys.readouterr()
    before = snapshot(full_disk)
    rows = [{"item_id": str(i), "lang": "en", "correct": True, "completion": os.urandom(400).hex()} for i in range(8000)]
    rd.write_predictions("test", rows)  # a database that no longer fits
    fails(capsys, ["collect", cfg_path, "--out", db], "r.duckdb", "cannot write")
    assert snapshot(full_disk) == before


# -- models and checkpoints ----------------------------------------------------------------------------------
def test_a_model_path_that_does_not_exist(tmp_path, capsys):
    fails(capsys, ["evaluate", "--model", tmp_path / "no" / "model", "--task", "math", "--out", tmp_path / "o"],
          "no such directory")
    assert not (tmp_path / "o").exists()


def _checkpoint(folder: Path, step: int, *, broken: str | None = None) -> Path:
    import torch
    from safetensors.torch import save_file

    ckpt = folder / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    save_file({"w": torch.zeros(64, 64)}, str(ckpt / "model.safetensors"))
    torch.save({"state": {}}, ckpt / "optimizer.pt")
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    if broken == "weights":
        data = (ckpt / "model.safetensors").read_bytes()
        (ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif broken == "optimizer":
        data = (ckpt / "optimizer.pt").read_bytes()
        (ckpt / "optimizer.pt").write_bytes(data[: len(data) // 2])
    elif broken == "state":
        (ckpt / "trainer_state.json").write_text('{"global_st')
    return ckpt


@pytest.mark.parametrize("broken", ["weights", "optimizer", "state"])
def test_a_broken_last_checkpoint_is_set_aside(tmp_path, capsys, broken):
    from linguamix.store import RunDir
    from linguamix.train import usable_checkpoint

    rd = RunDir(tmp_path / "run")
    good = _checkpoint(rd.checkpoints, 4)
    bad = _checkpoint(rd.checkpoints, 8, broken=broken)
    assert usable_checkpoint(rd) == str(good)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and str(bad) in out and "unusable checkpoint" in out
    assert not bad.exists() and (rd.path / "train.corrupt" / "checkpoint-8").is_dir()
    assert rd.read_log("events")[0]["checkpoint"] == str(bad)


def test_no_usable_checkpoint_restarts(tmp_path, capsys):
    from linguamix.store import RunDir
    from linguamix.train import usable_checkpoint

    rd = RunDir(tmp_path / "run")
    _checkpoint(rd.checkpoints, 3, broken="weights")
    assert usable_checkpoint(rd) is None


# -- the translation cache ----------------------------------------------------------------------------------
def test_a_reply_echoing_the_key_never_reaches_disk(tmp_path):
    import asyncio

    from linguamix.translate.config import EngineConfig
    from linguamix.translate.engine import Engine

    key = "sk-very-secret-key-123"
    engine = Engine(EngineConfig(base_url="http://x/v1", model="m", api_key_env=None), key)
    reply = engine._reply({"model": f"m {key}", "choices": [{"message": {"content": f"Authorization: Bearer {key}"},
                                                             "finish_reason": "stop"}]})
    assert key not in reply.content and key not in reply.model and key not in "".join(engine.served_models)
    asyncio.run(asyncio.sleep(0))


# -- kills -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_pool_study(tmp_path_factory):
    from linguamix.data import synthetic
    from linguamix.tinymodel import build_random_tiny, save_model, train_tokenizer

    root = tmp_path_factory.mktemp("pool")
    tok = train_tokenizer(synthetic.pretraining_corpus(["en", "es"], 300), 400)
    save_model(build_random_tiny("qwen3", tok, hidden=32, layers=1, heads=1), tok, root / "tiny")
    src = lambda n, **kw: {"source": "synthetic", "format": "synthetic-math", "options": {"n": n, **kw}}  # noqa
    doc = {"name": "pool", "output_dir": "out", "models": [{"id": "tiny", "family": "qwen3", "size_b": 0.0001}],
           "tasks": {"math": {"train": src(60), "test": src(4, start=100000), "train_per_lang": 40, "val_per_lang": 2,
                              "max_new_tokens": 4}},
           "mixtures": {"design": [["en"], ["es"], ["en", "es"]]},
           "train": {"epochs": 3, "global_batch_size": 4, "gradient_checkpointing": False},
           "eval": {"languages": ["en", "es"], "batch_size": 4}}
    return write(root / "study.yaml", doc)


def _children(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_a_killed_pool_orchestrator_leaves_no_worker_and_the_rerun_finishes(tiny_pool_study, capsys):
    from linguamix.config import load_config
    from linguamix.runs import expand
    from linguamix.store import Store

    cfg = load_config(tiny_pool_study)
    store = Store(cfg.output_path)
    env = {**os.environ, "TQDM_DISABLE": "1"}
    orch = subprocess.Popen([sys.executable, "-m", "linguamix", "study", "run", str(tiny_pool_study), "--max-parallel",
                             "2", "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 300
    workers: set[int] = set()
    while time.time() < deadline and orch.poll() is None:
        running = [s for s in expand(cfg) if store.run(s).status().get("state") == "running"]
        workers = _children(orch.pid)
        if running and len(workers) >= 2:
            break
        time.sleep(0.2)
    assert orch.poll() is None and workers, "the study ended before a run started"
    orch.send_signal(signal.SIGKILL)
    orch.wait()
    deadline = time.time() + 60
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.2)
    assert not [p for p in workers if _alive(p)], "workers outlived their orchestrator"
    # the runs caught mid-way are resumable, and the rerun completes every run
    assert main(["study", "run", str(tiny_pool_study), "--max-parallel", "2", "--quiet"]) == 0
    assert all(store.run(s).is_complete() for s in expand(cfg))


@pytest.mark.slow
def test_a_killed_evaluation_resumes(tmp_path, tiny_pool_study, capsys):
    from linguamix.store import RunDir

    out = tmp_path / "eval"
    model = tiny_pool_study.parent / "tiny"
    cmd = [sys.executable, "-m", "linguamix", "evaluate", "--model", str(model), "--task", "math", "--config",
           str(tiny_pool_study), "--out", str(out), "--max-new-tokens", "64", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and RunDir(out).status().get("state") != "running":
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    rd = RunDir(out)
    assert not rd.is_complete() and not (rd.eval_dir("test") / "summary.json").exists()
    assert main(["evaluate", "--model", str(model), "--task", "math", "--config", str(tiny_pool_study), "--out",
                 str(out), "--max-new-tokens", "64", "--quiet"]) == 0
    assert rd.is_complete() and len(rd.read_predictions("test")) == 8

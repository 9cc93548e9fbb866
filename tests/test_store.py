import json
import os

import pytest

from linguamix import store
from linguamix.errors import ConfigError
from linguamix.records import RunSpec
from linguamix.store import RunDir, Store


def test_atomic_write_leaves_old_file_and_no_temp_on_failure(tmp_path):
    p = tmp_path / "a.json"
    store.write_json(p, {"v": 1})

    class Boom:
        def to_dict(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.write_jsonl(p, [{"v": 2}, Boom()])
    assert json.loads(p.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["a.json"]


def test_atomic_write_interrupted_midway_writes_nothing(tmp_path):
    p = tmp_path / "preds.jsonl"

    def rows():
        yield {"i": 0}
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.write_jsonl(p, rows())
    assert not p.exists() and os.listdir(tmp_path) == []


def test_run_dir_lifecycle_and_completeness(tmp_path):
    spec = RunSpec(model="tiny", task="math", mixture="en+es", seed=0)
    rd = Store(tmp_path).run(spec)
    h = rd.init(spec.to_dict(), {"model": {"family": "qwen3", "size_b": 0.001}})
    assert len(h) == 16 and rd.path.name == "model=tiny,task=math,mix=en+es,seed=0"
    m = rd.manifest()
    assert m["config_hash"] == h and "versions" in m and m["versions"]["torch"] and "git" in m
    assert rd.status()["state"] == "pending" and not rd.is_complete()
    rd.set_status("running")
    assert rd.status()["attempts"] == 1
    rd.write_predictions("test", [{"item_id": "1", "lang": "en", "correct": True}])
    rd.write_summary("test", {"languages": [{"lang": "en", "n": 1, "correct": 1, "accuracy": 1.0}]})
    rd.set_status("done")
    assert rd.is_complete() and Store(tmp_path).is_complete(spec)
    assert rd.init(spec.to_dict(), {"model": {"family": "qwen3", "size_b": 0.001}}) == h  # re-open: same hash
    with pytest.raises(ConfigError, match="different config"):
        rd.init(spec.to_dict(), {"model": {"family": "qwen3", "size_b": 0.002}})


def test_torn_log_line_is_tolerated(tmp_path):
    rd = RunDir(tmp_path / "r")
    rd.log("train", {"step": 1})
    with open(rd.path / "logs" / "train.jsonl", "a") as f:
        f.write('{"step": 2, "lo')
    assert rd.read_log("train") == [{"step": 1}]


def test_runspec_name_roundtrip():
    spec = RunSpec(model="qwen3-0.6b", task="api", mixture="pretrained", seed=3)
    assert RunSpec.from_name(spec.name) == spec and spec.kind == "baseline"

import subprocess
import sys

import pytest
import yaml

from linguamix.config import load_config, parse_config
from linguamix.errors import ConfigError
from linguamix.runs import expand


def test_paper_config_loads_with_paper_defaults(repo):
    cfg = load_config(repo / "configs" / "paper.yaml")
    assert [m.short_name for m in cfg.models] == ["qwen3-0.6b", "qwen3-1.7b", "qwen3-8b", "gemma3-1b", "gemma3-4b"]
    t = cfg.train
    assert (t.learning_rate, t.lr_scheduler, t.warmup_ratio, t.weight_decay, t.epochs, t.global_batch_size) == \
        (1e-5, "cosine", 0.03, 0.01, 6, 512)
    assert t.gradient_checkpointing is True and t.optimizer.startswith("adamw") and t.lora is None
    assert cfg.tasks["math"].train_per_lang == 10_000 and cfg.tasks["math"].val_per_lang == 200
    assert cfg.tasks["api"].val_per_lang == 150
    assert cfg.eval.languages == ["en", "es", "ja", "bn", "sw", "te"]
    runs = expand(cfg)
    assert sum(r.kind == "train" for r in runs) == 220 and sum(r.kind == "baseline" for r in runs) == 10


def _write(tmp_path, doc):
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return p


BASE = {"models": [{"id": "some/model", "family": "qwen3", "size_b": 0.6}]}


@pytest.mark.parametrize("doc, field", [
    ({**BASE, "trian": {"epochs": 1}}, "trian"),
    ({**BASE, "train": {"learning_rat": 1e-5}}, "train.learning_rat"),
    ({**BASE, "train": {"epochs": "many"}}, "train.epochs"),
    ({**BASE, "eval": {"languages": ["en", "klingon"]}}, "eval.languages[1]"),
    ({**BASE, "mixtures": {"design": [["en", "xx"]]}}, "mixtures"),
    ({**BASE, "tasks": {"poetry": {}}}, "tasks"),
    ({"models": [{"id": "m", "family": "qwen3"}]}, "models.0.size_b"),
])
def test_invalid_config_names_file_and_field(tmp_path, doc, field):
    p = _write(tmp_path, doc)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg and field in msg and "\n" not in msg


def test_cli_exits_2_with_one_line(tmp_path):
    p = _write(tmp_path, {**BASE, "eval": {"languages": ["en", "xx"]}})
    r = subprocess.run([sys.executable, "-m", "linguamix", "plan", str(p)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "xx" in r.stderr and str(p) in r.stderr
    assert r.stdout == ""


def test_yaml_syntax_error_names_line(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("models:\n  - id: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken.yaml: line \d+"):
        load_config(p)


def test_missing_file():
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config("/nonexistent/study.yaml")


def test_extra_languages_from_config(tmp_path):
    (tmp_path / "langs.yaml").write_text(yaml.safe_dump({"languages": [{
        "code": "ha", "iso639_3": "hau", "name": "Hausa", "resource": "low", "family": "Afro-Asiatic",
        "subfamily": "Chadic", "script": "Latn", "unicode_scripts": ["Latin"], "role": "unseen",
        "cot_trigger": "Mu yi tunani mataki-mataki.", "answer_template": "Amsar ita ce {answer}.",
        "answer_phrases": ["Amsar ita ce"]}]}), encoding="utf-8")
    cfg = parse_config({**BASE, "languages": {"extra": "langs.yaml"}, "eval": {"languages": ["en", "ha"]},
                        "mixtures": {"design": [["en", "ha"]]}}, base_dir=tmp_path)
    assert [m.id for m in cfg.mixture_list()] == ["en+ha"]
    from linguamix import languages

    assert not languages.is_known("ha")  # loading a config registers nothing globally
    with cfg.language_scope():
        assert languages.get("ha").answer_phrase == "Amsar ita ce"

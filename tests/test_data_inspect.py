"""`data stats`, `data show`, `plan --tokenizer`, mCoT-MATH as the hub serves it, and token counts with the
real Qwen3 tokenizer on the real files."""
import json
from pathlib import Path

import pytest
import yaml

from linguamix import cli
from linguamix.data import loaders, pools
from linguamix.errors import DataError
from linguamix.tasks.api import LEVEL1_HEADER
from linguamix.tinymodel import train_tokenizer

FIXTURES = Path(__file__).parent / "fixtures"
MCOT = FIXTURES / "mcot-math-hub"
TEXTS = ["The answer is 8.", "API-Request: [Calculator(formula='1+2')]", "La respuesta es 5.", "答えは8です。"] * 30


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    train_tokenizer(TEXTS, 300, out)
    return out


def run(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, [line for line in err.splitlines() if line.strip()]


def write_config(tmp_path, model_dir, tasks, mixtures=(("en",),), eval_langs=("en",)):
    doc = {"name": "t", "output_dir": str(tmp_path / "out"),
           "models": [{"id": str(model_dir), "name": "t", "family": "qwen3", "size_b": 0.6}],
           "tasks": tasks, "mixtures": {"design": [list(m) for m in mixtures]}, "eval": {"languages": list(eval_langs)},
           "train": {"epochs": 2}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def api_bank_config(tmp_path, model_dir, bank, **train_options):
    return write_config(tmp_path, model_dir, {"api": {
        "train": {"source": str(bank), "format": "api-bank", "options": {"split": "train", **train_options}},
        "test": {"source": str(bank), "format": "api-bank", "options": {"split": "test"}},
        "val_per_lang": 150, "max_length": 4096,
        "expected": {"train": 3174, "train_apis": 1535, "test": 399, "test_apis": 49}}})


# -- mCoT-MATH ------------------------------------------------------------------------------------------
def test_mcot_math_hub_records_paired_by_lang_id():
    langs = ["en", "es", "ja", "sw", "bn"]
    loaded = loaders.BUILTIN["mcot"](MCOT, langs, {})  # the repo folder: its lang-id/ file is the one read
    assert [Path(f["path"]).name for f in loaded.files] == ["mcot-math.json"]
    with pytest.raises(DataError, match=r"pools are not parallel \(en=3, es=3, ja=3, sw=2, bn=3\); first mismatches: "
                                        r"'mcot-2' missing in sw .*allow_missing"):
        pools.check_parallel(loaded, source="mcot")
    parallel, dropped = pools.check_parallel(loaded, source="mcot", allow_missing=True)
    assert dropped == ["mcot-2"] and all(list(v) == ["mcot-0", "mcot-1"] for v in parallel.values())
    assert {lang: [it.answer for it in v.values()] for lang, v in parallel.items()} == {l: [24, 15] for l in langs}


def test_mcot_math_root_file_has_no_ids():
    with pytest.raises(DataError, match=r"mcot_math.json: line 1: field 'lang-id' \(or 'id'\) is missing: .*lang-id/"
                                        r"mcot-math.json"):
        loaders.BUILTIN["mcot"](MCOT / "mcot_math.json", ["en"], {})


def test_missing_item_dropped_in_every_language_and_counted(tmp_path, tok_dir, capsys):
    cfg = write_config(tmp_path, tok_dir, {"math": {
        "train": {"source": str(MCOT), "format": "mcot", "options": {"allow_missing": True}},
        "test": {"source": str(MCOT), "format": "mcot"}, "val_per_lang": 1, "max_length": 512}},
        mixtures=(("en", "sw"),), eval_langs=("en", "es"))
    code, out, err = run(capsys, "data", "stats", cfg, "--format", "json", "--quiet")
    assert code == 0, err
    report = json.loads(out)
    (pool,) = [r for r in report["sources"] if r["file"] == "(parallel pool)"]
    assert (pool["rows"], pool["taken"], pool["reasons"]) == (3, 2, "1 missing in some language (allow_missing)")


# -- data show / data stats -----------------------------------------------------------------------------
def test_show_api_test_prompts_are_the_official_ones(shared_data, tmp_path, tok_dir, capsys):
    cfg = api_bank_config(tmp_path, tok_dir, shared_data / "api-bank", files=["lv3-api-train.json"])
    code, out, err = run(capsys, "data", "show", cfg, "--split", "test", "--n", 1000, "--format", "json", "--quiet")
    assert code == 0, err
    shown = json.loads(out)
    official = json.loads((shared_data / "api-bank" / "test-data" / "level-1-api.json").read_text("utf-8"))
    assert len(shown) == 399
    assert {r["id"]: (r["prompt"], r["completion"]) for r in shown} == \
        {f"{o['file']}#{o['id']}": (o["instruction"].strip() + "\n" + o["input"], o["expected_output"]) for o in official}


@pytest.mark.slow
def test_show_api_train_every_example_in_the_test_form(shared_data, tmp_path, tok_dir, capsys):
    cfg = api_bank_config(tmp_path, tok_dir, shared_data / "api-bank", files=["lv3-api-train.json"])
    code, out, err = run(capsys, "data", "show", cfg, "--split", "train", "--n", 1000, "--format", "json", "--quiet")
    assert code == 0, err
    shown = json.loads(out)
    assert len(shown) == 435 - 150 and {"id", "lang", "prompt", "completion"} <= set(shown[0])
    for r in shown:
        assert r["prompt"].startswith(LEVEL1_HEADER.lstrip("\n")) and "{{" not in r["prompt"]
        assert r["completion"].startswith("API-Request: [") and r["completion"].endswith(")]")
    code, text, _ = run(capsys, "data", "show", cfg, "--split", "validation", "--n", 1, "--quiet")
    assert code == 0 and text.startswith("===== [1/1] api validation en id=lv3-api-train#")
    assert "\n----- completion\nAPI-Request: [" in text


@pytest.mark.slow
def test_stats_on_real_api_bank_with_the_real_tokenizer(shared_data, tmp_path, qwen_tokenizer_dir, capsys):
    cfg = api_bank_config(tmp_path, qwen_tokenizer_dir, shared_data / "api-bank", files=["lv3-api-train.json"])
    code, out, err = run(capsys, "data", "stats", cfg, "--format", "json", "--quiet")
    assert code == 0, err
    report = json.loads(out)
    (lv3,) = [r for r in report["sources"] if r["file"].endswith("lv3-api-train.json")]
    assert (lv3["rows"], lv3["taken"], lv3["dropped"]) == (907, 435, 472)
    assert lv3["reasons"].startswith("462 gold call is ToolSearcher")
    splits = {r["split"]: r for r in report["splits"]}
    assert (splits["train"]["examples"], splits["validation"]["examples"], splits["test"]["examples"]) == (285, 150, 399)
    assert splits["test"]["apis"] == 49
    # the test prompts with Qwen3's tokenizer (measured: mean 489.9, max 1256)
    assert (splits["test"]["tokens_mean"], splits["test"]["tokens_max"]) == (489.9, 1256)
    assert report["warnings"] == [
        "api: 435 training pool items per language, the config expects 3174 (tasks.api.expected.train)",
        "api: 362 distinct training APIs, the config expects 1535 (tasks.api.expected.train_apis)"]
    assert any("warning: api: 435 training pool items" in line for line in err)


@pytest.mark.slow
def test_mgsm_tokens_with_the_real_tokenizer(shared_data, qwen_tokenizer_dir):
    """Qwen3's tokenizer on the 250 MGSM questions: te costs 6.3x the tokens of en."""
    from linguamix.data.tokenize import load_tokenizer

    tok = load_tokenizer(str(qwen_tokenizer_dir))
    loaded = loaders.BUILTIN["mgsm"](shared_data / "mgsm", ["en", "bn", "te"], {})
    mean = {lang: sum(len(tok(it.question, add_special_tokens=False)["input_ids"]) for it in items) / len(items)
            for lang, items in loaded.items()}
    assert {lang: round(m, 1) for lang, m in mean.items()} == {"en": 61.1, "bn": 257.8, "te": 383.9}
    assert round(mean["te"] / mean["en"], 1) == 6.3


# -- plan counts tokens ---------------------------------------------------------------------------------
def synthetic_config(tmp_path, model_dir, math_train, max_length=256):
    return write_config(tmp_path, model_dir, {"math": {
        "train": math_train, "test": {"source": "synthetic", "format": "synthetic-math", "options": {"n": 5}},
        "train_per_lang": 20, "val_per_lang": 4, "max_length": max_length}}, mixtures=(("en",), ("en", "es")),
        eval_langs=("en", "es"))


def plan_json(capsys, cfg, *extra):
    code, out, err = run(capsys, "plan", cfg, "--format", "json", "--quiet", *extra)
    assert code == 0, err
    return {r["mixture"]: r for r in json.loads(out) if r["kind"] == "train"}


def test_plan_counts_tokens_from_local_data_like_the_built_manifests(tmp_path, tok_dir, capsys):
    cfg = synthetic_config(tmp_path, tmp_path / "no-model-here",
                           {"source": "synthetic", "format": "synthetic-math", "options": {"n": 40}})
    before = plan_json(capsys, cfg)
    assert before["en"]["train_tokens"] is None  # the model's tokenizer is not on this machine
    counted = plan_json(capsys, cfg, "--tokenizer", tok_dir)
    assert not (tmp_path / "out" / "data").exists() or not list((tmp_path / "out" / "data").rglob("*.parquet"))
    assert counted["en+es"]["train_tokens"] > counted["en"]["train_tokens"] > 0
    assert counted["en"]["compute_source"].startswith("counted: 20 items x 2 languages")
    assert counted["en"]["flops"] == 6 * 0.6e9 * counted["en"]["train_tokens"]  # N from size_b
    # the same counts once the data is built and read from the manifests
    built_cfg = synthetic_config(tmp_path, tok_dir, {"source": "synthetic", "format": "synthetic-math",
                                                     "options": {"n": 40}})
    assert run(capsys, "data", "build", built_cfg, "--quiet")[0] == 0
    from_manifest = plan_json(capsys, built_cfg)
    assert from_manifest["en+es"]["compute_source"].startswith("data manifest")
    assert {m: r["train_tokens"] for m, r in from_manifest.items()} == {m: r["train_tokens"] for m, r in counted.items()}


def test_plan_estimates_an_offline_source_from_its_sample(shared_data, tmp_path, tok_dir, capsys):
    cfg = synthetic_config(tmp_path, tmp_path / "no-model-here", {
        "source": "someone/not-on-this-machine", "format": "mcot",
        "sample": {"source": str(shared_data / "mcot" / "outputs"), "format": "mcot-outputs"}}, max_length=1024)
    runs = plan_json(capsys, cfg, "--tokenizer", tok_dir)
    assert runs["en"]["estimate"] is True and runs["en"]["train_tokens"] > 0
    assert runs["en"]["compute_source"].startswith("estimate: mean of ")
    from linguamix import tasks
    from linguamix.data.tokenize import encode_example, load_tokenizer

    tok = load_tokenizer(str(tok_dir))
    sample = loaders.BUILTIN["mcot-outputs"](shared_data / "mcot" / "outputs", ["en", "es"], {})
    n = {lang: [len(encode_example(tok, e.prompt, e.completion)[0]) for e in map(tasks.get("math").render, items)]
         for lang, items in sample.items()}
    keep = [k for k in range(250) if max(n["en"][k], n["es"][k]) <= 1024]  # the length filter, over both languages
    assert 0 < len(keep) < 250
    per_lang = {lang: round(sum(n[lang][k] for k in keep) / len(keep) * 20) for lang in n}  # x train_per_lang
    assert runs["en"]["train_tokens"] == 2 * per_lang["en"]  # x 2 epochs
    assert runs["en+es"]["train_tokens"] == 2 * (per_lang["en"] + per_lang["es"])

"""Bad data files and faults at the data stage: each gets one line naming the file (and row, field),
exit 2, and leaves the output as it was or complete; an edited source is rebuilt, never reused."""
import errno
import json
import shutil
from pathlib import Path

import pytest
import yaml

from linguamix import cli
from linguamix.tinymodel import train_tokenizer

HUB = Path(__file__).parent / "fixtures" / "api-bank-hub"
TEXTS = ["The answer is 8.", "API-Request: [Calculator(formula='1+2')]", "La respuesta es 5.", "答えは8です。"] * 30


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    train_tokenizer(TEXTS, 300, out)
    return out


def run(capsys, *args):
    """(exit code, stdout, stderr lines) of one in-process `linguamix` command."""
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, [line for line in err.splitlines() if line.strip()]


def config(tmp_path, tok_dir, tasks, mixtures=(("en",),), eval_langs=("en",)):
    doc = {"name": "t", "output_dir": str(tmp_path / "out"),
           "models": [{"id": str(tok_dir), "name": "t", "family": "qwen3", "size_b": 0.001}],
           "tasks": tasks, "mixtures": {"design": [list(m) for m in mixtures]}, "eval": {"languages": list(eval_langs)}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def api_task(root, **options):
    return {"api": {"train": {"source": str(root), "format": "api-bank", "options": {"split": "train", **options}},
                    "test": {"source": str(HUB), "format": "api-bank", "options": {"split": "test"}},
                    "val_per_lang": 1, "max_length": 4096}}


def one_error(code, err, *patterns):
    assert code == 2, err
    assert len(err) == 1, err  # one line, no traceback
    for p in patterns:
        assert p in err[0], err[0]


def nothing_written(tmp_path):
    return not (tmp_path / "out" / "data").exists() or not list((tmp_path / "out" / "data").rglob("*.parquet"))


@pytest.mark.parametrize("case,file,where", [
    ("wrong-fields", "lv1-api-train.json", "row 2: needs string fields 'instruction', 'input', 'output'"),
    ("renamed-fields", "lv1-api-train.json", "row 1: needs string fields 'instruction', 'input', 'output'"),
    ("not-a-call", "lv1-api-train.json", "row 2: field 'output' is not an API-Request: [Name(key='value')] call"),
    ("not-a-list", "lv2-api-train.json", "expected a JSON array of {instruction, input, output} rows, got one object"),
    ("invalid-json", "lv1-api-train.json", "invalid JSON"),
])
def test_bad_training_file_is_one_line(tmp_path, tok_dir, capsys, case, file, where):
    cfg = config(tmp_path, tok_dir, api_task(HUB / "bad" / case, files=[file]))
    code, _, err = run(capsys, "data", "build", cfg, "--quiet")
    one_error(code, err, f"bad/{case}/training-data/{file}", where)
    assert nothing_written(tmp_path)


def test_unknown_file_in_options_files(tmp_path, tok_dir, capsys):
    cfg = config(tmp_path, tok_dir, api_task(HUB, files=["lv1-api-train.json", "lv4-api-train.json"]))
    code, _, err = run(capsys, "data", "build", cfg, "--quiet")
    one_error(code, err, "options.files: 'lv4-api-train.json' is not an API-Bank API-call training file")
    assert nothing_written(tmp_path)


def test_truncated_test_file_is_one_line(tmp_path, tok_dir, capsys):
    root = tmp_path / "bank"
    shutil.copytree(HUB, root)
    test_file = root / "test-data" / "level-1-api.json"
    test_file.write_bytes(test_file.read_bytes()[:700])
    cfg = config(tmp_path, tok_dir, {"api": {**api_task(HUB)["api"], "test": {"source": str(root), "format": "api-bank",
                                                                               "options": {"split": "test"}}}})
    code, _, err = run(capsys, "data", "show", cfg, "--split", "test", "--quiet")
    one_error(code, err, "test-data/level-1-api.json: line", "invalid JSON")


# -- MGSM / MSVAMP: items paired by position, so golds must agree ----------------------------------------
MGSM = ["en", "es"]


def mgsm_copy(shared_data, tmp_path, n=30):
    d = tmp_path / "mgsm"
    d.mkdir()
    for lang in MGSM:
        lines = (shared_data / "mgsm" / f"mgsm_{lang}.tsv").read_text("utf-8").splitlines(keepends=True)[:n]
        (d / f"mgsm_{lang}.tsv").write_text("".join(lines), encoding="utf-8")
    return d


def math_config(tmp_path, tok_dir, test_dir, train=None):
    train = train or {"source": "synthetic", "format": "synthetic-math", "options": {"n": 40}}
    return config(tmp_path, tok_dir, {"math": {"train": train, "test": {"source": str(test_dir), "format": "mgsm"},
                                               "val_per_lang": 5, "max_length": 256}},
                  mixtures=(("en",), ("en", "es")), eval_langs=MGSM)


def show_test(capsys, cfg, lang="es", n=3):
    return run(capsys, "data", "show", cfg, "--task", "math", "--split", "test", "--lang", lang, "--n", n,
               "--format", "json", "--quiet")


def test_mgsm_deleted_line_names_the_deleted_item(shared_data, tmp_path, tok_dir, capsys):
    d = mgsm_copy(shared_data, tmp_path)
    lines = (d / "mgsm_es.tsv").read_text("utf-8").splitlines(keepends=True)
    (d / "mgsm_es.tsv").write_text("".join(lines[:11] + lines[12:]), encoding="utf-8")  # problem 12 deleted
    code, _, err = show_test(capsys, math_config(tmp_path, tok_dir, d))
    one_error(code, err, "mgsm_es.tsv: 29 items in es, 30 in en", "en item 'mgsm-012' (gold 694) has no counterpart "
                                                                   "in es (deleted there?")


def test_mgsm_sorted_differently_fails_listing_the_items(shared_data, tmp_path, tok_dir, capsys):
    d = mgsm_copy(shared_data, tmp_path)
    lines = (d / "mgsm_es.tsv").read_text("utf-8").splitlines(keepends=True)
    (d / "mgsm_es.tsv").write_text("".join(sorted(lines)), encoding="utf-8")
    code, _, err = show_test(capsys, math_config(tmp_path, tok_dir, d))
    one_error(code, err, "mgsm_es.tsv: golds disagree between en and es at 29 of 30 items, first 'mgsm-001': en=18, es=")


def test_msvamp_shuffled_fails(shared_data, tmp_path, tok_dir, capsys):
    d = tmp_path / "msvamp"
    d.mkdir()
    for lang in MGSM:
        rows = json.loads((shared_data / "mcot" / "msvamp" / f"test_{lang}.json").read_text("utf-8"))[:40]
        if lang == "es":
            rows = rows[1:] + rows[:1]
        (d / f"test_{lang}.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    cfg = math_config(tmp_path, tok_dir, mgsm_copy(shared_data, tmp_path), train={"source": str(d), "format": "msvamp"})
    code, _, err = run(capsys, "data", "build", cfg, "--quiet")
    one_error(code, err, "test_es.json: golds disagree between en and es at 37 of 40 items, first 'msvamp-0000': en=8")
    assert nothing_written(tmp_path)


@pytest.mark.parametrize("answer,word", [("NaN", "'NaN' is not a finite number"), ("inf", "'inf' is not a finite number")])
def test_mgsm_non_finite_gold(shared_data, tmp_path, tok_dir, capsys, answer, word):
    d = mgsm_copy(shared_data, tmp_path)
    lines = (d / "mgsm_es.tsv").read_text("utf-8").splitlines(keepends=True)
    lines[4] = lines[4].split("\t")[0] + f"\t{answer}\n"
    (d / "mgsm_es.tsv").write_text("".join(lines), encoding="utf-8")
    code, _, err = show_test(capsys, math_config(tmp_path, tok_dir, d))
    one_error(code, err, "mgsm_es.tsv: line 5: field 'answer'", word)


def test_msvamp_infinity_gold(shared_data, tmp_path, tok_dir, capsys):
    d = tmp_path / "msvamp"
    d.mkdir()
    for lang in MGSM:
        rows = json.loads((shared_data / "mcot" / "msvamp" / f"test_{lang}.json").read_text("utf-8"))[:40]
        rows[3]["answer"] = "Infinity"
        (d / f"test_{lang}.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    cfg = math_config(tmp_path, tok_dir, mgsm_copy(shared_data, tmp_path), train={"source": str(d), "format": "msvamp"})
    code, _, err = run(capsys, "data", "build", cfg, "--quiet")
    one_error(code, err, "test_en.json: row 4: field 'answer': 'Infinity' is not a finite number")


def test_mgsm_bom_is_stripped(shared_data, tmp_path, tok_dir, capsys):
    d = mgsm_copy(shared_data, tmp_path)
    text = (d / "mgsm_en.tsv").read_text("utf-8")
    (d / "mgsm_en.tsv").write_text("\ufeff" + text, encoding="utf-8")
    code, out, err = show_test(capsys, math_config(tmp_path, tok_dir, d), lang="en", n=1)
    assert code == 0, err
    (first,) = json.loads(out)
    assert first["prompt"].startswith("Question:\nJanet") and "\ufeff" not in first["prompt"]


def test_mgsm_latin1_and_empty_file(shared_data, tmp_path, tok_dir, capsys):
    d = mgsm_copy(shared_data, tmp_path)
    (d / "mgsm_es.tsv").write_bytes("¿Cuántos?\t3\n".encode("latin-1"))
    cfg = math_config(tmp_path, tok_dir, d)
    code, _, err = show_test(capsys, cfg)
    one_error(code, err, "mgsm_es.tsv: not UTF-8 text")
    (d / "mgsm_es.tsv").write_text("", encoding="utf-8")
    code, _, err = show_test(capsys, cfg)
    one_error(code, err, "mgsm_es.tsv: no problems (an empty file)")


def test_huge_n_option_is_refused(tmp_path, tok_dir, capsys):
    for value in ("1e30", 1e30, -3):
        cfg = math_config(tmp_path, tok_dir, tmp_path,
                          train={"source": "synthetic", "format": "synthetic-math", "options": {"n": value}})
        code, _, err = run(capsys, "data", "build", cfg, "--quiet")
        one_error(code, err, "format 'synthetic-math': option 'n' must be an integer from 0 to 1,000,000,000")


def test_pool_smaller_than_train_plus_validation_names_the_source(tmp_path, tok_dir, capsys):
    cfg = config(tmp_path, tok_dir, {"api": {**api_task(HUB)["api"], "train_per_lang": 10, "val_per_lang": 2}})
    code, _, err = run(capsys, "data", "build", cfg, "--quiet")
    one_error(code, err, f"api training data ({HUB}): 4 of its 4 items available after the length filter (0 longer "
                         f"than max_length), need 2 validation + 10 training")


# -- content-addressed caches and atomic writes ---------------------------------------------------------
def msvamp_copy(shared_data, tmp_path, n=40):
    d = tmp_path / "msvamp"
    d.mkdir(exist_ok=True)
    for lang in MGSM:
        rows = json.loads((shared_data / "mcot" / "msvamp" / f"test_{lang}.json").read_text("utf-8"))[:n]
        (d / f"test_{lang}.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return d


def built(tmp_path):
    return sorted(p.parent.relative_to(tmp_path / "out" / "data") for p in (tmp_path / "out" / "data").rglob("manifest.json"))


def test_edited_source_rebuilds_and_says_why(shared_data, tmp_path, tok_dir, capsys):
    d = msvamp_copy(shared_data, tmp_path)
    cfg = math_config(tmp_path, tok_dir, mgsm_copy(shared_data, tmp_path), train={"source": str(d), "format": "msvamp"})
    assert run(capsys, "data", "build", cfg, "--quiet", "--mixture", "en+es")[0] == 0
    first = built(tmp_path)
    assert run(capsys, "data", "build", cfg, "--quiet", "--mixture", "en+es")[0] == 0
    assert built(tmp_path) == first  # unchanged sources: reused
    rows = json.loads((d / "test_es.json").read_text("utf-8"))
    rows[0]["question"] = "Editado: " + rows[0]["question"]
    (d / "test_es.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    code, _, err = run(capsys, "data", "build", cfg, "--quiet", "--mixture", "en+es")
    assert code == 0 and any("rebuilt, source files changed: test_es.json" in line for line in err), err
    new = [p for p in built(tmp_path) if p not in first]
    assert len(new) == 1
    manifest = json.loads((tmp_path / "out" / "data" / new[0] / "manifest.json").read_text("utf-8"))
    assert manifest["rebuilt"]["because"] == "source files changed: test_es.json"
    assert manifest["rebuilt"]["previous_key"] == first[0].parts[1]
    assert {f["path"] for f in manifest["source_checksums"]} == {"test_en.json", "test_es.json"}


def test_disk_full_during_build_leaves_no_half_mixture(shared_data, tmp_path, tok_dir, capsys, monkeypatch):
    import linguamix.data.build as B

    d = msvamp_copy(shared_data, tmp_path)
    cfg = math_config(tmp_path, tok_dir, mgsm_copy(shared_data, tmp_path), train={"source": str(d), "format": "msvamp"})
    real = B.write_parquet
    calls = []

    def full_on_second(path, rows, schema):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, rows, schema)

    monkeypatch.setattr(B, "write_parquet", full_on_second)
    code, _, err = run(capsys, "data", "build", cfg, "--quiet", "--mixture", "en+es")
    one_error(code, err, "mixtures/en+es: cannot write the mixture (no space left on the device); nothing of it was kept")
    mixtures = list((tmp_path / "out" / "data").rglob("mixtures"))
    assert all(not list(m.iterdir()) for m in mixtures)  # neither the mixture nor its temporary folder
    monkeypatch.setattr(B, "write_parquet", real)
    assert run(capsys, "data", "build", cfg, "--quiet", "--mixture", "en+es")[0] == 0
    (folder,) = [p for m in mixtures for p in m.iterdir()]
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "train.parquet", "validation.parquet"]

"""Loaders on the real benchmark files, and their errors on bad input."""
import json

import pytest

from linguamix import tasks
from linguamix.data import loaders, pools
from linguamix.errors import DataError


def load(fmt, src, langs, **options):
    """A built-in loader by its format name, as `data build` calls it."""
    return loaders.BUILTIN[fmt](src, langs, options)

ELEVEN = ["en", "es", "ja", "bn", "sw", "te", "fr", "de", "ru", "zh", "th"]


def test_mgsm_all_eleven_files(shared_data):
    loaded = load("mgsm", shared_data / "mgsm", ELEVEN)
    assert {lang: len(v) for lang, v in loaded.items()} == {lang: 250 for lang in ELEVEN}
    assert loaded.positional  # no ids in MGSM: paired by position, golds checked
    parallel, dropped = pools.check_parallel(loaded, source="mgsm", positional=True)
    assert dropped == []
    answers = {lang: [it.answer for it in items.values()] for lang, items in parallel.items()}
    assert all(a == answers["en"] for a in answers.values())  # identical golds in every language
    by_id = parallel["en"]
    # the four answers written with a thousands comma (lines 147, 202, 231, 250)
    assert [by_id[f"mgsm-{n:03d}"].answer for n in (147, 202, 231, 250)] == [2125, 114200, 276000, 5600]
    assert all(float(a).is_integer() and a > 0 for a in answers["en"])
    assert len(loaded.files) == 11 and all(len(f["sha256"]) == 64 for f in loaded.files)


def test_mgsm_prompt_is_the_mcot_format(shared_data):
    item = load("mgsm", shared_data / "mgsm", ["ja"])["ja"][0]
    ex = tasks.get("math").render(item)
    assert ex.prompt == f"Question:\n{item.question.strip()}\nAnswer:\n段階的に考えてみましょう。\n"
    assert ex.gold == 18 and ex.completion == ""


def test_mgsm_bad_rows_and_missing_language(tmp_path):
    (tmp_path / "mgsm_en.tsv").write_text("Q one\t3\nQ two has no answer\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"mgsm_en.tsv: line 2: expected 'question<TAB>answer'"):
        load("mgsm", tmp_path, ["en"])
    (tmp_path / "mgsm_en.tsv").write_text("Q one\tthree\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"mgsm_en.tsv: line 1: field 'answer': 'three' is not a number"):
        load("mgsm", tmp_path, ["en"])
    (tmp_path / "mgsm_en.tsv").write_text("Q one\t3\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"mgsm_sw.tsv: MGSM file for language 'sw' is missing"):
        load("mgsm", tmp_path, ["en", "sw"])


def test_api_bank_level1_has_399_cases_with_their_gold(shared_data):
    loaded = load("api-bank", shared_data / "api-bank", ["en"], split="test",
                                   levels=["level-1-given-desc"])
    items = loaded["en"]
    assert len(items) == 399 and len({it.item_id for it in items}) == 399
    gold = {f"{r['file']}#{r['id']}": r for r in map(json.loads, (shared_data / "api-bank" /
                                                                  "level-1-api-cases.jsonl").open())}
    for it in items:
        g = gold[it.item_id]
        assert (it.api_name, it.arguments) == (g["api_name"], g["param_dict"])
    assert len({it.api_name for it in items}) == 49


def test_api_prompts_are_byte_identical_to_the_official_test_file(shared_data):
    loaded = load("api-bank", shared_data / "api-bank", ["en"], split="test",
                                   levels=["level-1-given-desc"])
    official = {f"{r['file']}#{r['id']}": r for r in
                json.loads((shared_data / "api-bank" / "test-data" / "level-1-api.json").read_text("utf-8"))}
    for it in loaded["en"]:
        ex = tasks.get("api").render(it)
        ref = official[it.item_id]
        assert ex.prompt == ref["instruction"].strip() + "\n" + ref["input"]
        assert ex.completion == ref["expected_output"]


def test_api_descriptions_from_catalogue_without_test_file(shared_data, tmp_path):
    """A translated folder has only dialogues: descriptions come from apis.json (English)."""
    folder = tmp_path / "es" / "level-1-given-desc"
    folder.mkdir(parents=True)
    src = shared_data / "api-bank" / "level-1-given-desc" / "Calculator-level-1-1.jsonl"
    folder.joinpath(src.name).write_text(src.read_text("utf-8").replace("Can you calculate", "¿Puedes calcular"),
                                         encoding="utf-8")
    (tmp_path / "apis.json").write_text((shared_data / "api-bank" / "apis.json").read_text("utf-8"), encoding="utf-8")
    loaded = load("mapicall-bank", tmp_path, ["es"], split="test",
                                   levels=["level-1-given-desc"])
    (item,) = loaded["es"]
    ex = tasks.get("api").render(item)
    assert '"name": "Calculator"' in ex.prompt and "¿Puedes calcular" in ex.prompt
    assert ex.prompt.startswith("Generate an API request") and ex.prompt.endswith("Generate API Request:\n")
    assert ex.completion == "API-Request: [Calculator(formula='(5+6)*3')]"


def test_api_bank_is_english_only(shared_data):
    with pytest.raises(DataError, match="English only.*mapicall-bank"):
        load("api-bank", shared_data / "api-bank", ["en", "es"], split="test",
                              levels=["level-1-given-desc"])


def test_api_training_rows_lv3_in_the_level1_form(shared_data):
    """The 907 real lv3 rows: ToolSearcher gold calls and exact duplicates dropped, the rest in the test's form."""
    loaded = load("api-bank", shared_data / "api-bank", ["en"], split="train", files=["lv3-api-train.json"])
    items = loaded["en"]
    (src,) = loaded.sources
    assert (src["rows"], src["taken"], len(items)) == (907, 435, 435)
    assert src["dropped"] == {"gold call is ToolSearcher (retrieval, not the level-1 task)": 462,
                              "exact duplicate of an earlier row": 6, "gold API is never described or retrieved": 2,
                              "a ToolSearcher result is not readable as API descriptions": 2}
    assert len({it.api_name for it in items}) == 362
    ex = tasks.get("api").render(items[0])
    assert ex.completion == "API-Request: [HealthcareProviderAppointmentChecker(specialty='cardiologist', " \
                            "location='Los Angeles')]"
    assert ex.prompt.endswith("User: Find a cardiologist in Los Angeles for a check-up appointment.\n"
                              "Generate API Request:\n")  # the generator's TIME: suffix is cut


def test_bad_dialogue_line(tmp_path):
    d = tmp_path / "level-1-given-desc"
    d.mkdir()
    (d / "X-level-1-1.jsonl").write_text('{"role": "User", "text": "hi"}\n{"role": "API", "api_name": 3}\n')
    with pytest.raises(DataError, match=r"X-level-1-1.jsonl: line 2: an API turn needs"):
        load("api-bank", tmp_path, ["en"], split="test", levels=["level-1-given-desc"])


def test_msvamp_parallel_with_worked_equations(shared_data):
    langs = ["en", "es", "ja", "bn", "sw", "fr", "de", "ru", "zh", "th"]
    loaded = load("msvamp", shared_data / "mcot" / "msvamp", langs)
    parallel, dropped = pools.check_parallel(loaded, source="msvamp", positional=loaded.positional)
    assert dropped == [] and all(len(v) == 1000 for v in parallel.values())
    first = parallel["en"]["msvamp-0000"]
    assert first.answer == 8 and first.solution == "18 - 10 = 8. The answer is 8."
    assert parallel["ja"]["msvamp-0000"].solution == "18 - 10 = 8. 答えは8です。"
    worked = sum(" = " in it.solution for it in parallel["en"].values())
    assert worked > 900  # nearly every equation is worked out step by step


def test_mcot_records_local_jsonl(tmp_path):
    f = tmp_path / "mcot.jsonl"
    rows = [{"lang": "en", "id": 1, "question": "2+2?", "answer": "2 + 2 = 4. The answer is 4."},
            {"lang": "es", "id": 1, "question": "¿2+2?", "answer": "2 + 2 = 4. La respuesta es 4."},
            {"lang-id": "en-2", "question": "3+3?", "answer": "The answer is 6."},
            {"lang-id": "es-2", "question": "¿3+3?", "answer": "La respuesta es 6."}]
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    loaded = load("mcot", f, ["en", "es"])
    parallel, _ = pools.check_parallel(loaded, source="mcot")
    assert list(parallel["es"]) == ["mcot-1", "mcot-2"]
    assert [it.answer for it in parallel["es"].values()] == [4, 6]
    f.write_text('{"lang": "en", "question": "q", "answer": "The answer is 1."}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"mcot.jsonl: line 1: field 'lang-id' \(or 'id'\) is missing"):
        load("mcot", f, ["en"])
    f.write_text('{"lang": "en", "id": 1, "question": "q", "answer": "The answer is 1."}\n{broken\n')
    with pytest.raises(DataError, match=r"mcot.jsonl: line 2: invalid JSON"):
        load("mcot", f, ["en"])


def test_not_parallel_lists_first_mismatches():
    from linguamix.records import MathItem

    items = {"en": [MathItem("a", "en", "q", 1), MathItem("b", "en", "q", 2)],
             "sw": [MathItem("a", "sw", "q", 1), MathItem("c", "sw", "q", 3)]}
    with pytest.raises(DataError, match=r"not parallel \(en=2, sw=2\); first mismatches: 'b' missing in sw; "
                                        r"'c' missing in en"):
        pools.check_parallel(items, source="toy")
    kept, dropped = pools.check_parallel(items, source="toy", allow_missing=True)
    assert list(kept["en"]) == ["a"] and dropped == ["b", "c"]


def test_hub_failure_suggests_local_path(monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import: patch the constants
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError, match=r"cannot load 'juletxara/mgsm' \(en\) from the Hugging Face hub.*local path"):
        load("mgsm", "juletxara/mgsm", ["en"])


def test_selection_is_seeded_and_stable():
    ids = [f"i{k}" for k in range(100)]
    a = pools.select(ids, n_train=50, n_val=10, seed=0)
    b = pools.select(list(reversed(ids)), n_train=50, n_val=10, seed=0)
    assert a == b and not set(a.train_ids) & set(a.val_ids)
    assert pools.select(ids, n_train=50, n_val=10, seed=1) != a
    # adding items to the pool keeps the relative order of the old ones
    bigger = pools.select(ids + [f"j{k}" for k in range(50)], n_train=None, n_val=10, seed=0)
    order = [i for i in bigger.val_ids + bigger.train_ids if i.startswith("i")]
    assert order[:60] == list(a.val_ids + a.train_ids)


def test_length_filter_drops_in_all_languages():
    ids = [f"i{k}" for k in range(20)]
    lengths = {"en": {i: 10 for i in ids}, "bn": {i: 10 for i in ids}}
    lengths["bn"]["i7"] = 99  # too long only in Bengali
    sel = pools.select(ids, n_train=None, n_val=5, seed=0, max_length=50,
                       lengths=lambda batch: {l: {i: v[i] for i in batch} for l, v in lengths.items()})
    assert "i7" not in sel.train_ids + sel.val_ids and sel.dropped_too_long == ("i7",)
    assert len(sel.train_ids) + len(sel.val_ids) == 19
    with pytest.raises(DataError, match="after the length filter"):
        pools.select(ids, n_train=None, n_val=5, seed=0, max_length=5,
                     lengths=lambda batch: {l: {i: v[i] for i in batch} for l, v in lengths.items()})

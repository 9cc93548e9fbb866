"""API-Bank's training files (hub layout) put in the level-1 test prompt form, and their bad inputs."""
import json
import shutil
from pathlib import Path

import pytest

from linguamix import tasks
from linguamix.data import loaders
from linguamix.data.loaders import apibank_train as T
from linguamix.errors import DataError
from linguamix.tasks.api import LEVEL1_HEADER
from linguamix.tasks.api_call import format_call, parse_api_call

HUB = Path(__file__).parent / "fixtures" / "api-bank-hub"
KEYS = ["name", "description", "input_parameters", "output_parameters"]
HEADER = LEVEL1_HEADER.lstrip("\n")  # what the prompt opens with (render drops the leading newline)


def load(root, **options):
    return loaders.BUILTIN["api-bank"](Path(root), ["en"], {"split": "train", **options})


def render(items):
    return [tasks.get("api").render(it) for it in items]


def check_level1_form(examples):
    """What every training example must be: the test's header lines, its description schema, no template
    placeholder, the test's cue, and an `API-Request: [...]` completion that is the gold call."""
    for ex in examples:
        assert ex.prompt.startswith(HEADER), ex.item_id
        descs, _, rest = ex.prompt[len(HEADER):].partition("\nUser: ")
        for line in descs.split("\n"):
            d = json.loads(line)
            assert list(d) == KEYS and json.dumps(d) == line and d["name"] != "ToolSearcher"
        assert "{{" not in ex.prompt + ex.completion and "TIME:" not in rest
        assert ex.prompt.endswith("\nGenerate API Request:\n")
        call = parse_api_call(ex.completion)
        assert call and call.prefixed and ex.completion == format_call(call.api_name, call.arguments)
        assert ex.gold == {"api_name": call.api_name, "arguments": call.arguments}


def test_lv1_rows_in_the_test_form_duplicate_dropped():
    loaded = load(HUB)  # default: the paper's file, lv1-api-train.json
    assert [s["file"].rsplit("/", 1)[-1] for s in loaded.sources] == ["lv1-api-train.json"]
    assert (loaded.sources[0]["rows"], loaded.sources[0]["taken"]) == (5, 4)
    assert loaded.sources[0]["dropped"] == {T.DROP_DUPLICATE: 1} and loaded.warnings == []
    exs = render(loaded["en"])
    check_level1_form(exs)
    assert [ex.item_id for ex in exs] == ["lv1-api-train#0", "lv1-api-train#1", "lv1-api-train#2", "lv1-api-train#3"]
    # the header's time line is the test's; a JSON tool result is shown as the test shows results (Python str)
    assert "\nThe current year is 2023.\n" in exs[1].prompt and "2039-03-09" not in exs[1].prompt
    assert "API-Request: [Get_Available_Plots()]->[{'plot_id': 'P-12', 'size': 'small'}" in exs[1].prompt
    assert exs[1].completion == "API-Request: [Reserve_Plot(plot_id='P-7', member_name='Lena Ortiz', " \
                                "start_date='2039-03-14')]"
    desc = json.loads(exs[1].prompt[len(HEADER):].split("\n")[1])
    assert desc["name"] == "Reserve_Plot" and "start_date" in desc["input_parameters"]  # apiCode/parameters renamed


def test_every_file_with_its_drops_counted():
    loaded = load(HUB, files=list(T.TRAIN_FILES))
    by_file = {s["file"].rsplit("/", 1)[-1]: (s["rows"], s["taken"], s["dropped"]) for s in loaded.sources}
    assert by_file == {"lv1-api-train.json": (5, 4, {T.DROP_DUPLICATE: 1}),
                       "lv2-api-train.json": (4, 2, {T.DROP_SEARCHER: 2}),
                       "lv3-api-train.json": (8, 5, {T.DROP_SEARCHER: 2, T.DROP_UNDESCRIBED: 1})}
    exs = render(loaded["en"])
    check_level1_form(exs)
    by_id = {ex.item_id: ex for ex in exs}
    # lv2: the API a ToolSearcher call retrieved is described, the retrieval turn is gone
    lv2 = by_id["lv2-api-train#1"]
    assert '{"name": "get_bus_arrival"' in lv2.prompt and "ToolSearcher" not in lv2.prompt
    assert lv2.completion == "API-Request: [get_bus_arrival(route='42', stop='Elm Street')]"
    # lv3: a bare value (`location=Los Angeles`) and a bracket-less output re-rendered the test's way
    assert by_id["lv3-api-train#4"].completion == \
        "API-Request: [AlternativeMedicineProviderReferral(location='Los Angeles')]"
    assert by_id["lv3-api-train#7"].completion.startswith("API-Request: [")


def test_real_lv3_rows_have_the_test_form_and_no_test_api(shared_data):
    loaded = load(shared_data / "api-bank", files=["lv3-api-train.json"])
    exs = render(loaded["en"])
    assert len(exs) == 435
    check_level1_form(exs)
    test = loaders.BUILTIN["api-bank"](shared_data / "api-bank", ["en"], {"split": "test"})["en"]
    assert {ex.gold["api_name"] for ex in exs}.isdisjoint({it.api_name for it in test})


def test_time_row_keeps_the_rows_own_time():
    exs = render(load(HUB, files=["lv1-api-train.json", "lv3-api-train.json"], time="row")["en"])
    by_id = {ex.item_id: ex for ex in exs}
    assert "\nThe current time is 2039-03-09 18:56:09 Wednesday.\n" in by_id["lv1-api-train#1"].prompt
    # lv3's header says {{time}}; its time is the TIME: suffix the generator put on the user turn
    assert "\nThe current time is 2034-04-15 10:00:00.\n" in by_id["lv3-api-train#1"].prompt
    assert "{{" not in by_id["lv3-api-train#1"].prompt


def test_without_the_paper_file_what_is_there_is_used_with_a_warning(tmp_path):
    (tmp_path / "training-data").mkdir()
    shutil.copy(HUB / "training-data" / "lv3-api-train.json", tmp_path / "training-data")
    loaded = load(tmp_path)
    assert len(loaded["en"]) == 5
    assert any("lv1-api-train.json (the paper's training set) is not there; using lv3-api-train.json" in w
               for w in loaded.warnings)
    assert any("disjointness not checked" in w for w in loaded.warnings)
    with pytest.raises(DataError, match=r"training-data/lv1-api-train.json: training file not found"):
        load(tmp_path, files=["lv1-api-train.json"])


def test_unknown_file_and_bad_option_values():
    with pytest.raises(DataError, match=r"options.files: 'lv3-train.json' is not an API-Bank API-call training file"):
        load(HUB, files=["lv3-train.json"])
    with pytest.raises(DataError, match=r"options.time must be 'test' or 'row'"):
        load(HUB, time="2039")


def overlap_folder(tmp_path):
    """The test-api-overlap training file beside the fixture's test dialogues (Calculator is a test API)."""
    shutil.copytree(HUB / "level-1-given-desc", tmp_path / "level-1-given-desc")
    shutil.copytree(HUB / "bad" / "test-api-overlap" / "training-data", tmp_path / "training-data")
    return tmp_path


def test_a_test_api_in_training_is_an_error_or_dropped(tmp_path):
    root = overlap_folder(tmp_path)
    with pytest.raises(DataError, match=r"lv1-api-train.json: row 1: gold API 'Calculator' is one of the test's "
                                        r"APIs: train and test APIs must be disjoint"):
        load(root)
    loaded = load(root, test_apis="drop")
    assert loaded["en"] == [] and loaded.sources[0]["dropped"] == {T.DROP_TEST_API: 1}


def test_loose_literal_reads_toolsearcher_reprs():
    got = T.loose_literal("{'name': 'X', 'input_parameters': {'none'}, 'd': 'the user's id', 't': str}")
    assert got == {"name": "X", "input_parameters": ["none"], "d": "the user's id", "t": "str"}
    with pytest.raises(ValueError, match="unterminated string"):
        T.loose_literal("{'name': 'X}")


def translated_bank(tmp_path, edit):
    """A two-language mAPICall-Bank of the lv1 fixture: es rows carry ids (as `linguamix translate` writes)."""
    rows = json.loads((HUB / "training-data" / "lv1-api-train.json").read_text("utf-8"))
    rows = [{**r, "id": f"lv1-api-train#{i}"} for i, r in enumerate(rows)]
    for lang, lang_rows in (("en", rows), ("es", edit([dict(r) for r in rows]))):
        (tmp_path / lang / "training-data").mkdir(parents=True)
        (tmp_path / lang / "training-data" / "lv1-api-train.json").write_text(json.dumps(lang_rows), encoding="utf-8")
    return tmp_path


def test_translated_rows_paired_by_id_a_reject_dropped_everywhere(tmp_path):
    from linguamix.data import pools

    bank = translated_bank(tmp_path, lambda rows: rows[:1] + rows[2:])  # row 1 rejected by the translator
    loaded = loaders.BUILTIN["mapicall-bank"](bank, ["en", "es"], {"split": "train"})
    with pytest.raises(DataError, match=r"first mismatches: 'lv1-api-train#1' missing in es"):
        pools.check_parallel(loaded, source="t", check_golds=loaded.check_golds)
    parallel, dropped = pools.check_parallel(loaded, source="t", allow_missing=True, check_golds=loaded.check_golds)
    assert dropped == ["lv1-api-train#1"] and list(parallel["es"]) == ["lv1-api-train#0", "lv1-api-train#2",
                                                                       "lv1-api-train#3"]


def test_translated_rows_must_keep_the_gold_api(tmp_path):
    from linguamix.data import pools

    def rename(rows):
        rows[2]["output"] = rows[2]["output"].replace("get_thermostat_status", "set_thermostat")
        return rows

    loaded = loaders.BUILTIN["mapicall-bank"](translated_bank(tmp_path, rename), ["en", "es"], {"split": "train"})
    with pytest.raises(DataError, match=r"es/training-data/lv1-api-train.json: the gold of 1 item\(s\) differs between "
                                        r"languages, first 'lv1-api-train#2': en=\('get_thermostat_status'"):
        pools.check_parallel(loaded, source="t", check_golds=loaded.check_golds, where=loaded.where)

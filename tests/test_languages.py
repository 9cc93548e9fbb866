import json
import re

import langcodes
import pycountry
import pytest

from linguamix import languages
from linguamix.errors import ConfigError

STUDY = ["en", "es", "ja", "bn", "sw", "te", "fr", "de", "ru", "zh", "th"]


def test_table_has_the_study_languages_with_paper_roles():
    assert set(STUDY) <= set(languages.codes())
    assert languages.codes(role="core") == ["en", "es", "ja", "bn", "sw"]
    assert languages.codes(role="unseen") == ["te"]
    assert sorted(languages.codes(role="additional")) == sorted(["fr", "de", "ru", "zh", "th"])
    assert languages.codes(role=("core", "unseen"), resource="high") == ["en", "es", "ja"]
    assert languages.codes(role=("core", "unseen"), resource="low") == ["bn", "sw", "te"]
    assert languages.get("th").resource == "low" and languages.get("zh").resource == "high"


@pytest.mark.parametrize("code", STUDY)
def test_codes_and_scripts_are_valid_iso(code):
    lang = languages.get(code)
    assert pycountry.languages.get(alpha_2=code).alpha_3 == lang.iso639_3
    assert langcodes.Language.get(code).is_valid()
    assert pycountry.languages.get(alpha_2=code).name.startswith(lang.name)  # "Swahili (macrolanguage)"
    assert pycountry.scripts.get(alpha_4=lang.script) is not None
    # the script a language is usually written in, as CLDR says (Japanese: Jpan, Chinese: Hans)
    assert langcodes.Language.get(code).maximize().script == lang.script


@pytest.mark.parametrize("code", STUDY)
def test_script_regex_matches_the_language_trigger(code):
    lang = languages.get(code)
    letters = [ch for ch in lang.cot_trigger if ch.isalpha()]
    assert letters and all(lang.script_regex().match(ch) for ch in letters)


def test_triggers_equal_mcot_prompt_file(shared_data):
    triggers = json.loads((shared_data / "mcot" / "mcot_prompts.json").read_text("utf-8"))["triggers"]
    assert set(triggers) == set(STUDY)
    for code, phrase in triggers.items():
        assert languages.get(code).cot_trigger == phrase


def test_answer_phrases_match_mgsm_exemplars(shared_data):
    rows = [json.loads(line) for line in (shared_data / "mgsm" / "mgsm_exemplars.jsonl").open(encoding="utf-8")]
    for row in rows:
        lang = languages.get(row["lang"])
        # every exemplar's CoT states its answer with one of the language's answer phrases
        n = row["answer_number"]
        assert any(re.search(re.escape(p) + rf"\s*{n}", row["answer"]) for p in lang.answer_phrases), row
        assert row["answer"].count(lang.answer_phrase) >= 1 or row["lang"] == "de"  # de exemplars mix ist/lautet


def test_add_language_from_yaml(tmp_path):
    f = tmp_path / "extra.yaml"
    f.write_text("""
languages:
  - code: yo
    iso639_3: yor
    name: Yoruba
    resource: low
    family: Niger-Congo
    subfamily: Volta-Niger
    script: Latn
    unicode_scripts: [Latin]
    role: unseen
    cot_trigger: "Jẹ́ ká ronú ní ìgbésẹ̀ kọ̀ọ̀kan."
    answer_template: "Ìdáhùn ni {answer}."
    answer_phrases: ["Ìdáhùn ni"]
""", encoding="utf-8")
    (lang,) = languages.load_yaml(f)
    assert not languages.is_known("yo")  # reading a file registers nothing
    with languages.extended([lang]):
        assert languages.get("yo") == lang and lang.answer_phrase == "Ìdáhùn ni"
        assert "yo" in languages.evaluation_codes()
    assert not languages.is_known("yo")  # and the scope ends with the block


@pytest.mark.parametrize("bad, needle", [
    ("code: english", "field 'code'"),
    ("script: latin", "field 'script'"),
    ("resource: medium", "field 'resource'"),
    ("colour: red", "unknown field"),
])
def test_bad_language_yaml_names_the_field(tmp_path, bad, needle):
    base = {"code": "xx", "iso639_3": "xxx", "name": "X", "resource": "low", "family": "F", "subfamily": None,
            "script": "Latn", "unicode_scripts": ["Latin"], "role": "unseen", "cot_trigger": "t",
            "answer_template": "{answer}", "answer_phrases": ["a"]}
    key, value = bad.split(": ")
    base[key] = value
    import yaml
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump({"languages": [base]}), encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        languages.load_yaml(f)
    assert str(f) in str(e.value) and needle in str(e.value) and "\n" not in str(e.value)


def test_unknown_code_error_is_clear():
    with pytest.raises(ConfigError, match="unknown language code 'xx'"):
        languages.get("xx")

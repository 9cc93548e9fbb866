"""linguamix.data.synthetic: parallel, deterministic, multilingual, and scored right by the project's scorers."""
import ast
import copy
import re
from collections import defaultdict

import pytest

from linguamix import languages
from linguamix.data import synthetic as S
from linguamix.errors import ConfigError, DataError

STUDY = ["en", "es", "ja", "bn", "sw", "te", "fr", "de", "ru", "zh", "th"]
NUMBER = re.compile(r"\d+")


@pytest.fixture(scope="module")
def langs():
    return S.available_languages()


def by_item(records):
    out = defaultdict(dict)
    for r in records:
        out[r.item_id][r.lang] = r
    return out


def test_covers_every_study_language_in_many_scripts(langs):
    assert set(STUDY) <= set(langs)
    assert len({languages.get(c).script for c in langs}) >= 6  # Latn Jpan Beng Telu Cyrl Hans Thai


def test_math_is_deterministic_by_seed(langs):
    a = S.generate_math(12, langs, seed=3)
    assert a == S.generate_math(12, langs, seed=3)
    assert [r.answer for r in a] != [r.answer for r in S.generate_math(12, langs, seed=4)]


def test_api_is_deterministic_by_seed(langs):
    a = S.generate_api(12, langs, seed=3)
    assert a == S.generate_api(12, langs, seed=3)
    assert [r.gold for r in a] != [r.gold for r in S.generate_api(12, langs, seed=4)]


@pytest.mark.parametrize("gen", [S.generate_math, S.generate_api])
def test_item_k_does_not_depend_on_n_start_or_languages(gen):
    many = gen(30, ["en", "ja"], seed=1)
    assert gen(5, ["en", "ja"], seed=1) == many[:10]
    assert gen(5, ["en", "ja"], seed=1, start=25) == many[50:]
    assert gen(30, ["ja"], seed=1) == [r for r in many if r.lang == "ja"]
    assert [r.item_id for r in many[:4]] == [f"{S.MATH_PREFIX if gen is S.generate_math else S.API_PREFIX}{k:06d}"
                                               for k in (0, 0, 1, 1)]


def test_math_items_are_parallel_and_end_in_the_answer_sentence(langs):
    for item_id, versions in by_item(S.generate_math(40, langs, seed=0)).items():
        assert set(versions) == set(langs)
        answers = {r.answer for r in versions.values()}
        assert len(answers) == 1 and min(answers) >= 0
        operands = {tuple(sorted(map(int, NUMBER.findall(r.question)))) for r in versions.values()}
        assert len(operands) == 1, (item_id, operands)  # the same two numbers in every language
        for lang, r in versions.items():
            sentence = languages.get(lang).render_answer(r.answer)
            assert r.cot.endswith(sentence), (lang, r.cot)
            body = r.cot[: -len(sentence)].rstrip()
            # the equation comes right before the answer sentence
            assert re.search(rf"\d+ [+-] \d+ = {r.answer}\W?$", body), (lang, r.cot)
            assert "Question" not in r.question and "\n" not in r.question + r.cot


def test_math_operands_follow_the_range(langs):
    for r in S.generate_math(60, ["en"], seed=2, operand_range=(3, 5)):
        a, b = map(int, re.search(r"(\d+) [+-] (\d+) =", r.cot).groups())
        assert 3 <= a <= 5 and 3 <= b <= 5 and r.answer >= 0
    with pytest.raises(ConfigError, match="operand_range"):
        S.generate_math(1, ["en"], operand_range=(5, 3))


def test_text_is_in_each_language_s_own_script(langs):
    math = S.generate_math(5, langs, seed=0)
    api = S.generate_api(16, langs, seed=0)
    for r in math:
        rx = languages.get(r.lang).script_regex()
        assert rx.search(r.question) and rx.search(r.cot), r.lang
    for r in api:
        assert languages.get(r.lang).script_regex().search(r.dialogue[0]["text"]), (r.lang, r.dialogue)
    non_latin = [c for c in langs if languages.get(c).script != "Latn"]
    latin = re.compile(r"[A-Za-z]")
    for r in math:
        if r.lang in non_latin:
            assert not latin.search(r.question), (r.lang, r.question)


def test_russian_counting_words_agree_with_the_number():
    cat = S._text()["languages"]["ru"]["plural"]
    table = {1: "one", 2: "few", 4: "few", 5: "many", 11: "many", 12: "many", 21: "one", 22: "few", 25: "many"}
    assert {n: S._plural_category(n, cat) for n in table} == table
    assert S._plural_category(0, S._text()["languages"]["fr"]["plural"]) == "one"
    assert S._plural_category(0, S._text()["languages"]["en"]["plural"]) == "other"
    for r in S.generate_math(40, ["ru"], seed=0):
        a = int(NUMBER.search(r.question).group())
        noun = re.search(rf"\b{a} (\w+)", r.question).group(1)
        forms = [f for f in S._text()["languages"]["ru"]["nouns"].values() if noun in f.values()]
        assert forms and noun == forms[0][S._plural_category(a, cat)], r.question


def test_api_gold_calls_are_well_formed(langs):
    specs = {a["name"]: a for a in S.api_descriptions()}
    for r in S.generate_api(60, langs, seed=0, n_distractors=2):
        name, args = r.gold["api_name"], r.gold["arguments"]
        assert [a["name"] for a in r.apis].count(name) == 1 and len(r.apis) == 3
        assert list(args) == list(specs[name]["input_parameters"])
        assert all(isinstance(v, str) and v and "'" not in v for v in args.values())
        call = f"{name}(" + ", ".join(f"{k}='{v}'" for k, v in args.items()) + ")"
        node = ast.parse(call, mode="eval").body  # API-Bank's Name(key='value') form parses as Python
        assert node.func.id == name and {k.arg: k.value.value for k in node.keywords} == args
        assert r.dialogue[0]["role"] == "User" and len(r.dialogue) == 1


def test_api_values_are_copyable_except_enums_and_booleans(langs):
    enum_or_bool = {("SwitchLight", "room"), ("SwitchLight", "on")}
    for item_id, versions in by_item(S.generate_api(80, langs, seed=0)).items():
        names = {r.gold["api_name"] for r in versions.values()}
        assert len(names) == 1
        for lang, r in versions.items():
            text = r.dialogue[0]["text"]
            for k, v in r.gold["arguments"].items():
                if (r.gold["api_name"], k) not in enum_or_bool:
                    assert v in text, (lang, k, v, text)
        shared = [{k: v for k, v in r.gold["arguments"].items() if k not in ("text", "content")}
                  for r in versions.values()]
        assert all(s == shared[0] for s in shared), item_id  # only free text is translated


def test_free_text_values_are_translated_and_rooms_are_enum_values(langs):
    records = S.generate_api(200, langs, seed=0)
    messages = by_item(r for r in records if r.gold["api_name"] == "SendMessage")
    assert messages
    for versions in messages.values():
        assert len({r.gold["arguments"]["text"] for r in versions.values()}) == len(langs)
    rooms = {r.gold["arguments"]["room"] for r in records if r.gold["api_name"] == "SwitchLight"}
    assert rooms and rooms <= set(S._text()["shared"]["rooms"])
    ons = {r.gold["arguments"]["on"] for r in records if r.gold["api_name"] == "SwitchLight"}
    assert ons == {"True", "False"}


def test_api_descriptions_look_like_api_bank():
    for d in S.api_descriptions():
        assert list(d) == ["name", "description", "input_parameters", "output_parameters"]
        assert 1 <= len(d["input_parameters"]) <= 3
        for p in d["input_parameters"].values():
            assert set(p) == {"type", "description"} and p["type"] in ("str", "int", "bool")
    assert S.api_instruction(S.generate_api(1, ["en"])[0]).count('{"name": ') == 2


def test_every_template_renders_in_every_language(langs):
    # enough items that every (op, verb) and every API occurs; unknown fields would raise DataError
    math = S.generate_math(300, langs, seed=5)
    api = S.generate_api(300, langs, seed=5)
    assert {r.gold["api_name"] for r in api} == {d["name"] for d in S.api_descriptions()}
    assert all("{" not in r.question + r.cot for r in math)
    assert all("{" not in r.dialogue[0]["text"] for r in api)


def test_the_project_scorers_accept_the_gold_completions(langs):
    from linguamix import tasks

    for r in S.generate_math(10, langs, seed=0):
        assert tasks.get("math").score(r.cot, r.answer, r.lang).correct, (r.lang, r.cot)
    for r in S.generate_api(10, langs, seed=0):
        call = "API-Request: [{}({})]".format(r.gold["api_name"], ", ".join(f"{k}='{v}'" for k, v in r.gold["arguments"].items()))
        assert tasks.get("api").score(call, r.gold, r.lang).correct, call


def test_pretraining_corpus_is_plain_text_without_task_format(langs):
    corpus = S.pretraining_corpus(langs, 600, seed=0)
    assert corpus == S.pretraining_corpus(langs, 600, seed=0) and len(corpus) == 600
    assert corpus != S.pretraining_corpus(langs, 600, seed=1)
    text = "\n".join(corpus)
    for marker in ("Question:", "Answer:", "API-Request", "Generate API"):
        assert marker not in text
    for c in langs:
        lang = languages.get(c)
        assert lang.answer_phrase not in text and lang.cot_trigger not in text, c
        assert any(lang.script_regex().search(s) for s in corpus[langs.index(c)::len(langs)]), c
    assert any(re.fullmatch(r"(\d+ [+-] \d+ = \d+\. ?)+", s) for s in corpus)
    # the skills without the formats: worked problems (question, then its sum) and request -> call
    assert any(re.search(r"[?？].* \d+ [+-] \d+ = \d+", s) for s in corpus)
    calls = [s for s in corpus if re.fullmatch(r"# [^\n]+\n[A-Z][A-Za-z]+\((\w+='[^']*'(, )?)+\)", s)]
    assert calls and all(s.split("\n")[1].split("(")[0] in {a["name"] for a in S.api_descriptions()} for s in calls)


def test_unknown_or_textless_languages_fail_in_one_line():
    with pytest.raises(ConfigError, match="unknown language code 'xx'"):
        S.generate_math(1, ["xx"])
    yoruba = languages.Language(
        code="yo", iso639_3="yor", name="Yoruba", resource="low", family="Niger-Congo", subfamily=None,
        script="Latn", unicode_scripts=("Latin",), role="unseen", cot_trigger="Jẹ́ ká ronú.",
        answer_template="Ìdáhùn ni {answer}.", answer_phrases=("Ìdáhùn ni",))
    with languages.extended([yoruba]), pytest.raises(ConfigError, match="no synthetic text for language 'yo'"):
        S.generate_api(1, ["en", "yo"])
    with pytest.raises(ConfigError, match="n and start"):
        S.generate_api(-1, ["en"])


def test_text_file_check_names_the_broken_field():
    doc = copy.deepcopy(S._text())
    doc["languages"]["sw"]["messages"] = doc["languages"]["sw"]["messages"][:-1]
    with pytest.raises(DataError, match=r"languages\.sw\.messages: 7 entries, expected 8"):
        S._check(doc)
    doc = copy.deepcopy(S._text())
    del doc["languages"]["de"]["api"]["SetTimer"]
    with pytest.raises(DataError, match=r"languages\.de\.api: no template for \['SetTimer'\]"):
        S._check(doc)
    doc = copy.deepcopy(S._text())
    del doc["languages"]["th"]["rooms"]
    with pytest.raises(DataError, match=r"languages\.th: missing \['rooms'\]"):
        S._check(doc)
    doc = copy.deepcopy(S._text())
    doc["languages"]["fr"]["reminders"][0] = "l'heure"
    with pytest.raises(DataError, match="contains a quote"):
        S._check(doc)


def test_a_template_with_an_unknown_field_fails_clearly():
    fields = S._Fields("languages.xx.math.add[0]", {"a": 1}, {})
    with pytest.raises(DataError, match=r"languages\.xx\.math\.add\[0\]: unknown template field \{b\}"):
        S._render("{a} + {b}", fields)

import json

import pytest

from types import SimpleNamespace

from linguamix.evaluate import summarize
from linguamix.tasks.api import STOP, canonical_value
from linguamix.tasks.api import score_api as _score_api
from linguamix.tasks.api_call import ApiCall, ParseFailure, gold_call, parse_api_call


def score_api(completion, gold, **kw):
    """The API scorer's verdict with its detail fields at the top (`s.error_kind`, `s.strict_correct`)."""
    s = _score_api(completion, gold, **kw)
    return SimpleNamespace(correct=s.correct, strict_correct=s.strict, lenient_correct=s.lenient,
                           prediction=s.prediction, **s.detail)


# -- eval_anchors.md §7, cases 25-30 -------------------------------------------------------------------
def test_case25_unescaped_inner_quotes_equal_the_gold_string():
    completion = "API-Request: [RecordHealthData(user_id='A1', health_data='[{'name': 'x', 'value': '1'}]')]"
    gold = {"api_name": "RecordHealthData",
            "arguments": {"user_id": "A1", "health_data": "[{'name': 'x', 'value': '1'}]"}}
    s = score_api(completion, gold)
    assert s.correct and s.strict_correct and s.error_kind is None
    assert parse_api_call(completion).route == "fallback"
    # the same value written as a real Python list is the same structure
    typed = "[RecordHealthData(user_id='A1', health_data=[{\"name\": \"x\", \"value\": \"1\"}])]"
    assert score_api(typed, gold).correct


def test_case26_double_quoted_value_with_apostrophe():
    call = parse_api_call("[Translate(src=\"I'm fine\", tgt_lang='fr')]")
    assert call.arguments == {"src": "I'm fine", "tgt_lang": "fr"}


def test_case27_boolean_literal_equals_its_gold_string():
    assert score_api("[TimedSwitch(name='light', on=True)]",
                     {"api_name": "TimedSwitch", "arguments": {"name": "light", "on": "True"}}).correct
    assert not score_api("[TimedSwitch(name='light', on=False)]",
                         {"api_name": "TimedSwitch", "arguments": {"name": "light", "on": "True"}}).correct


def test_case28_empty_value_keeps_its_key():
    call = parse_api_call("[AddAgenda(content='', time='2023-01-01')]")
    assert call.arguments == {"content": "", "time": "2023-01-01"}
    assert score_api("[AddAgenda(content='', time='2023-01-01')]", "[AddAgenda(content='', time='2023-01-01')]").correct


def test_case29_only_the_first_call_counts():
    call = parse_api_call("[X(a='1')]->[Y(b='2')]")
    assert (call.api_name, call.arguments) == ("X", {"a": "1"})
    assert score_api("[X(a='1')]->[Y(b='2')]", {"api_name": "X", "arguments": {"a": "1"}}).correct


def test_case30_positional_argument_is_a_parse_error():
    s = score_api("[GetToday('x')]", "GetToday()")
    assert not s.correct and s.error_kind == "parse_failure" and s.prediction is None
    assert "positional" in s.parse_error


# -- parser -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,args", [
    ("[X(a='it\\'s', x=-1)]", {"a": "it's", "x": "-1"}),
    ("[X(date=2023-01-01, n=3)]", {"date": "2023-01-01", "n": "3"}),          # not Python: raw tokens
    ("[X(formula='(1+2)]', b='c')]", {"formula": "(1+2)]", "b": "c"}),        # `)]` inside a value
    ("[Réunion(lieu='Café')]", {"lieu": "Café"}),
    ("[GetToday()]", {}),
    ("[ GetToday ( ) ]", {}),
    ("[X(attendees=['John', 'Jane'], on=True, k=None)]", {"attendees": "['John', 'Jane']", "on": "True", "k": "None"}),
    ("[X(a='1', b='x', )]", {"a": "1", "b": "x"}),
])
def test_parser_reads_arguments(text, args):
    call = parse_api_call(text)
    assert isinstance(call, ApiCall) and call.arguments == args


def test_parser_failures_and_duplicates():
    none = parse_api_call("I cannot help with that.")
    assert isinstance(none, ParseFailure) and none.kind == "no_call" and not none
    assert parse_api_call("[X(a='1'").kind == "parse_failure"
    assert parse_api_call("[X(**kw)]").kind == "parse_failure"
    assert parse_api_call("[X('a', b='2')]").kind == "parse_failure"
    dup = parse_api_call("[X(a='1', a='2')]")
    assert dup.arguments == {"a": "2"} and dup.duplicate_keys == ("a",)
    dup = parse_api_call("[X(a='[{'k': 1}]', a='3')]")  # fallback splitter: last one wins too
    assert dup.arguments == {"a": "3"} and dup.duplicate_keys == ("a",) and dup.route == "fallback"


def test_prefix_and_stop():
    gold = {"api_name": "GetToday", "arguments": {}}
    assert STOP == ("\n",)
    bare = score_api("[GetToday()]", gold)
    assert bare.correct and not bare.strict_correct and bare.lenient_correct
    lead = score_api("\n  API-Request: [GetToday()]\nAI: Today is Monday.", gold)
    assert lead.correct and lead.strict_correct
    # a call on the line after the stop is never seen
    assert score_api("Sure.\nAPI-Request: [GetToday()]", gold).error_kind == "no_call"
    assert score_api("Sure.\nAPI-Request: [GetToday()]", gold, stop=()).correct


# -- canonicalisation and comparison ------------------------------------------------------------------
def test_canonical_values():
    assert canonical_value("['a', 'b']") == canonical_value(["a", "b"]) == canonical_value('["a", "b"]')
    assert canonical_value(" Café ") == canonical_value("Cafe\u0301")  # strip + NFC
    assert canonical_value("Paris") != canonical_value("paris")  # no case folding
    assert canonical_value("[1, 2]") != canonical_value("['1', '2']")
    assert canonical_value("{'b': '2', 'a': '1'}") == canonical_value({"a": "1", "b": "2"})
    assert canonical_value(True) == canonical_value("True")
    assert canonical_value("[not a list") == "[not a list"


@pytest.mark.parametrize("completion,kind", [
    ("[Other(a='1', b='2')]", "name_mismatch"),
    ("[Call(a='1')]", "key_mismatch"),
    ("[Call(a='1', b='2', c='3')]", "key_mismatch"),
    ("[Call(a='1', b='3')]", "value_mismatch"),
    ("[Call(a='1', b=' 2 ')]", None),
    ("", "no_call"),
])
def test_error_kinds(completion, kind):
    s = score_api(completion, "API-Request: [Call(a='1', b='2')]")
    assert s.error_kind == kind and s.correct is (kind is None)


def test_gold_forms():
    assert gold_call({"api_name": "X", "param_dict": {"a": "1"}}).arguments == {"a": "1"}
    assert gold_call("API-Request: [X(a='1')]").api_name == "X"
    assert gold_call("X(a='1')").arguments == {"a": "1"}
    for bad, why in (({"arguments": {}}, "needs a string 'api_name'"),
                     ({"api_name": "X", "arguments": ["a"]}, "needs an 'arguments' object"),
                     ("no call", "cannot be parsed"), (3, "must be a string or an object")):
        with pytest.raises(ValueError, match=why):
            gold_call(bad)


def test_summarize_counts_parse_failures_apart():
    gold = "[Call(a='1')]"
    rows = []
    for lang, completion in [("en", "[Call(a='1')]"), ("en", "[Call('1')]"), ("en", "nothing"),
                             ("fr", "[Call(a='2')]"), ("fr", "API-Request: [Call(a='1')]")]:
        s = score_api(completion, gold)
        rows.append({"lang": lang, "correct": s.correct, "strict": s.strict_correct,
                     "detail": {"error_kind": s.error_kind}})
    en, fr = summarize(rows, task="api")
    assert (en["lang"], en["n"], en["correct"], en["parse_failures"], en["no_call"], en["wrong_calls"]) == \
        ("en", 3, 1, 1, 1, 0)
    assert (fr["correct"], fr["wrong_calls"], fr["strict_correct"]) == (1, 1, 1)
    assert en["ci_low"] < en["accuracy"] < en["ci_high"]


# -- API-Bank level 1: every gold call against itself, and perturbed ----------------------------------
def _render(name: str, args: dict) -> str:
    return f"API-Request: [{name}(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")]"


def test_api_bank_level1_gold_calls(shared_data):
    rows = [json.loads(line) for line in
            (shared_data / "api-bank" / "level-1-api-cases.jsonl").read_text("utf-8").splitlines()]
    assert len(rows) == 399
    for r in rows:
        name, args, expected = r["api_name"], r["param_dict"], r["expected_output"]
        gold = {"api_name": name, "arguments": args}
        for completion in (expected, _render(name, args)):
            s = score_api(completion, gold)
            assert s.correct and s.strict_correct, (r["file"], r["id"], completion, s)
        assert score_api(expected, expected).correct  # a call string works as the gold, too

        assert score_api(expected.replace(f"[{name}(", f"[{name}X(", 1), gold).error_kind == "name_mismatch"
        assert score_api(_render(name, {**args, "extra_key": "1"}), gold).error_kind == "key_mismatch"
        for key, value in args.items():
            missing = {k: v for k, v in args.items() if k != key}
            assert score_api(_render(name, missing), gold).error_kind == "key_mismatch"
            changed = {**args, key: value + "0"}
            assert score_api(_render(name, changed), gold).error_kind == "value_mismatch", (r["id"], key)

import json
import subprocess
import sys

import pytest

from linguamix.cli import main


def write_rows(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def read_rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


MATH_ROWS = [  # eval_anchors §7 cases 3, 5, 7, 12, 16, 19, 20, 21
    {"id": "c3", "lang": "fr", "completion": "La réponse est 20 000.", "answer": 20000},
    {"id": "c5", "lang": "de", "completion": "Die Antwort ist 1.500.", "answer": "1500"},
    {"id": "c7", "lang": "bn", "completion": "উত্তর হল ১৮।", "answer": 18},
    {"id": "c12", "lang": "en", "completion": "The answer is -5.", "answer": 5},
    {"id": "c16", "lang": "en", "completion": "The answer is 36/2 = 18.", "answer": 18},
    {"id": "c19", "lang": "bn", "completion": "উত্তর হল 1,00,000।", "answer": "1,00,000"},
    {"id": "c20", "lang": "en", "completion": "…($5,125).", "answer": 125},
    {"id": "c21", "lang": "en", "completion": "I don't know.", "answer": 18},
]


def test_score_math_file(tmp_path, capsys):
    inp = write_rows(tmp_path / "pred.jsonl", MATH_ROWS)
    out = tmp_path / "out.jsonl"
    assert main(["score", "--task", "math", "--input", str(inp), "--output", str(out)]) == 0
    rows = read_rows(out)
    assert [r["id"] for r in rows] == [r["id"] for r in MATH_ROWS]
    assert all(r[k] == m[k] for r, m in zip(rows, MATH_ROWS) for k in m)  # the input is repeated as is
    got = {r["id"]: (r["prediction"], r["correct"]) for r in rows}
    assert got == {"c3": (20000, True), "c5": (1500, True), "c7": (18, True), "c12": (-5, False),
                   "c16": (18, True), "c19": (100000, True), "c20": (5125, False), "c21": (None, False)}
    assert rows[0]["strict"] is True and rows[0]["detail"]["route"] == "phrase"
    table = capsys.readouterr().err.splitlines()  # per-language summary on stderr
    assert table[0].split()[:4] == ["lang", "n", "correct", "accuracy"]
    assert [line.split()[0] for line in table[1:]] == ["fr", "de", "bn", "en", "ALL"]
    assert table[-1].split()[1:3] == ["8", "5"]


def test_score_api_file_with_summary(tmp_path, capsys):
    gold = {"api_name": "AddMeeting", "arguments": {"topic": "Sync", "attendees": "['John', 'Jane']"}}
    rows = [
        {"id": 1, "lang": "en", "completion": "API-Request: [AddMeeting(topic='Sync', attendees='['John', 'Jane']')]",
         "answer": gold},
        {"id": 2, "lang": "fr", "completion": "[AddMeeting(topic='Sync', attendees=['John', 'Jane'])]->ok",
         "answer": "API-Request: [AddMeeting(topic='Sync', attendees='['John', 'Jane']')]"},
        {"id": 3, "lang": "fr", "completion": "[AddMeeting('Sync')]", "answer": gold},
        {"id": 4, "lang": "fr", "completion": "[AddMeeting(topic='sync', attendees=['John', 'Jane'])]", "answer": gold},
    ]
    inp, out, summ = write_rows(tmp_path / "p.jsonl", rows), tmp_path / "o.jsonl", tmp_path / "s.json"
    assert main(["score", "--task", "api", "--input", str(inp), "--output", str(out), "--summary", str(summ)]) == 0
    assert capsys.readouterr().err == ""
    scored = read_rows(out)
    assert [r["correct"] for r in scored] == [True, True, False, False]
    assert scored[0]["prediction"] == {"api_name": "AddMeeting",
                                       "arguments": {"topic": "Sync", "attendees": "['John', 'Jane']"}}
    assert [r["strict"] for r in scored] == [True, False, False, False]
    assert scored[2]["prediction"] is None and scored[2]["detail"]["error_kind"] == "parse_failure"
    assert scored[3]["detail"]["error_kind"] == "value_mismatch"
    summary = json.loads(summ.read_text())
    assert summary["task"] == "api" and summary["overall"]["n"] == 4
    fr = next(r for r in summary["languages"] if r["lang"] == "fr")
    assert (fr["n"], fr["correct"], fr["parse_failures"], fr["wrong_calls"]) == (3, 1, 1, 1)


def test_mcot_compat_mode_through_the_cli(tmp_path, shared_data):
    lines = (shared_data / "mcot" / "outputs" / "mcot_ft_mgsm_fr.json").read_text("utf-8").splitlines()
    golds = [line.split("\t")[1] for line in (shared_data / "mgsm" / "mgsm_fr.tsv").read_text("utf-8").splitlines()]
    mcot = [json.loads(line) for line in lines]
    rows = [{"id": i, "lang": "fr", "completion": r["response"], "answer": g}
            for i, (r, g) in enumerate(zip(mcot, golds))]
    inp, out = write_rows(tmp_path / "fr.jsonl", rows), tmp_path / "o.jsonl"
    summ = tmp_path / "s.json"
    args = ["score", "--task", "math", "--input", str(inp), "--output", str(out), "--summary", str(summ)]
    assert main(args + ["--mode", "mcot_compat"]) == 0
    assert [r["correct"] for r in read_rows(out)] == [r["result"] for r in mcot]
    assert json.loads(summ.read_text())["languages"][0]["correct"] == 159
    assert main(args) == 0
    assert json.loads(summ.read_text())["languages"][0]["correct"] == 167  # + the space-grouped thousands


@pytest.mark.parametrize("bad_line,line_no,message", [
    ("{not json", 2, "invalid JSON"),
    ('{"id": 2, "lang": "en", "completion": "18"}', 2, "missing field(s) 'answer'"),
    ('{"id": 2, "lang": "xx", "completion": "18", "answer": 18}', 2, "field 'lang'"),
    ('{"id": 2, "lang": "en", "completion": null, "answer": 18}', 2, "field 'completion'"),
    ('{"id": 2, "lang": "en", "completion": "18", "answer": "eighteen"}', 2, "field 'answer'"),
    ('[1, 2]', 2, "expected a JSON object"),
])
def test_bad_rows_fail_with_one_line_and_write_nothing(tmp_path, capsys, bad_line, line_no, message):
    good = json.dumps({"id": 1, "lang": "en", "completion": "The answer is 18.", "answer": 18})
    inp = write_rows(tmp_path / "pred.jsonl", [good, bad_line, good])
    out = tmp_path / "out.jsonl"
    assert main(["score", "--task", "math", "--input", str(inp), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{inp}: line {line_no}: " in err and message in err
    assert not out.exists() and list(tmp_path.iterdir()) == [inp]


def test_bad_api_gold_and_bad_mode(tmp_path, capsys):
    inp = write_rows(tmp_path / "p.jsonl", [{"id": 1, "lang": "en", "completion": "[A()]", "answer": {"name": "A"}}])
    out = tmp_path / "o.jsonl"
    assert main(["score", "--task", "api", "--input", str(inp), "--output", str(out)]) == 2
    assert "line 1: field 'answer'" in capsys.readouterr().err
    assert main(["score", "--task", "api", "--mode", "mcot_compat", "--input", str(inp), "--output", str(out)]) == 2
    assert "--mode" in capsys.readouterr().err
    assert main(["score", "--task", "math", "--input", str(tmp_path / "missing.jsonl"), "--output", str(out)]) == 2
    assert not out.exists()


def test_entry_point(tmp_path):
    inp = write_rows(tmp_path / "p.jsonl", MATH_ROWS[:1])
    r = subprocess.run([sys.executable, "-m", "linguamix", "score", "--task", "math", "--input", str(inp),
                        "--output", str(tmp_path / "o.jsonl")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert read_rows(tmp_path / "o.jsonl")[0]["correct"] is True

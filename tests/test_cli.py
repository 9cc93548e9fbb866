import json
import subprocess
import sys

from linguamix.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "linguamix", *args], capture_output=True, text=True)


def test_design_paper_json(capsys):
    assert main(["design", "--preset", "paper", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 22
    assert all({"id", "languages", "n_languages"} <= set(r) for r in rows)
    assert all(r["n_languages"] == len(r["languages"]) for r in rows)


def test_plan_paper_json(repo, capsys):
    assert main(["plan", str(repo / "configs" / "paper.yaml"), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    train = [r for r in rows if r["kind"] == "train"]
    assert len(train) == 220 and len(rows) == 230
    assert all({"model", "task", "mixture"} <= set(r) for r in rows)
    assert len({(r["model"], r["task"], r["mixture"]) for r in train}) == 220


def test_design_csv(capsys):
    assert main(["design", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("id,") and len(lines) == 23


def test_every_subcommand_has_help():
    from linguamix.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in sub.choices:
        r = run(name, "--help")
        assert r.returncode == 0 and "usage" in r.stdout, name

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


def test_every_subcommand_has_help(capsys):
    """`--help` on every command and every nested one (data build, study run, bench train, ...)."""
    import argparse

    import pytest

    from linguamix.cli import build_parser

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield path + [name]
                    yield from walk(child, path + [name])

    paths = list(walk(build_parser(), []))
    assert ["data", "build"] in paths and ["study", "run"] in paths and ["bench", "train"] in paths
    for path in paths:
        with pytest.raises(SystemExit) as e:
            main([*path, "--help"])
        assert e.value.code == 0
        assert "usage: linguamix " + " ".join(path) in capsys.readouterr().out

"""The vLLM backend for real, against the HF backend, on a tiny random-init Qwen3 model (CPU or GPU).

Runs only where vLLM is importable, e.g. the separate CPU environment of docs/evaluation.md:

    /work/venv-vllm/bin/python -m pytest -q tests/test_vllm.py

Both backends run in fp32 (`dtype="fp32"`): in bf16 the two libraries round differently and greedy
decoding of a random model, whose logits are full of near-ties, drifts apart after a few tokens.
"""
from collections import Counter

import pytest

try:
    import vllm  # noqa: F401
except ImportError:
    pytest.skip("vLLM is not installed here (see docs/evaluation.md: /work/venv-vllm/bin/python -m pytest "
                "tests/test_vllm.py)", allow_module_level=True)

import torch

from linguamix import tasks
from linguamix.data import synthetic
from linguamix.data.loaders.synthetic import load_synthetic
from linguamix.evaluate import evaluate, make_generator
from linguamix.data.tokenize import load_tokenizer
from linguamix.store import RunDir
from linguamix.tinymodel import build_random_tiny, save_model, train_tokenizer

LANGS = ["en", "es", "ja", "bn"]
NEW = 16
MIN_AGREEMENT = 0.9
"""Greedy decoding in fp32 agreed on 24/24 prompts when this was written; a near-tie may flip one."""


def math_examples(n: int = 6):
    loaded = load_synthetic("synthetic-math", LANGS, {"n": n, "start": 8000})
    return {lang: [tasks.get("math").render(item) for item in loaded[lang]] for lang in LANGS}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A varied random model (head_dim 64: vLLM's CPU attention rejects 16) whose EOS is a token it emits
    now and then, so that the EOS path is exercised; saved with save_pretrained."""
    tok = train_tokenizer(synthetic.pretraining_corpus(LANGS, 800), 400)
    model = build_random_tiny("qwen3", tok, hidden=64, layers=2, heads=1, head_dim=64, seed=0)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2 and "embed" not in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    prompts = [ex.prompt for exs in math_examples().values() for ex in exs]
    with torch.no_grad():
        counts = Counter()
        for p in prompts:
            ids = tok(p, return_tensors="pt")
            out = model.generate(**ids, do_sample=False, max_new_tokens=NEW, pad_token_id=tok.pad_token_id)
            counts.update(set(out[0, ids["input_ids"].shape[1] + 2:].tolist()))
    # a token that appears in some completions but not most: some rows end on it, others run on
    eos_id = min(counts, key=lambda t: (abs(counts[t] - len(prompts) // 4), t))
    tok.eos_token = tok.convert_ids_to_tokens(eos_id)
    model.config.eos_token_id = eos_id
    out_dir = tmp_path_factory.mktemp("tiny-vllm")
    save_model(model, tok, out_dir)
    return str(out_dir)


@pytest.fixture(scope="module")
def generators(model_dir):
    tok = load_tokenizer(model_dir)
    hf = make_generator("hf", model_dir, tok, batch_size=8, dtype="fp32")
    vl = make_generator("vllm", model_dir, tok, dtype="fp32")
    return hf, vl


def agreement(a, b) -> float:
    return sum(x.text == y.text for x, y in zip(a, b)) / len(a)


def test_vllm_greedy_matches_hf(generators):
    hf, vl = generators
    prompts = [ex.prompt for exs in math_examples().values() for ex in exs]
    for stop in (tasks.get("math").stop, ("e", "\n")):
        a = hf.generate(prompts, max_new_tokens=NEW, stop=stop)
        b = vl.generate(prompts, max_new_tokens=NEW, stop=stop)
        assert agreement(a, b) >= MIN_AGREEMENT, [(x.text, y.text) for x, y in zip(a, b) if x.text != y.text]
        same = [(x, y) for x, y in zip(a, b) if x.text == y.text]
        assert all(x == y for x, y in same)  # token counts and finish reasons too
        assert all(not any(s in x.text for s in stop) for x in b)
        assert vl.last_stats.items == len(prompts) and vl.last_stats.tokens_per_s > 0
    reasons = {g.finish_reason for g in a + b}
    assert {"eos", "stop"} <= reasons, reasons


def test_evaluate_with_the_vllm_backend(generators, tmp_path):
    hf, vl = generators
    examples = math_examples(4)
    s_hf = evaluate(hf, "math", examples, RunDir(tmp_path / "hf"), max_new_tokens=NEW, progress=False)
    s_vl = evaluate(vl, "math", examples, RunDir(tmp_path / "vllm"), max_new_tokens=NEW, progress=False)
    assert s_vl["backend"] == "vllm" and s_vl["n_items"] == s_hf["n_items"] == 4 * len(LANGS)
    rows_hf = RunDir(tmp_path / "hf").read_predictions("test")
    rows_vl = RunDir(tmp_path / "vllm").read_predictions("test")
    assert [r["item_id"] for r in rows_vl] == [r["item_id"] for r in rows_hf]
    assert [r["prompt_hash"] for r in rows_vl] == [r["prompt_hash"] for r in rows_hf]
    same = sum(a["completion"] == b["completion"] for a, b in zip(rows_hf, rows_vl)) / len(rows_hf)
    assert same >= MIN_AGREEMENT


def test_epoch_end_selection_through_vllm_matches_hf(model_dir, tmp_path):
    """A tiny run (the varied head_dim-64 model above, 3 epochs, selection every epoch) trained twice, with
    eval.backend hf (HF generate in the trainer) and vllm (the epoch's weights saved, vLLM in a child
    process): the same validation completions (>= MIN_AGREEMENT), accuracies and selected epoch."""
    import json

    import yaml

    from linguamix.config import load_config
    from linguamix.records import RunSpec
    from linguamix.study.pipeline import execute

    runs = {}
    for backend in ("hf", "vllm"):
        doc = {"name": "t", "output_dir": str(tmp_path / "store"),
               "models": [{"id": model_dir, "name": "tiny", "family": "qwen3", "size_b": 1e-5}],
               "tasks": {"math": {"train": {"source": "synthetic", "format": "synthetic-math", "options": {"n": 40}},
                                  "test": {"source": "synthetic", "format": "synthetic-math",
                                           "options": {"n": 4, "start": 100000}},
                                  "train_per_lang": 32, "val_per_lang": 6, "max_length": 256,
                                  "max_new_tokens": NEW}},
               "mixtures": {"design": [["en", "es"]]},
               "train": {"epochs": 3, "global_batch_size": 16, "learning_rate": 1e-3, "logging_steps": 1,
                         "gradient_checkpointing": False},
               "eval": {"languages": ["en", "es"], "batch_size": 8, "backend": backend}}
        (tmp_path / "study.yaml").write_text(yaml.safe_dump(doc))
        rd = RunDir(tmp_path / backend)
        assert execute(load_config(tmp_path / "study.yaml"), RunSpec("tiny", "math", "en+es"), rd, progress=False,
                       evaluate_test=False) == 0
        curve = rd.read_selection()
        rows = [rd.read_predictions(f"validation-epoch{e}") for e in (1, 2, 3)]
        selected = json.loads((rd.model_dir / "linguamix_selected.json").read_text())["epoch"]
        runs[backend] = (curve, rows, selected)
        events = [e for e in rd.read_log("events") if e.get("event") == "validation_generation"]
        print(  # the numbers of docs/evaluation.md ("Epoch-end validation through vLLM"), seen with -s
f"\n{backend}: generation_s per epoch {[c['generation_s'] for c in curve]}, total "
              f"{sum(c['generation_s'] for c in curve):.1f} s; selected epoch {selected}; acc "
              f"{[c['acc'] for c in curve]}; child (start, generate) s {[(e['load_s'], e['generate_s']) for e in events]}")
        from linguamix.timing import shares_line, stage_totals

        timed = rd.read_timings()
        vals = [r for r in timed if r["stage"] == "validation"]
        assert len(vals) == 3 and all(r["backend"] == backend and r["generated_tokens"] > 0 for r in vals)
        print(f"{backend}: validation {[r['seconds'] for r in vals]} s per epoch; run stages: "
              f"{shares_line(stage_totals(timed))}")
    (c_hf, r_hf, s_hf), (c_vl, r_vl, s_vl) = runs["hf"], runs["vllm"]
    assert [c["backend"] for c in c_hf] == ["hf"] * 3 and [c["backend"] for c in c_vl] == ["vllm"] * 3
    for epoch, (a, b) in enumerate(zip(r_hf, r_vl), 1):
        assert [x["item_id"] for x in a] == [y["item_id"] for y in b]
        same = sum(x["completion"] == y["completion"] for x, y in zip(a, b)) / len(a)
        print(f"epoch {epoch}: {same:.0%} of {len(a)} validation completions identical")
        assert same >= MIN_AGREEMENT, [(x["completion"], y["completion"]) for x, y in zip(a, b)
                                       if x["completion"] != y["completion"]]
    assert [c["acc"] for c in c_vl] == [c["acc"] for c in c_hf]
    assert [c["is_best"] for c in c_vl] == [c["is_best"] for c in c_hf] and s_vl == s_hf

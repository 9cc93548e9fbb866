"""Generation backends: batched left-padded HF generation reproduces one-prompt-at-a-time generation
(Qwen3 and Gemma-3 tiny models), stop strings are cut the way `tasks.cut_at_stop` cuts, only in the
generated text, and throughput is reported."""
import copy
import os

import pytest
import torch

from linguamix import tasks
from linguamix.data import synthetic
from linguamix.data.loaders.synthetic import load_synthetic
from linguamix.generate import Generation, HFGenerator, decode_completion
from linguamix.tasks import cut_at_stop
from linguamix.tinymodel import build_random_tiny, train_tokenizer

LANGS = ["en", "es", "ja", "bn"]
NEW = 12


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(synthetic.pretraining_corpus(LANGS, 800), 400)


def varied_model(family: str, tok):
    """A random tiny model with large weights (embeddings excepted): with the default 0.02 init and tied
    embeddings it repeats the last prompt token forever, and every comparison below would hold trivially."""
    model = build_random_tiny(family, tok, hidden=64, layers=2, heads=1, head_dim=64, seed=0)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2 and "embed" not in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model.eval()


@pytest.fixture(scope="module")
def models(tok):
    return {family: varied_model(family, tok) for family in ("qwen3", "gemma3")}


@pytest.fixture(scope="module")
def prompts():
    """Math prompts in four scripts; some cut short so that a batch mixes very different lengths."""
    loaded = load_synthetic("synthetic-math", LANGS, {"n": 3, "start": 7000})
    out = [tasks.get("math").render(item).prompt for lang in LANGS for item in loaded[lang]]
    return [p if i % 3 else p[: len(p) // 2] for i, p in enumerate(out)]


@pytest.mark.parametrize("family", ["qwen3", "gemma3"])
def test_batched_left_padded_equals_one_at_a_time(family, models, tok, prompts):
    model = models[family]
    lengths = {len(tok(p)["input_ids"]) for p in prompts}
    assert len(lengths) >= 4  # batches really are padded
    batched = HFGenerator(model, tok, batch_size=5).generate(prompts, max_new_tokens=NEW)
    single = HFGenerator(model, tok, batch_size=1).generate(prompts, max_new_tokens=NEW)
    assert [g.text for g in batched] == [g.text for g in single]
    assert batched == single  # token counts and finish reasons too
    assert len({g.text for g in batched}) > len(prompts) // 2  # the model is not degenerate
    assert all(g.n_new_tokens == NEW if g.finish_reason == "length" else g.finish_reason == "eos" for g in batched)
    assert [g.n_prompt_tokens for g in batched] == [len(tok(p)["input_ids"]) for p in prompts]


@pytest.mark.parametrize("family", ["qwen3", "gemma3"])
def test_stop_string_cuts_like_cut_at_stop(family, models, tok, prompts):
    model = models[family]
    full = HFGenerator(model, tok, batch_size=4).generate(prompts, max_new_tokens=NEW)
    # a stop string taken from the middle of one completion: that row stops there, the others may not
    text = next(g.text for g in full if len(g.text) > 8)
    stop = text[4:7]
    for batch_size in (4, 1):
        cut = HFGenerator(model, tok, batch_size=batch_size).generate(prompts, max_new_tokens=NEW, stop=[stop])
        for f, c in zip(full, cut):
            assert c.text == cut_at_stop(f.text, [stop])
            assert stop not in c.text
            if stop in f.text:
                assert c.finish_reason == "stop" and c.n_new_tokens <= f.n_new_tokens
            else:
                assert c == f
        assert any(c.finish_reason == "stop" for c in cut)


def test_stop_string_spanning_the_prompt_does_not_stop(models, tok, prompts):
    """A stop string that starts in the prompt ("\\n" + the first generated characters) is not a stop:
    vLLM looks at generated text only, and so must the HF backend (transformers' stop_strings would stop)."""
    model = models["qwen3"]
    prompt = next(p for p in prompts if p.endswith("\n"))
    [full] = HFGenerator(model, tok).generate([prompt], max_new_tokens=NEW)
    stop = "\n" + full.text[:3]
    assert stop not in full.text
    [got] = HFGenerator(model, tok).generate([prompt], max_new_tokens=NEW, stop=[stop])
    assert got == full and got.finish_reason == "length"


def test_eos_ends_a_row_and_is_not_in_the_text(models, tok, prompts):
    """Make a token the model emits mid-way the EOS: that row ends there (finish 'eos', EOS counted, not
    decoded), rows of the same batch go on, and batched == one at a time (pad != EOS here)."""
    model = models["qwen3"]
    first = HFGenerator(model, tok, batch_size=1).generate(prompts[:1], max_new_tokens=NEW)[0]
    ids = tok(prompts[0], add_special_tokens=True)["input_ids"]
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             do_sample=False, max_new_tokens=NEW, pad_token_id=tok.pad_token_id)
    new_ids = out[0, len(ids):].tolist()
    assert tok.decode(new_ids, skip_special_tokens=True) == first.text
    k = 3
    while new_ids.index(new_ids[k]) != k:  # the first occurrence of a token, so the row ends exactly there
        k += 1
    eos_tok = copy.deepcopy(tok)
    eos_tok.eos_token = tok.convert_ids_to_tokens(new_ids[k])
    assert eos_tok.eos_token_id == new_ids[k] and eos_tok.pad_token_id != eos_tok.eos_token_id
    batched = HFGenerator(model, eos_tok, batch_size=5).generate(prompts, max_new_tokens=NEW)
    single = HFGenerator(model, eos_tok, batch_size=1).generate(prompts, max_new_tokens=NEW)
    assert batched == single
    assert batched[0] == Generation(eos_tok.decode(new_ids[:k], skip_special_tokens=True), len(ids), k + 1, "eos")
    assert any(g.finish_reason == "length" for g in batched)


def test_checkpoint_generation_config_is_ignored_and_restored(tok, prompts):
    """A checkpoint's generation_config (sampling, repetition penalty) must not change greedy decoding."""
    from transformers import GenerationConfig

    model = varied_model("qwen3", tok)
    reference = HFGenerator(model, tok, batch_size=4).generate(prompts, max_new_tokens=NEW)
    own = GenerationConfig(do_sample=True, temperature=3.0, top_k=5, repetition_penalty=3.0, no_repeat_ngram_size=1)
    model.generation_config = own
    model.train()
    assert HFGenerator(model, tok, batch_size=4).generate(prompts, max_new_tokens=NEW) == reference
    assert model.generation_config is own and model.training


def test_stats_and_progress_bar(models, tok, prompts, capsys):
    gen = HFGenerator(models["qwen3"], tok, batch_size=4)
    out = gen.generate(prompts, max_new_tokens=4, progress="demo")
    stats = gen.last_stats
    assert (stats.backend, stats.items, stats.new_tokens) == ("hf", len(prompts), sum(g.n_new_tokens for g in out))
    assert stats.items_per_s == pytest.approx(stats.items / stats.seconds)
    assert stats.tokens_per_s == pytest.approx(stats.new_tokens / stats.seconds)
    d = stats.to_dict()
    assert {"items_per_s", "tokens_per_s", "seconds", "new_tokens"} <= set(d)
    err = capsys.readouterr().err
    assert "demo" in err and "item/s" in err and "tok_s" in err
    assert gen.generate([], max_new_tokens=4) == [] and gen.last_stats.items == 0


def test_decode_completion_drops_eos_and_cuts(tok):
    ids = tok("The answer is 7.\nQuestion: next", add_special_tokens=False)["input_ids"]
    assert decode_completion(tok, ids + [tok.eos_token_id], ["\nQuestion:"]) == "The answer is 7."
    assert decode_completion(tok, ids, ()) == "The answer is 7.\nQuestion: next"


def test_batch_size_must_be_positive(models, tok):
    from linguamix.errors import ConfigError

    with pytest.raises(ConfigError, match="batch_size"):
        HFGenerator(models["qwen3"], tok, batch_size=0)


def test_batches_are_length_sorted_and_capped(models, tok):
    gen = HFGenerator(models["qwen3"], tok, batch_size=3, max_batch_tokens=100)
    lengths = [5, 40, 7, 38, 6, 39, 8]
    batches = gen._batches(lengths, max_new_tokens=10)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths, reverse=True)
    assert all(len(b) <= 3 and len(b) * (lengths[b[0]] + 10) <= 100 or len(b) == 1 for b in batches)


# -- generation in a child process (subgen: the epoch-end validation through vLLM) ---------------------
STAND_IN = '''
import os, sys, time
from linguamix.generate import Generation, HFGenerator


class Echo:
    def generate(self, prompts, *, max_new_tokens, stop=()):
        return [Generation(f"{p[::-1]}|{max_new_tokens}|{'/'.join(stop)}", 0, 0) for p in prompts]


def echo(model_dir, tok, **options):
    return Echo()


def hf(model_dir, tok, **options):
    import torch
    from linguamix.models import load_model
    return HFGenerator(load_model(model_dir, dtype=torch.float32, attn_implementation="sdpa"), tok, **options)


def crash(model_dir, tok, **options):
    print("engine starting", flush=True)
    raise RuntimeError("the engine could not allocate its KV cache")


def silent_exit(model_dir, tok, **options):
    os._exit(0)


def hang(model_dir, tok, **options):
    time.sleep(600)
'''


@pytest.fixture
def stand_in(tmp_path, monkeypatch, models, tok):
    """A generator module the child can import, and a saved model folder (weights + tokenizer)."""
    from linguamix.tinymodel import save_model

    (tmp_path / "standin_gen.py").write_text(STAND_IN)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return save_model(copy.deepcopy(models["qwen3"]), tok, tmp_path / "model")


def test_subprocess_round_trips_prompts_and_generations(stand_in, tmp_path):
    from linguamix.subgen import generate_in_subprocess

    prompts = ["Frage: 2+2?\n", "質問：三たす四は？", "", "a \"quoted\"\tline\n\n"]
    r = generate_in_subprocess(stand_in, prompts, max_new_tokens=7, stop=("\nQ:", "é"), work_dir=tmp_path / "w",
                               factory="standin_gen:echo")
    assert r.texts == [f"{p[::-1]}|7|\nQ:/é" for p in prompts]
    assert set(r.stats) >= {"load_s", "generate_s"} and r.seconds > 0
    assert not list((tmp_path / "w").glob(".*.tmp*"))  # request and response were written whole, then renamed


def test_subprocess_generation_equals_generation_here(stand_in, tmp_path, models, tok, prompts):
    """HF generate in the child from the saved folder gives the in-process generator's completions."""
    from linguamix.subgen import generate_in_subprocess

    stop = tasks.get("math").stop
    here = HFGenerator(models["qwen3"], tok, batch_size=4).generate(prompts, max_new_tokens=NEW, stop=stop)
    r = generate_in_subprocess(stand_in, prompts, max_new_tokens=NEW, stop=stop, work_dir=tmp_path / "w",
                               factory="standin_gen:hf", options={"batch_size": 4})
    assert r.texts == [g.text for g in here]
    assert r.stats["generation"]["items"] == len(prompts)


@pytest.mark.parametrize("factory, says", [("standin_gen:crash", "exit code 1): RuntimeError: the engine could not"),
                                           ("standin_gen:silent_exit", "no response written): no output")])
def test_a_failing_subprocess_is_one_line_naming_its_log(stand_in, tmp_path, factory, says):
    from linguamix.errors import LinguamixError
    from linguamix.subgen import generate_in_subprocess

    with pytest.raises(LinguamixError) as err:
        generate_in_subprocess(stand_in, ["x"], max_new_tokens=2, work_dir=tmp_path / "w", factory=factory)
    msg = str(err.value)
    assert "\n" not in msg and says in msg and msg.endswith(f"see {tmp_path / 'w' / 'generate.log'}"), msg
    if factory.endswith("crash"):
        assert "engine starting" in (tmp_path / "w" / "generate.log").read_text()


def test_a_hanging_subprocess_is_killed_at_its_timeout(stand_in, tmp_path):
    from linguamix.errors import LinguamixError
    from linguamix.subgen import generate_in_subprocess

    with pytest.raises(LinguamixError, match=r"ran past 5 s and was killed; see .*generate\.log$"):
        generate_in_subprocess(stand_in, ["x"], max_new_tokens=2, work_dir=tmp_path / "w", factory="standin_gen:hang",
                               timeout_s=5)

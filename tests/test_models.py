"""Model loading: family specifics asserted at load time."""
import pytest
import torch

from linguamix.errors import ConfigError
from linguamix.data.tokenize import load_tokenizer, tokenizer_fingerprint
from linguamix.models import check_special_tokens, load_model, matmul_params
from linguamix.tinymodel import build_random_tiny, save_model, train_tokenizer

TEXTS = ["The answer is 8.", "La respuesta es 5.", "答えは8です。"] * 30


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS, 300)


def test_gemma3_multimodal_checkpoint_trains_as_text_model(tmp_path, tok):
    """gemma-3-4b-pt is a Gemma3ForConditionalGeneration (SigLIP tower + text model under
    model.language_model.*): we load the text model alone and it reproduces the checkpoint's logits."""
    from transformers import Gemma3Config, Gemma3ForCausalLM, Gemma3ForConditionalGeneration, Gemma3TextConfig
    from transformers import SiglipVisionConfig

    text = Gemma3TextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=2, num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16,
                            sliding_window=16, max_position_embeddings=64, eos_token_id=tok.eos_token_id,
                            pad_token_id=tok.pad_token_id, bos_token_id=tok.eos_token_id)
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                image_size=28, patch_size=14)
    cfg = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4, image_token_index=3,
                       boi_token_index=4, eoi_token_index=5, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    full = Gemma3ForConditionalGeneration(cfg)
    full.save_pretrained(tmp_path / "mm")
    tok.save_pretrained(tmp_path / "mm")
    model = load_model(str(tmp_path / "mm"), dtype=torch.float32, attn_implementation="sdpa")
    assert isinstance(model, Gemma3ForCausalLM)
    assert not any("vision" in n for n, _ in model.named_parameters())
    ids = torch.tensor([[7, 8, 9, 10, 11, 12]])
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, full(input_ids=ids).logits, rtol=1e-4, atol=1e-5)
    check_special_tokens(model, load_tokenizer(str(tmp_path / "mm")), "mm")


def test_no_fp16(tmp_path, tok):
    save_model(build_random_tiny("gemma3", tok, hidden=32, layers=1, heads=1, head_dim=32), tok, tmp_path / "g")
    with pytest.raises(ConfigError, match="fp16"):
        load_model(str(tmp_path / "g"), dtype=torch.float16)


def test_eos_mismatch_is_refused(tmp_path, tok):
    model = build_random_tiny("qwen3", tok, hidden=32, layers=1, heads=1, head_dim=32)
    model.config.eos_token_id = 7
    model.generation_config.eos_token_id = 7
    with pytest.raises(ConfigError, match="not an EOS of the model"):
        check_special_tokens(model, tok, "tiny")


def test_offline_hub_id_fails_with_a_hint(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import: patch the constant
    with pytest.raises(ConfigError, match="offline\\? use a local path"):
        load_tokenizer("Qwen/Qwen3-0.6B-Base")


def test_tokenizer_fingerprint_and_matmul_params(tok, tmp_path):
    """The fingerprint (the data cache's key) is the tokenizer's rules, not the object: a reloaded copy has
    the same one, another vocabulary or another EOS does not."""
    tok.save_pretrained(tmp_path / "tok")
    fp = tokenizer_fingerprint(tok)
    assert len(fp) == 16 and tokenizer_fingerprint(load_tokenizer(str(tmp_path / "tok"))) == fp
    assert tokenizer_fingerprint(train_tokenizer(TEXTS, 280)) != fp
    other_eos = load_tokenizer(str(tmp_path / "tok"))
    other_eos.eos_token = "a"
    assert tokenizer_fingerprint(other_eos) != fp
    model = build_random_tiny("qwen3", tok, hidden=32, layers=1, heads=1, head_dim=32)
    assert matmul_params(model) == sum(p.numel() for p in model.parameters())  # tied head counts once

"""Loading base models (hub id or local path), with the family specifics asserted at load time: EOS/pad
tokens, Gemma-3's multimodal 4B checkpoint trained text-only, no fp16 for Gemma-3; and the parameter
count N of the 6NT compute formula, from a loaded model or from a config alone."""
from __future__ import annotations

from typing import Any

import torch

from .data.tokenize import check_model_path
from .errors import ConfigError


def _ids(x) -> list[int]:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


def check_special_tokens(model, tok, ident: str) -> None:
    """The EOS the data appends must be one the model stops on (else generation never ends)."""
    cfg = model.config.get_text_config()
    eos = set(_ids(getattr(cfg, "eos_token_id", None))) | set(_ids(getattr(model.config, "eos_token_id", None)))
    gen = getattr(model, "generation_config", None)
    eos |= set(_ids(getattr(gen, "eos_token_id", None)))
    if eos and tok.eos_token_id not in eos:
        raise ConfigError(f"'{ident}': the tokenizer's EOS {tok.eos_token!r} (id {tok.eos_token_id}) is not an EOS "
                          f"of the model (ids {sorted(eos)}): a fine-tuned model would not stop")
    if tok.pad_token_id is None:
        raise ConfigError(f"'{ident}': the tokenizer has no pad token")


def _text_only_gemma3(path: str, *, dtype, attn_implementation: str | None, revision, trust_remote_code):
    """Gemma-3 4B+ checkpoints are multimodal (`Gemma3ForConditionalGeneration`, weights under
    `model.language_model.*`). For text-only SFT we build the plain `Gemma3ForCausalLM` from the language
    model's weights and check that both give the same logits on a fixed text batch."""
    from transformers import Gemma3ForCausalLM, Gemma3ForConditionalGeneration

    full = Gemma3ForConditionalGeneration.from_pretrained(path, dtype=dtype, revision=revision,
                                                          trust_remote_code=trust_remote_code,
                                                          attn_implementation="eager")
    text_cfg = full.config.text_config
    text_cfg._attn_implementation = "eager"
    model = Gemma3ForCausalLM(text_cfg).to(dtype)
    state = {}
    for k, v in full.state_dict().items():
        if k.startswith("model.language_model."):
            state["model." + k[len("model.language_model."):]] = v
        elif k.startswith("lm_head."):
            state[k] = v
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("lm_head.weight")]  # tied to the embeddings
    if missing or unexpected:
        raise ConfigError(f"'{path}': cannot extract the Gemma-3 text model (missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]})")
    model.tie_weights()
    probe = torch.arange(2, 18).remainder(text_cfg.vocab_size).unsqueeze(0)
    with torch.no_grad():
        a = full(input_ids=probe).logits.float()
        b = model(input_ids=probe).logits.float()
    if not torch.allclose(a, b, atol=1e-3 if dtype == torch.float32 else 5e-2, rtol=1e-3):
        raise ConfigError(f"'{path}': the text-only Gemma-3 model does not reproduce the checkpoint's logits "
                          f"(max diff {float((a - b).abs().max()):.3g})")
    del full
    if attn_implementation:
        model.set_attn_implementation(attn_implementation)
    model.generation_config.eos_token_id = _ids(model.generation_config.eos_token_id) or [text_cfg.eos_token_id]
    return model


def load_model(path: str, *, dtype: torch.dtype = torch.float32, attn_implementation: str | None = "sdpa",
               trust_remote_code: bool = False, revision: str | None = None):
    """A causal LM for text-only training/evaluation, whatever the checkpoint's class."""
    from transformers import AutoModelForCausalLM

    if dtype == torch.float16:
        raise ConfigError("fp16 is not supported (it overflows on Gemma-3); use bf16 or fp32")
    config = _config(path, trust_remote_code=trust_remote_code, revision=revision)
    if config.model_type == "gemma3":
        return _text_only_gemma3(path, dtype=dtype, attn_implementation=attn_implementation, revision=revision,
                                 trust_remote_code=trust_remote_code)
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation=attn_implementation,
                                                trust_remote_code=trust_remote_code, revision=revision)


def matmul_params(model) -> int:
    """N in 6*N*T: every weight that multiplies activations (the input embedding lookup excluded,
    unless it is tied to the LM head; a tied matrix counts once)."""
    total = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    # `is` for tied modules (and meta tensors, whose data_ptr is always 0); data_ptr for shared storage
    tied = head is not None and (head.weight is emb or (emb.device.type != "meta"
                                                        and head.weight.data_ptr() == emb.data_ptr()))
    return total if tied else total - emb.numel()


def _config(ident: str, **kw: Any):
    from transformers import AutoConfig

    check_model_path(ident, needs_config=True)
    try:
        return AutoConfig.from_pretrained(ident, **kw)
    except (OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise ConfigError(f"cannot load model '{ident}': {first} (offline? use a local path)") from None


def _meta_model(config, trust_remote_code: bool = False):
    """The model of a config on the meta device: shapes without weights (no memory, no download)."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config.get_text_config(), trust_remote_code=trust_remote_code)


def matmul_params_from_config(ident: str, **kw: Any) -> int:
    """`matmul_params` of a checkpoint from its config alone (`kw`: revision, local_files_only, ...)."""
    return matmul_params(_meta_model(_config(ident, **kw), kw.get("trust_remote_code", False)))


def describe_model(ident: str) -> tuple[str, float]:
    """(family, size in billions) of a checkpoint from its config alone (no weights are loaded)."""
    config = _config(ident)
    family = {"gemma3_text": "gemma3"}.get(config.model_type, config.model_type)
    model = _meta_model(config)
    return family, max(sum(p.numel() for p in model.parameters()) / 1e9, 1e-9)

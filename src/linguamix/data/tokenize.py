"""Tokenizers: loading one (hub id or local path) and turning a rendered example into training ids.

The data stage tokenizes (length filter, cached token ids); training and evaluation use the same
functions, so the prompt tokens a model is trained on are exactly the ones it is prompted with.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..errors import ConfigError


def load_tokenizer(ident: str, *, trust_remote_code: bool = False, revision: str | None = None, **hub: Any):
    """AutoTokenizer with the checks training needs (an EOS to stop on; pad = EOS when there is none).
    `hub`: more `from_pretrained` arguments (e.g. `local_files_only=True`)."""
    from transformers import AutoTokenizer

    check_model_path(ident)
    try:
        tok = AutoTokenizer.from_pretrained(ident, trust_remote_code=trust_remote_code, revision=revision, **hub)
    except (OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise ConfigError(f"cannot load the tokenizer of '{ident}': {first} (offline? use a local path)") from None
    if tok.eos_token_id is None:
        raise ConfigError(f"tokenizer of '{ident}' has no EOS token: the model could not learn to stop")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token  # labels are masked by position, so pad == eos is harmless
    return tok


def check_model_path(ident: str, *, needs_config: bool = False) -> None:
    """A path that is not there is named as such (not as a malformed hub id): hub ids are `org/name`.
    `needs_config`: a local folder must hold a model's config.json (not only a tokenizer)."""
    p = Path(ident).expanduser()
    looks_like_path = ident.startswith(("/", "./", "../", "~")) or ident.count("/") > 1 or "\\" in ident
    if looks_like_path and not p.exists():
        raise ConfigError(f"model '{ident}': no such directory")
    if needs_config and p.is_dir() and not (p / "config.json").exists():
        raise ConfigError(f"model '{ident}': a directory without config.json (not a model folder)")


def tokenizer_fingerprint(tok) -> str:
    """Identifies a tokenizer by its vocabulary and rules (shared by all sizes of a model family)."""
    try:
        blob = tok.backend_tokenizer.to_str()
    except AttributeError:
        blob = repr(sorted(tok.get_vocab().items()))
    blob += f"|eos={tok.eos_token}|bos={getattr(tok, 'bos_token', None)}|add_bos={_adds_bos(tok)}"
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _adds_bos(tok) -> bool:
    ids = tok("a")["input_ids"]
    return bool(ids) and tok.bos_token_id is not None and ids[0] == tok.bos_token_id


def encode_example(tok, prompt: str, completion: str) -> tuple[list[int], list[int]]:
    """input_ids and completion_mask for prompt + completion + EOS.

    The prompt is tokenized alone (with the tokenizer's special tokens, e.g. Gemma's <bos>) and the
    completion alone, then concatenated: training sees exactly the prompt tokens generation will see,
    even in scripts where tokens would merge across the boundary.
    """
    p = tok(prompt, add_special_tokens=True)["input_ids"]
    c = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] if completion else []
    return p + c, [0] * len(p) + [1] * len(c)


def encode_prompts(tok, prompts: list[str]) -> list[list[int]]:
    """Prompt token ids as training sees them (`encode_example`: the prompt alone, special tokens on)."""
    return [list(x) for x in tok(list(prompts), add_special_tokens=True)["input_ids"]]

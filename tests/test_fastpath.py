"""The fast path (padding-free varlen attention + fused linear cross-entropy) against the reference path
(padded batch, SDPA, transformers' own loss): same loss, same gradients, on the same examples."""
import pytest
import torch

from linguamix import fastpath
from linguamix.tinymodel import build_random_tiny, train_tokenizer

TEXTS = ["Ana has 3 apples and buys 5 more. 3 + 5 = 8. The answer is 8.",
         "Juan tiene 7 libros y regala 2. 7 - 2 = 5. La respuesta es 5.",
         "ハナは4本のペンを持っています。4 + 4 = 8。答えは8です。",
         "রাহুলের কাছে ৬টি আম আছে। 6 + 1 = 7। উত্তর হল 7।"] * 20


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS, 400)


def _examples(tok, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        p = torch.randint(1, len(tok), (int(torch.randint(3, 12, (1,), generator=g)),), generator=g).tolist()
        c = torch.randint(1, len(tok), (int(torch.randint(2, 9, (1,), generator=g)),), generator=g).tolist()
        out.append({"input_ids": p + c + [tok.eos_token_id], "completion_mask": [0] * len(p) + [1] * (len(c) + 1)})
    return out


def _loss_and_grads(model, mb, packed):
    model.zero_grad()
    if packed:
        loss = model(**mb.inputs) / mb.n_loss_tokens
    else:
        loss = model(**mb.inputs, use_cache=False).loss
    loss.backward()
    return loss.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("family", ["qwen3", "gemma3"])
def test_fast_path_matches_reference_loss_and_gradients(tok, family):
    fastpath.register_attention()
    ref = build_random_tiny(family, tok, hidden=64, layers=2, heads=2, head_dim=32, max_position=128, seed=1)
    ref.set_attn_implementation("sdpa")
    fast = build_random_tiny(family, tok, hidden=64, layers=2, heads=2, head_dim=32, max_position=128, seed=1)
    fast.set_attn_implementation(fastpath.ATTN_NAME)
    fastpath.patch_fused_forward(fast)
    examples = _examples(tok)
    l_ref, g_ref = _loss_and_grads(ref, fastpath.pad(examples, tok.pad_token_id), packed=False)
    l_fast, g_fast = _loss_and_grads(fast, fastpath.pack(examples), packed=True)
    assert torch.isfinite(l_fast)
    torch.testing.assert_close(l_fast, l_ref, rtol=1e-5, atol=1e-5)
    assert g_ref.keys() == g_fast.keys()
    for name in g_ref:
        torch.testing.assert_close(g_fast[name], g_ref[name], rtol=1e-4, atol=1e-6, msg=name)


def test_examples_never_attend_to_each_other(tok):
    """Changing one example leaves the other examples' outputs untouched."""
    fastpath.register_attention()
    model = build_random_tiny("qwen3", tok, hidden=64, layers=2, heads=2, head_dim=32, seed=2)
    model.set_attn_implementation(fastpath.ATTN_NAME)
    a, b = _examples(tok, n=2, seed=3)
    b2 = {**b, "input_ids": [(t * 7 + 1) % len(tok) for t in b["input_ids"]]}
    with torch.no_grad():
        out1 = model(**{k: v for k, v in fastpath.pack([b, a]).inputs.items() if not k.startswith("linguamix_loss")},
                     use_cache=False).logits
        out2 = model(**{k: v for k, v in fastpath.pack([b2, a]).inputs.items() if not k.startswith("linguamix_loss")},
                     use_cache=False).logits
    n_b = len(b["input_ids"])
    torch.testing.assert_close(out1[0, n_b:], out2[0, n_b:])  # a's logits do not depend on b
    assert not torch.allclose(out1[0, :n_b], out2[0, :n_b])


def test_sliding_window_respected(tok):
    """Gemma-3's sliding layers: the per-example path applies the window like transformers' eager mask."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    fastpath.register_attention()
    cfg = Gemma3TextConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=32,
                           sliding_window=4, max_position_embeddings=128, layer_types=["sliding_attention", "full_attention"])
    torch.manual_seed(4)
    ref = Gemma3ForCausalLM(cfg)
    ref.set_attn_implementation("eager")
    fast = Gemma3ForCausalLM(cfg)
    fast.load_state_dict(ref.state_dict())
    fast.set_attn_implementation(fastpath.ATTN_NAME)
    ex = _examples(tok, n=1, seed=5)[0]
    assert len(ex["input_ids"]) > 8  # longer than the window
    ids = torch.tensor([ex["input_ids"]])
    with torch.no_grad():
        want = ref(input_ids=ids, use_cache=False).logits
        got = fast(**{k: v for k, v in fastpath.pack([ex]).inputs.items() if not k.startswith("linguamix_loss")},
                   use_cache=False).logits
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_fused_cross_entropy_matches_plain_in_chunks():
    torch.manual_seed(0)
    h = torch.randn(37, 16, requires_grad=True)
    w = torch.randn(50, 16, requires_grad=True)
    y = torch.randint(0, 50, (37,))
    loss = fastpath.fused_linear_cross_entropy(h, w, y, chunk=8)
    loss.backward()
    gh, gw = h.grad.clone(), w.grad.clone()
    h.grad = w.grad = None
    ref = torch.nn.functional.cross_entropy(h @ w.T, y, reduction="sum")
    ref.backward()
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(gh, h.grad)
    torch.testing.assert_close(gw, w.grad)


def test_plan_micro_batches_keeps_every_example():
    plan = fastpath.plan_micro_batches([5, 9, 3, 12, 4, 4], token_budget=10)
    assert sorted(i for mb in plan for i in mb) == list(range(6))
    assert plan == [[0], [1], [2], [3], [4, 5]]

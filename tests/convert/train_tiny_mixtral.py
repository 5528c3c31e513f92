#!/usr/bin/python3
"""Trains the small Mixtral-shaped model kept in tests/data/mixtral (run once by a maintainer; the
test suite only reads its output). Needs Debian's python3-torch and numpy.

    train_tiny_mixtral.py TRAIN.ids OUT_DIR [--tokens N] [--keep K] [--steps S] [--heldout HELDOUT.ids]

TRAIN.ids: int32 little-endian token ids under the real Llama 2 tokenizer (the fixtures'
tokenizer/llama2-wikitext2-test.ids: wikitext-2's test text, BOS first; its first N ids, default
120000, lie in the part text/wikillama-train.txt holds).

Shape (Mixtral-8x7B's, scaled down): hidden 256, 2 layers, 8 query heads sharing 2 KV heads (GQA)
of head_dim 32, no biases, rotary in rotate-half style (Hugging Face's q/k row order) with
rope_theta 1000000, RMSNorm (eps 1e-5), untied input and output embeddings, Llama 2's 32,000-token
vocabulary; the FFN is a mixture of 8 SwiGLU experts of width 128 of which each token uses 2: a
router (block_sparse_moe.gate) scores the experts, softmax over all 8, the top 2 kept and their
weights renormalised to sum to 1 (Hugging Face's MixtralSparseMoeBlock), the output the weighted
sum of the two experts' outputs. A load-balancing term (Switch Transformer's, coefficient 0.02 as
Mixtral's router_aux_loss_coef) keeps every expert in use.

Only the K most frequent tokens (default 800, plus <unk>, <s>, </s>) get rows of their own in the
embedding and in lm_head; every other id shares one trained row of each (tiny_train.Vocab), so the
file stays small after compression.
"""
import json, math, os, sys

import numpy as np
import torch

from tiny_train import arg, attention, heldout_nll, moe, rms, rotary, save_bf16, train, Vocab

ids_path, out = sys.argv[1], sys.argv[2]
n_tokens, keep, steps = arg("--tokens", 120000), arg("--keep", 800), arg("--steps", 200)
heldout_path = arg("--heldout", "")
torch.manual_seed(1234)
np.random.seed(1234)
torch.set_num_threads(1)

VOCAB, DIM, LAYERS, HEADS, KV, HD, FF, EXPERTS, USED = 32000, 256, 2, 8, 2, 32, 128, 8, 2
THETA, EPS, AUX = 1000000.0, 1e-5, 0.02

vocab = Vocab(ids_path, n_tokens, VOCAB, keep, [0, 1, 2])
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
            l.ln1, l.ln2 = norm_w(DIM), norm_w(DIM)
            l.q, l.k, l.v, l.o = w(HEADS * HD, DIM), w(KV * HD, DIM), w(KV * HD, DIM), w(DIM, HEADS * HD)
            l.router = w(EXPERTS, DIM)
            l.w1, l.w3, l.w2 = w(EXPERTS, FF, DIM), w(EXPERTS, FF, DIM), w(EXPERTS, DIM, FF)
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
            h = h + attention(l, rms(h, l.ln1, EPS), cos, sin, mask, HEADS, KV, HD)
            y, balance, chosen = moe(rms(h, l.ln2, EPS), l.router, l.w1, l.w3, l.w2, USED)
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
                    ("self_attn.o_proj", l.o), ("block_sparse_moe.gate", l.router)):
        tensors[p + name + ".weight"] = t.detach()
    for e in range(EXPERTS):
        for name, t in (("w1", l.w1), ("w2", l.w2), ("w3", l.w3)):
            tensors[f"{p}block_sparse_moe.experts.{e}.{name}.weight"] = t.detach()[e]
save_bf16(out, tensors)
config = {  # the keys of Mixtral-8x7B-v0.1's config.json
    "architectures": ["MixtralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2,
    "hidden_act": "silu", "hidden_size": DIM, "initializer_range": 0.02, "intermediate_size": FF,
    "max_position_embeddings": 32768, "model_type": "mixtral", "num_attention_heads": HEADS,
    "num_experts_per_tok": USED, "num_hidden_layers": LAYERS, "num_key_value_heads": KV,
    "num_local_experts": EXPERTS, "output_router_logits": False, "rms_norm_eps": EPS, "rope_theta": THETA,
    "router_aux_loss_coef": AUX, "sliding_window": None, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "transformers_version": "4.36.0.dev0", "use_cache": True, "vocab_size": VOCAB,
}
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
print(f"final loss {loss:.3f}", file=sys.stderr)

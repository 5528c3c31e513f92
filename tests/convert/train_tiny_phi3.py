#!/usr/bin/python3
"""Trains the small Phi-3-mini-shaped model kept in tests/data/phi3 (run once by a maintainer; the
test suite only reads its output). Needs Debian's python3-torch and numpy.

    train_tiny_phi3.py TRAIN.ids OUT_DIR [--tokens N] [--keep K] [--steps S] [--heldout HELDOUT.ids]

TRAIN.ids: int32 little-endian token ids of text/wikillama-train.txt under the real Llama 2
SentencePiece model (fixtures' tokenizer/llama2-tokenizer.model, which Phi-3-mini ships as its
tokenizer.model), no BOS; the first N ids are used (default 120000).

Shape (Phi-3-mini's, scaled down): hidden 256, 2 layers, 8 query heads of head_dim 32 sharing 2 KV
heads (GQA, as Phi-3-medium has; so the fused projection's three parts differ in size), no biases,
one fused self_attn.qkv_proj whose rows are all query rows, then all key rows, then all value rows,
rotary in rotate-half style on the whole head (rope_theta 10000), one fused mlp.gate_up_proj of
2 × 512 rows (the gate's first: up × silu(gate)), RMSNorm (eps 1e-5), an untied lm_head, and
Phi-3's vocab of 32,064 rows (Llama 2's 32,000 pieces, its added tokens, padding). Only the K most
frequent tokens (default 1100) get rows of their own in the embedding and in lm_head; the rest
share one row of each (tiny_train.py says how it is still trained on the full softmax).
Written in Hugging Face's layout, BF16 as Phi-3 ships.
"""
import json, math, os, sys

import numpy as np
import torch

from tiny_train import arg, heldout_nll, rms, rotary, rotate_half, save_bf16, train, Vocab

ids_path, out = sys.argv[1], sys.argv[2]
n_tokens, keep, steps = arg("--tokens", 120000), arg("--keep", 1100), arg("--steps", 150)
heldout_path = arg("--heldout", "")
torch.manual_seed(1234)
np.random.seed(1234)
torch.set_num_threads(2)

VOCAB, DIM, LAYERS, HEADS, KV, HD, FF = 32064, 256, 2, 8, 2, 32, 512
THETA, EPS = 10000.0, 1e-5

rows = Vocab(ids_path, n_tokens, VOCAB, keep, [])


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        P = torch.nn.Parameter
        w = lambda *s: P(torch.randn(*s) * 0.02)
        norm_w = lambda n: P(1 + 0.1 * torch.randn(n))
        # rows of the model's own numbering: the kept tokens, then the shared row
        self.emb, self.out = w(rows.n_kept + 1, DIM), w(rows.n_kept + 1, DIM)
        self.norm = norm_w(DIM)
        self.layers = torch.nn.ModuleList()
        for _ in range(LAYERS):
            l = torch.nn.Module()
            l.ln1, l.ln2 = norm_w(DIM), norm_w(DIM)
            l.qkv, l.o = w((HEADS + 2 * KV) * HD, DIM), w(DIM, HEADS * HD)
            l.gate_up, l.down = w(2 * FF, DIM), w(DIM, FF)
            self.layers.append(l)
        self.register_buffer("inv_freq", 1.0 / (THETA ** (torch.arange(0, HD, 2, dtype=torch.float32) / HD)))

    def forward(self, x):  # x: [B, T] in the model's own numbering; logits over its rows
        B, T = x.shape
        h = self.emb[x]
        cos, sin = rotary(self.inv_freq, T)
        mask = torch.full((T, T), float("-inf")).triu(1)
        for l in self.layers:
            a = rms(h, l.ln1, EPS)
            # HF Phi-3: qkv_proj's output cut into [Q | K | V]
            qkv = a @ l.qkv.T
            q = qkv[..., : HEADS * HD].view(B, T, HEADS, HD).transpose(1, 2)
            k = qkv[..., HEADS * HD: (HEADS + KV) * HD].view(B, T, KV, HD).transpose(1, 2)
            v = qkv[..., (HEADS + KV) * HD:].view(B, T, KV, HD).transpose(1, 2)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            k, v = k.repeat_interleave(HEADS // KV, 1), v.repeat_interleave(HEADS // KV, 1)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(HD) + mask
            y = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, HEADS * HD)
            h = h + y @ l.o.T
            a = rms(h, l.ln2, EPS)
            # HF Phi3MLP: gate, up = gate_up_proj(x).chunk(2); up * silu(gate)
            gate, up = (a @ l.gate_up.T).chunk(2, dim=-1)
            h = h + (up * torch.nn.functional.silu(gate)) @ l.down.T
        return rms(h, self.norm, EPS) @ self.out.T


model = Model()
loss = train(model, rows, steps)
if heldout_path:
    h = heldout_nll(model, rows, heldout_path)
    print(f"held-out NLL {h:.3f} nats, perplexity {math.exp(h):.1f} (uniform {VOCAB})", file=sys.stderr)

tensors = {"model.embed_tokens.weight": rows.full_rows(model.emb.detach()),
           "lm_head.weight": rows.full_rows(model.out.detach()), "model.norm.weight": model.norm.detach()}
for i, l in enumerate(model.layers):
    p = f"model.layers.{i}."
    for name, t in (("input_layernorm", l.ln1), ("post_attention_layernorm", l.ln2),
                    ("self_attn.qkv_proj", l.qkv), ("self_attn.o_proj", l.o),
                    ("mlp.gate_up_proj", l.gate_up), ("mlp.down_proj", l.down)):
        tensors[p + name + ".weight"] = t.detach()
save_bf16(out, tensors)
config = {  # the keys of Phi-3-mini-4k-instruct's config.json (auto_map left out: nothing runs code)
    "_name_or_path": "Phi-3-mini-4k-instruct", "architectures": ["Phi3ForCausalLM"],
    "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 1, "embd_pdrop": 0.0,
    "eos_token_id": 32000, "hidden_act": "silu", "hidden_size": DIM, "initializer_range": 0.02,
    "intermediate_size": FF, "max_position_embeddings": 4096, "model_type": "phi3",
    "num_attention_heads": HEADS, "num_hidden_layers": LAYERS, "num_key_value_heads": KV,
    "original_max_position_embeddings": 4096, "pad_token_id": 32000, "resid_pdrop": 0.0,
    "rms_norm_eps": EPS, "rope_scaling": None, "rope_theta": THETA, "sliding_window": 2047,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.40.2",
    "use_cache": True, "vocab_size": VOCAB,
}
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
# The long-context variant's config (Phi-3-mini-128k-instruct's keys): the same weights with a
# longrope rope_scaling of 16 factors each (head_dim / 2) and its context 32 times the original,
# as 131072 / 4096 is; the original context is 256 here, so that a 256-token context runs the
# short factors and a 512-token one the long factors (llama.cpp rounds the context up to a
# multiple of 256 before it compares). Some factors are float32 values written in full, as
# Phi-3's configs have them, others short decimals that round on the way to float32.
long_factor = [float(np.float32(1.0 + 30.0 * (i / 15) ** 2)) for i in range(HD // 2)]
short_factor = [round(1.0 + 0.02 * i, 2) for i in range(HD // 2)]
config.update({"_name_or_path": "Phi-3-mini-128k-instruct", "max_position_embeddings": 8192,
               "original_max_position_embeddings": 256, "sliding_window": 262144,
               "rope_scaling": {"long_factor": long_factor, "short_factor": short_factor, "type": "longrope"}})
with open(os.path.join(out, "config-128k.json"), "w") as f:
    json.dump(config, f, indent=2)
print(f"final loss {loss:.3f}", file=sys.stderr)

#!/usr/bin/python3
"""Trains the small Gemma-3-shaped model kept in tests/data/gemma3 (run once by a maintainer; the
test suite only reads its output). Needs Debian's python3-torch and numpy.

    train_tiny_gemma3.py IDS OUT_DIR [--tokens N] [--keep K] [--steps S] [--heldout-from H]

IDS: int32 little-endian token ids under the real Llama 2 SentencePiece tokenizer (the fixtures'
tokenizer/llama2-wikitext2-test.ids: wikitext-2's test text, BOS first); ids 1 .. N (default
120000, all inside the first 85% that is text/wikillama-train.txt) are the training text, ids
from H on (default 300000, the end of the held-out part) are scored for the printed held-out NLL.

Shape (gemma-3-1b's, scaled down): hidden 256, 6 layers (Gemma 3's pattern of 6: layers 0-4
attend within a sliding window of 512, layer 5 globally), 4 query heads sharing 1 KV head of
head_dim 64, no biases; an RMSNorm over each query and key head (q_norm, k_norm) before the
rotary, which is rotate-half style on the full head with theta 10000 on the local layers
(rope_local_base_freq) and 1,000,000 on the global one (rope_theta), no rope scaling; queries
scaled by query_pre_attn_scalar^-1/2 (64 = head_dim, the value llama.cpp uses); no soft-capping
of scores or logits; RMSNorm (eps 1e-6) before and after both the attention and the FFN, every
norm (the per-head ones too) computing x·rsqrt(mean x² + eps)·(1 + w) with w stored (Gemma's
w - 1 convention); GELU(tanh)-gated FFN of 256; the embedding scaled by sqrt(256) = 16 on the
way in and tied to the output; the Llama 2 vocabulary of 32,000. Every window starts with BOS
(id 1), as llama-perplexity's chunks do for this vocabulary (add_bos_token). Only the K most
frequent ids (default 1100, plus BOS and EOS) get rows of their own (tiny_train.py says how the
rest are trained through one shared row). Written in Hugging Face's layout (q/k rows for
rotate-half, no lm_head.weight), BF16.
"""
import json, math, sys

import numpy as np
import torch

from tiny_train import Vocab, arg, heldout_nll, rotary, rotate_half, save_bf16, train

ids_path, out = sys.argv[1], sys.argv[2]
n_tokens, keep, steps = arg("--tokens", 120000), arg("--keep", 1100), arg("--steps", 150)
heldout_from = arg("--heldout-from", 300000)
torch.manual_seed(1234)
np.random.seed(1234)
torch.set_num_threads(1)  # one thread: on a shared machine two spin against each other

VOCAB, DIM, LAYERS, HEADS, KV, HD, FF = 32000, 256, 6, 4, 1, 64, 256
THETA, LOCAL_THETA, EPS, BOS, EOS = 1000000.0, 10000.0, 1e-6, 1, 2
WINDOW, PATTERN, QUERY_SCALAR = 512, 6, HD

voc = Vocab(ids_path, n_tokens, VOCAB, keep, [BOS, EOS], first=1)  # after the file's BOS


def rms(x, w):  # Gemma3RMSNorm: the weight is stored as w - 1
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * (1.0 + w)


def is_sliding(i):  # transformers' Gemma3TextConfig: (i + 1) % sliding_window_pattern != 0
    return (i + 1) % PATTERN != 0


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        P = torch.nn.Parameter
        w = lambda *s: P(torch.randn(*s) * 0.02)
        norm_w = lambda n: P(0.1 * torch.randn(n))
        self.emb = w(voc.n_kept + 1, DIM)  # the kept tokens, then the shared row (tied in and out)
        self.norm = norm_w(DIM)
        self.layers = torch.nn.ModuleList()
        for _ in range(LAYERS):
            l = torch.nn.Module()
            l.ln1, l.post_attn, l.ln2, l.post_ffn = norm_w(DIM), norm_w(DIM), norm_w(DIM), norm_w(DIM)
            l.q_norm, l.k_norm = norm_w(HD), norm_w(HD)
            l.q, l.k, l.v, l.o = w(HEADS * HD, DIM), w(KV * HD, DIM), w(KV * HD, DIM), w(DIM, HEADS * HD)
            l.gate, l.up, l.down = w(FF, DIM), w(FF, DIM), w(DIM, FF)
            self.layers.append(l)
        inv = lambda theta: 1.0 / (theta ** (torch.arange(0, HD, 2, dtype=torch.float32) / HD))
        self.register_buffer("inv_freq", inv(THETA))
        self.register_buffer("inv_freq_local", inv(LOCAL_THETA))

    def forward(self, x):  # x: [B, T] in the model's own numbering; logits over its rows
        B, T = x.shape
        h = self.emb[x] * math.sqrt(DIM)
        rot = {False: rotary(self.inv_freq, T), True: rotary(self.inv_freq_local, T)}
        pos = torch.arange(T)
        causal = pos[None, :] > pos[:, None]
        local = causal | (pos[:, None] - pos[None, :] >= WINDOW)
        for i, l in enumerate(self.layers):
            cos, sin = rot[is_sliding(i)]
            mask = torch.zeros(T, T).masked_fill(local if is_sliding(i) else causal, float("-inf"))
            a = rms(h, l.ln1)
            q = rms((a @ l.q.T).view(B, T, HEADS, HD), l.q_norm).transpose(1, 2)
            k = rms((a @ l.k.T).view(B, T, KV, HD), l.k_norm).transpose(1, 2)
            v = (a @ l.v.T).view(B, T, KV, HD).transpose(1, 2)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            k, v = k.repeat_interleave(HEADS // KV, 1), v.repeat_interleave(HEADS // KV, 1)
            att = (q @ k.transpose(-1, -2)) * QUERY_SCALAR ** -0.5 + mask
            y = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, HEADS * HD)
            h = h + rms(y @ l.o.T, l.post_attn)
            a = rms(h, l.ln2)
            f = torch.nn.functional.gelu(a @ l.gate.T, approximate="tanh") * (a @ l.up.T)
            h = h + rms(f @ l.down.T, l.post_ffn)
        return rms(h, self.norm) @ self.emb.T


model = Model()
final = train(model, voc, steps, bos=BOS)
h = heldout_nll(model, voc, np.fromfile(ids_path, dtype="<i4").astype(np.int64)[heldout_from:], bos=BOS)
print(f"held-out NLL {h:.3f} nats, perplexity {math.exp(h):.1f} (uniform {VOCAB})", file=sys.stderr)

tensors = {"model.embed_tokens.weight": voc.full_rows(model.emb.detach()), "model.norm.weight": model.norm}
for i, l in enumerate(model.layers):
    p = f"model.layers.{i}."
    for name, t in (("input_layernorm", l.ln1), ("post_attention_layernorm", l.post_attn),
                    ("pre_feedforward_layernorm", l.ln2), ("post_feedforward_layernorm", l.post_ffn),
                    ("self_attn.q_norm", l.q_norm), ("self_attn.k_norm", l.k_norm),
                    ("self_attn.q_proj", l.q), ("self_attn.k_proj", l.k), ("self_attn.v_proj", l.v),
                    ("self_attn.o_proj", l.o), ("mlp.gate_proj", l.gate), ("mlp.up_proj", l.up),
                    ("mlp.down_proj", l.down)):
        tensors[p + name + ".weight"] = t
save_bf16(out, tensors)
config = {  # the keys of gemma-3-1b-it's config.json
    "architectures": ["Gemma3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "attn_logit_softcapping": None, "bos_token_id": BOS, "cache_implementation": "hybrid",
    "eos_token_id": EOS, "final_logit_softcapping": None, "head_dim": HD,
    "hidden_activation": "gelu_pytorch_tanh", "hidden_size": DIM, "initializer_range": 0.02,
    "intermediate_size": FF, "max_position_embeddings": 32768, "model_type": "gemma3_text",
    "num_attention_heads": HEADS, "num_hidden_layers": LAYERS, "num_key_value_heads": KV,
    "pad_token_id": 0, "query_pre_attn_scalar": QUERY_SCALAR, "rms_norm_eps": EPS,
    "rope_local_base_freq": LOCAL_THETA, "rope_scaling": None, "rope_theta": THETA,
    "sliding_window": WINDOW, "sliding_window_pattern": PATTERN, "torch_dtype": "bfloat16",
    "transformers_version": "4.50.0.dev0", "use_cache": True, "vocab_size": VOCAB,
}
with open(f"{out}/config.json", "w") as f:
    json.dump(config, f, indent=2)
print(f"final loss {final:.3f}", file=sys.stderr)

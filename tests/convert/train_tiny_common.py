"""What the train_tiny_*.py scripts of the trained model families share (run once by a
maintainer; the test suite only reads their output). Needs Debian's python3-torch and numpy.

Command line of every script using it:

    train_tiny_FAMILY.py TRAIN.ids OUT_DIR [--tokens N] [--keep K] [--steps S] [--heldout HELDOUT.ids]

TRAIN.ids: int32 little-endian token ids of text/wikillama-train.txt under the family's real
tokenizer; the first N ids are used.

Only the K most frequent tokens of those N ids (plus any the script names) get rows of their own
in the embedding (and in an untied output); every other token id, padding included, shares one
trained row, so the file stays small after compression. The model is still trained on the full
vocabulary's softmax: the shared row's logit counts #shared times, logsumexp(own logits, shared
logit + log(#shared)), and a token without a row of its own is a target (and an input) through
the shared row, so the probability left to rare tokens is learned rather than driven to zero.
"""
import math, os, sys

import numpy as np
import torch

import st_write


def cli(tokens=120000, keep=1100, steps=150):
    """(ids_path, out_dir, n_tokens, keep, steps, heldout_path) from sys.argv."""
    def arg(name, default):
        return type(default)(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default
    return (sys.argv[1], sys.argv[2], arg("--tokens", tokens), arg("--keep", keep), arg("--steps", steps),
            arg("--heldout", ""))


def seed():
    torch.manual_seed(1234)
    np.random.seed(1234)
    torch.set_num_threads(2)


class SharedRows:
    """The training ids in the model's own numbering: the kept tokens (the `keep` most frequent,
    plus `extra`), then one shared row (index n_kept) for every other id of the vocab."""

    def __init__(self, ids_path, n_tokens, vocab, keep, extra=()):
        ids = np.fromfile(ids_path, dtype="<i4")[:n_tokens].astype(np.int64)
        counts = np.bincount(ids, minlength=vocab)
        order = np.argsort(-counts, kind="stable")
        top = order[:keep][counts[order[:keep]] > 0]
        self.kept = np.unique(np.concatenate([top, np.asarray(extra, dtype=np.int64)]))
        self.vocab = vocab
        self.n_kept = len(self.kept)
        self.n_shared = vocab - self.n_kept
        self.remap = np.full(vocab, self.n_kept, dtype=np.int64)
        self.remap[self.kept] = np.arange(self.n_kept)
        self.data = torch.from_numpy(self.remap[ids])
        covered = float(np.isin(ids, self.kept).mean())
        print(f"{len(ids)} training tokens, {len(np.unique(ids))} distinct; {self.n_kept} with own rows cover "
              f"{100 * covered:.1f}%, {self.n_shared} share one row", file=sys.stderr)

    def grouped(self, logits):
        """The logits over the model's rows, the shared row standing for n_shared identical logits."""
        n = self.n_kept
        return torch.cat((logits[..., :n], logits[..., n:] + math.log(self.n_shared)), -1)

    def expand(self, rows):
        """A [n_kept + 1, dim] matrix of the model's rows as the full [vocab, dim] one."""
        full = rows[self.n_kept][None, :].repeat(self.vocab, 1)
        full[torch.from_numpy(self.kept)] = rows[:self.n_kept]
        return full


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope_tables(T, inv_freq):
    """cos and sin for Hugging Face's rotate-half rotary over positions 0..T-1, and the causal mask."""
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv_freq[None, :]
    cos, sin = torch.cat((ang, ang), -1).cos(), torch.cat((ang, ang), -1).sin()
    return cos, sin, torch.full((T, T), float("-inf")).triu(1)


def nll(model, x, y):
    """Mean negative log-likelihood (nats) of targets y over the full vocabulary's softmax; the
    model returns (grouped logits, raw logits over its own rows)."""
    grouped, raw = model(x)
    lse = torch.logsumexp(grouped, -1)
    return (lse - raw.gather(-1, y[..., None]).squeeze(-1)).mean()


def train(model, data, steps, B=8, T=128, lr_max=3e-3):
    opt = torch.optim.AdamW(model.parameters(), lr=lr_max, weight_decay=0.01)
    loss = None
    for step in range(steps):
        lr = lr_max * min(1.0, (step + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
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
    return loss


def report_heldout(model, path, rows):
    """Prints the mean NLL of the second half of each 256-token window (as llama-perplexity scores)."""
    hid = torch.from_numpy(rows.remap[np.fromfile(path, dtype="<i4").astype(np.int64)])
    tot, n = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(hid) - 256, 256):
            w = hid[s: s + 256][None]
            grouped, raw = model(w[:, :-1])
            lp = raw.gather(-1, w[:, 1:, None]).squeeze(-1) - torch.logsumexp(grouped, -1)
            tot -= lp[:, 127:].sum().item()
            n += lp[:, 127:].numel()
    h = tot / n
    print(f"held-out NLL {h:.3f} nats, perplexity {math.exp(h):.1f} (uniform {rows.vocab})", file=sys.stderr)


def write_bf16(out, tensors):
    """out/model.safetensors: the tensors in BF16 (torch's round-to-nearest-even), names sorted
    as save_file writes them."""
    blobs = []
    for name in sorted(tensors):
        t = tensors[name].contiguous().to(torch.bfloat16)
        blobs.append((name, "BF16", t.shape, t.view(torch.int16).numpy().tobytes()))
    os.makedirs(out, exist_ok=True)
    st_write.write(os.path.join(out, "model.safetensors"), blobs, metadata={"format": "pt"})

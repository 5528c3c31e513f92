"""Shared pieces of the tiny-model training scripts (train_tiny_gemma2.py; run once by a
maintainer, never by the test suite): argument reading, the kept-rows vocabulary trick, the loss
on the full softmax, the training loop and the BF16 safetensors output.

The vocabulary trick: only the K most frequent token ids of the training text (plus a few always
kept) get embedding rows of their own; every other id shares one trained row, so the file stays
small after compression. The model is still trained on the full softmax: the shared row's logit
counts #shared times, logsumexp(own logits, shared logit + log(#shared)), and a token without a
row of its own is a target (and an input) through the shared row."""
import math, os, sys

import numpy as np
import torch

import st_write


def arg(name, default):
    return type(default)(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


class Vocab:
    """The kept rows: ids -> the model's own numbering (kept tokens, then the shared row)."""

    def __init__(self, ids, vocab, keep, always):
        counts = np.bincount(ids, minlength=vocab)
        order = np.argsort(-counts, kind="stable")
        self.kept = np.unique(np.concatenate([order[:keep][counts[order[:keep]] > 0], always]))
        self.n_kept = len(self.kept)
        self.vocab = vocab
        self.remap = np.full(vocab, self.n_kept, dtype=np.int64)
        self.remap[self.kept] = np.arange(self.n_kept)
        self.n_shared = vocab - self.n_kept
        covered = float(np.isin(ids, self.kept).mean())
        print(f"{len(ids)} training tokens, {len(np.unique(ids))} distinct; {self.n_kept} with own rows cover "
              f"{100 * covered:.1f}%, {self.n_shared} share one row", file=sys.stderr)

    def group(self, logits):
        """The logits over the model's rows with the shared row standing for n_shared identical ones."""
        return torch.cat((logits[..., :self.n_kept], logits[..., self.n_kept:] + math.log(self.n_shared)), -1)

    def full_rows(self, emb):
        """The [vocab, dim] embedding a checkpoint holds: the shared row everywhere, kept rows in place."""
        full = emb[self.n_kept][None, :].repeat(self.vocab, 1)
        full[torch.from_numpy(self.kept)] = emb[:self.n_kept]
        return full


def nll(model, voc, x, y):
    """Mean negative log-likelihood (nats) of targets y over the full softmax; model(x) gives the
    logits over the model's rows."""
    raw = model(x)
    return (torch.logsumexp(voc.group(raw), -1) - raw.gather(-1, y[..., None]).squeeze(-1)).mean()


def heldout_nll(model, voc, ids, bos=None, window=256):
    """Mean NLL of the second half of each window (as llama-perplexity scores), the window's first
    token replaced by bos when given (as llama-perplexity does when the vocabulary adds one)."""
    hid = torch.from_numpy(voc.remap[ids])
    tot, n = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(hid) - window, window):
            w = hid[s: s + window].clone()[None]
            if bos is not None:
                w[0, 0] = int(voc.remap[bos])
            raw = model(w[:, :-1])
            lp = raw.gather(-1, w[:, 1:, None]).squeeze(-1) - torch.logsumexp(voc.group(raw), -1)
            half = window // 2 - 1
            tot -= lp[:, half:].sum().item()
            n += lp[:, half:].numel()
    return tot / n


def train(model, voc, data, steps, B=8, T=128, lr_max=3e-3, warmup=50, bos=None):
    """AdamW with warm-up and cosine decay on random windows of data (the model's numbering);
    with bos, each window starts with it (then T - 1 tokens of text)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr_max, weight_decay=0.01)
    n_text = T if bos is None else T - 1
    loss = None
    for step in range(steps):
        lr = lr_max * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, len(data) - n_text - 1, (B,))
        seq = torch.stack([data[s: s + n_text + 1] for s in starts])
        if bos is not None:
            seq = torch.cat((torch.full((B, 1), int(voc.remap[bos]), dtype=seq.dtype), seq), 1)
        x, y = seq[:, :-1], seq[:, 1:]
        loss = nll(model, voc, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step} loss {loss.item():.3f} lr {lr:.2e}", file=sys.stderr, flush=True)
    return loss.item()


def write_bf16(out, tensors):
    """model.safetensors in BF16 (torch's round-to-nearest-even), names sorted as save_file writes."""
    blobs = []
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().to(torch.bfloat16)
        blobs.append((name, "BF16", t.shape, t.view(torch.int16).numpy().tobytes()))
    os.makedirs(out, exist_ok=True)
    st_write.write(os.path.join(out, "model.safetensors"), blobs, metadata={"format": "pt"})

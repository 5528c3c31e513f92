"""What the trainers of the small family test models share (train_tiny_{qwen2,qwen3,qwen3moe,
mixtral,phi3,gemma2}.py; each is run once by a maintainer, never by the tests): a real
tokenizer's full vocabulary of which only the K most frequent training tokens get rows of their
own, the rest sharing one trained row; the exact full-vocab softmax over that grouping; AdamW
with warm-up and cosine decay; held-out scoring as llama-perplexity scores; Hugging Face's
attention and a Mixtral/Qwen3-MoE expert mixture; BF16 output in Hugging Face's sorted
safetensors layout. Needs Debian's python3-torch and numpy."""
import math, os, sys

import numpy as np
import torch

import st_write


def arg(name, default):
    """The value after command-line option `name`, of default's type, or default."""
    return type(default)(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


class Vocab:
    """n_tokens ids of ids_path (int32 little-endian) from index `first` and the grouping: the keep most
    frequent tokens plus `always` get rows of their own, every other id of the vocab_size shares
    one row (index n_kept in the model's own numbering)."""

    def __init__(self, ids_path, n_tokens, vocab_size, keep, always, first=0):
        ids = np.fromfile(ids_path, dtype="<i4")[first:first + n_tokens].astype(np.int64)
        counts = np.bincount(ids, minlength=vocab_size)
        order = np.argsort(-counts, kind="stable")
        self.kept = np.unique(np.concatenate([order[:keep][counts[order[:keep]] > 0], np.asarray(always, dtype=np.int64)]))
        self.n_kept = len(self.kept)
        self.vocab_size = vocab_size
        self.remap = np.full(vocab_size, self.n_kept, dtype=np.int64)
        self.remap[self.kept] = np.arange(self.n_kept)
        self.n_shared = vocab_size - self.n_kept
        self.data = torch.from_numpy(self.remap[ids])
        covered = float(np.isin(ids, self.kept).mean())
        print(f"{len(ids)} training tokens, {len(np.unique(ids))} distinct; {self.n_kept} with own rows cover "
              f"{100 * covered:.1f}%, {self.n_shared} share one row", file=sys.stderr)

    def grouped(self, logits):
        """The shared row's logit stands for n_shared identical logits."""
        return torch.cat((logits[..., :self.n_kept], logits[..., self.n_kept:] + math.log(self.n_shared)), -1)

    def full_rows(self, rows):
        """A [vocab_size, dim] matrix from the model's n_kept + 1 rows (the shared one everywhere else)."""
        full = rows[self.n_kept][None, :].repeat(self.vocab_size, 1)
        full[torch.from_numpy(self.kept)] = rows[:self.n_kept]
        return full


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    return torch.cat((-b, a), dim=-1)


def rotary(inv_freq, T):
    """cos and sin of Hugging Face's rotate-half rotary for positions 0..T-1."""
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv_freq[None, :]
    return torch.cat((ang, ang), -1).cos(), torch.cat((ang, ang), -1).sin()


def attention(l, a, cos, sin, mask, heads, kv, hd, eps=None):
    """Hugging Face's attention of layer l (weights l.q, l.k, l.v, l.o; rotate-half rotary, GQA)
    on the normed input a [B, T, dim]; with l.bq, l.bk, l.bv, Qwen2's biases added to the q, k and
    v products; with eps, Qwen3's RMSNorm of each query and key head (l.q_norm, l.k_norm) before
    the rotary. Returns the output projection's result."""
    B, T, _ = a.shape
    bias = hasattr(l, "bq")
    q, k = a @ l.q.T, a @ l.k.T
    if bias:
        q, k = q + l.bq, k + l.bk
    q, k = q.view(B, T, heads, hd), k.view(B, T, kv, hd)
    if eps is not None:
        q, k = rms(q, l.q_norm, eps), rms(k, l.k_norm, eps)
    q, k = q.transpose(1, 2), k.transpose(1, 2)
    v = a @ l.v.T
    if bias:
        v = v + l.bv
    v = v.view(B, T, kv, hd).transpose(1, 2)
    q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
    k, v = k.repeat_interleave(heads // kv, 1), v.repeat_interleave(heads // kv, 1)
    att = (q @ k.transpose(-1, -2)) / math.sqrt(hd) + mask
    return (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, heads * hd) @ l.o.T


def moe(a, router, gate, up, down, used):
    """A mixture of SwiGLU experts on a [B, T, dim] as Hugging Face's Mixtral and Qwen3-MoE (with
    norm_topk_prob) compute it: softmax over the router's scores, the top `used` experts with their
    probabilities renormalised to sum to 1, each expert on the tokens routed to it (gate, up, down:
    [experts, ...] stacks of its matrices). Returns the output, Switch Transformer's balance term
    (experts × sum over experts of the share of choices × the mean probability) and the choices."""
    experts, dim = router.shape
    probs = (a @ router.T).softmax(-1)                         # [B, T, E]
    top_w, top_i = probs.topk(used, -1)
    top_w = top_w / top_w.sum(-1, keepdim=True)
    routed = torch.zeros_like(probs).scatter(-1, top_i, 1.0).mean((0, 1)) / used
    balance = experts * (routed * probs.mean((0, 1))).sum()
    flat, idx, w = a.reshape(-1, dim), top_i.reshape(-1, used), top_w.reshape(-1, used)
    y = torch.zeros_like(flat)
    for e in range(experts):
        tok, slot = (idx == e).nonzero(as_tuple=True)
        if len(tok) == 0:
            continue
        x = flat[tok]
        h = torch.nn.functional.silu(x @ gate[e].T) * (x @ up[e].T)
        y = y.index_add(0, tok, w[tok, slot, None] * (h @ down[e].T))
    return y.view_as(a), balance, top_i


def nll(vocab, logits, y):
    """Mean negative log-likelihood (nats) of targets y over the full-vocab softmax, given the
    model's logits over its own n_kept + 1 rows."""
    lse = torch.logsumexp(vocab.grouped(logits), -1)
    return (lse - logits.gather(-1, y[..., None]).squeeze(-1)).mean()


def heldout_nll(model, vocab, ids, bos=None, window=256):
    """Mean NLL of the second half of each window of ids (a path of int32 ids, or an array) as
    llama-perplexity scores, the window's first token replaced by bos when given (as
    llama-perplexity does when the vocabulary adds one)."""
    if isinstance(ids, str):
        ids = np.fromfile(ids, dtype="<i4").astype(np.int64)
    hid = torch.from_numpy(vocab.remap[ids])
    tot, n = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(hid) - window, window):
            w = hid[s: s + window].clone()[None]
            if bos is not None:
                w[0, 0] = int(vocab.remap[bos])
            raw = model(w[:, :-1])
            lp = raw.gather(-1, w[:, 1:, None]).squeeze(-1) - torch.logsumexp(vocab.grouped(raw), -1)
            half = window // 2 - 1
            tot -= lp[:, half:].sum().item()
            n += lp[:, half:].numel()
    return tot / n


def train(model, vocab, steps, extra_loss=None, B=8, T=128, lr_max=3e-3, bos=None):
    """AdamW (weight decay 0.01), 50 warm-up steps then cosine decay to a tenth, on random
    windows of vocab.data (with bos, each window is bos then T - 1 tokens of text); extra_loss()
    is added to each step's loss (a router's balance term). Returns the last step's loss."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr_max, weight_decay=0.01)
    data = vocab.data
    for step in range(steps):
        lr = lr_max * min(1.0, (step + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        if bos is None:
            starts = torch.randint(0, len(data) - T - 1, (B,))
            x = torch.stack([data[s: s + T] for s in starts])
            y = torch.stack([data[s + 1: s + T + 1] for s in starts])
        else:
            starts = torch.randint(0, len(data) - T, (B,))
            seq = torch.stack([data[s: s + T] for s in starts])
            seq = torch.cat((torch.full((B, 1), int(vocab.remap[bos]), dtype=seq.dtype), seq), 1)
            x, y = seq[:, :-1], seq[:, 1:]
        loss = nll(vocab, model(x), y)
        total = loss + extra_loss() if extra_loss else loss
        opt.zero_grad()
        total.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step} loss {loss.item():.3f} lr {lr:.2e}", file=sys.stderr, flush=True)
    return loss.item()


def save_bf16(out, tensors):
    """tensors {name: tensor} as out/model.safetensors: BF16 (torch's round-to-nearest-even),
    names sorted, as Hugging Face's save_file writes them."""
    blobs = []
    for name in sorted(tensors):
        t = tensors[name].contiguous().to(torch.bfloat16)
        blobs.append((name, "BF16", t.shape, t.view(torch.int16).numpy().tobytes()))
    os.makedirs(out, exist_ok=True)
    st_write.write(os.path.join(out, "model.safetensors"), blobs, metadata={"format": "pt"})

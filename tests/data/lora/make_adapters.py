#!/usr/bin/python3
"""Makes the small PEFT LoRA adapters in tests/data/lora for wikillama (../shared/fixtures/wikillama/hf:
dim 256, 4 layers, 8 heads, 4 KV heads, FFN 768, vocab 4096), with random weights (seeded), in
PEFT's layout: keys base_model.model.<module>.lora_A.weight [r, in] / .lora_B.weight [out, r], and
.lora_embedding_A [r, n_vocab] / .lora_embedding_B [n_embd, r] for the embedding.

    /usr/bin/python3 tests/data/lora/make_adapters.py OUT_DIR [--equivalents]

  r16-rslora-bin/  r 16, lora_alpha 8, use_rslora, all seven projections, BF16, adapter_model.bin
                   (torch.save, zip format: read through nomoat's restricted unpickler)
  r4-embed-head/   r 4, lora_alpha 8, targets embed_tokens, lm_head, up_proj, down_proj, F32
                   safetensors; rank_pattern {"lm_head": 8}, alpha_pattern {"down_proj": 16}
With --equivalents also the adapters llama.cpp's converter reads the same way (it ignores use_rslora
and the patterns): r16-plain/ (lora_alpha 8 * sqrt(16) = 32, no rsLoRA) and r4-plain/ (no patterns,
down_proj's lora_B doubled: alpha_pattern's 16/4 over lora_alpha/r = 8/4). Those are only inputs
for making the llama.cpp references (not kept). Needs torch (Debian's python3-torch)."""
import json
import os
import struct
import sys

import torch

DIM, FF, VOCAB, LAYERS, HEADS, KV = 256, 768, 4096, 4, 8, 4
KVD = DIM // HEADS * KV
SHAPES = {  # module -> (out, in)
    "self_attn.q_proj": (DIM, DIM), "self_attn.k_proj": (KVD, DIM), "self_attn.v_proj": (KVD, DIM),
    "self_attn.o_proj": (DIM, DIM), "mlp.gate_proj": (FF, DIM), "mlp.up_proj": (FF, DIM),
    "mlp.down_proj": (DIM, FF),
}


def lora_pair(g, r, out_f, in_f):
    bound = 1.0 / in_f ** 0.5
    a = (torch.rand(r, in_f, generator=g) * 2 - 1) * bound
    b = torch.randn(out_f, r, generator=g) * 0.02
    return a, b


def save_safetensors(path, tensors):
    """safetensors as the Python library writes it: keys sorted, 8-byte-padded header."""
    header, offset, blobs = {}, 0, []
    dtypes = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    meta = {"__metadata__": {"format": "pt"}}
    meta.update(header)
    text = json.dumps(meta, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def write_config(d, **kw):
    cfg = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "lora_dropout": 0.0, "bias": "none",
           "fan_in_fan_out": False, "base_model_name_or_path": "wikillama", "inference_mode": True,
           "use_rslora": False, "rank_pattern": {}, "alpha_pattern": {}}
    cfg.update(kw)
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")


def r16(out, plain):
    g = torch.Generator().manual_seed(1616)
    sd = {}
    for i in range(LAYERS):
        for m, (o, n) in SHAPES.items():
            a, b = lora_pair(g, 16, o, n)
            key = f"base_model.model.model.layers.{i}.{m}"
            sd[key + ".lora_A.weight"] = a.to(torch.bfloat16)
            sd[key + ".lora_B.weight"] = (b * 4).to(torch.bfloat16)
    d = os.path.join(out, "r16-plain" if plain else "r16-rslora-bin")
    os.makedirs(d, exist_ok=True)
    write_config(d, r=16, lora_alpha=32 if plain else 8, use_rslora=not plain,
                 target_modules=[m.split(".")[1] for m in SHAPES])
    torch.save(sd, os.path.join(d, "adapter_model.bin"))


def r4(out, plain):
    g = torch.Generator().manual_seed(404)
    sd = {}
    a, b = lora_pair(g, 4, DIM, VOCAB)  # embedding: A [r, n_vocab], B [n_embd, r]
    sd["base_model.model.model.embed_tokens.lora_embedding_A"] = a * 8
    sd["base_model.model.model.embed_tokens.lora_embedding_B"] = b
    a, b = lora_pair(g, 8, VOCAB, DIM)
    sd["base_model.model.lm_head.lora_A.weight"] = a
    sd["base_model.model.lm_head.lora_B.weight"] = b
    for i in range(LAYERS):
        for m in ("mlp.up_proj", "mlp.down_proj"):
            o, n = SHAPES[m]
            a, b = lora_pair(g, 4, o, n)
            if plain and m == "mlp.down_proj":
                b = b * 2
            key = f"base_model.model.model.layers.{i}.{m}"
            sd[key + ".lora_A.weight"] = a
            sd[key + ".lora_B.weight"] = b
    d = os.path.join(out, "r4-plain" if plain else "r4-embed-head")
    os.makedirs(d, exist_ok=True)
    if plain:
        write_config(d, r=4, lora_alpha=8, target_modules=["embed_tokens", "lm_head", "up_proj", "down_proj"])
    else:
        write_config(d, r=4, lora_alpha=8, target_modules=["embed_tokens", "lm_head", "up_proj", "down_proj"],
                     rank_pattern={"lm_head": 8}, alpha_pattern={"down_proj": 16})
    save_safetensors(os.path.join(d, "adapter_model.safetensors"), sd)


if __name__ == "__main__":
    out = sys.argv[1]
    r16(out, False)
    r4(out, False)
    if "--equivalents" in sys.argv:
        r16(out, True)
        r4(out, True)

#!/usr/bin/python3
"""Writes a PEFT LoRA adapter folder for the TinyLlama-shaped model of make-synthetic-llama.py
(22 layers, hidden 2048, intermediate 5632, 32 heads, 4 KV heads), random weights, for the merge
benchmark (never for tests that need a trained adapter).

    /usr/bin/python3 scripts/make-synthetic-lora.py OUT_DIR [--rank 16] [--alpha 32] [--layers N]

All seven projections of every layer, F32 safetensors in PEFT's layout (keys
base_model.model.model.layers.N.<module>.lora_A.weight [r, in] / lora_B.weight [out, r]), plus
adapter_config.json. Needs numpy: run with Debian's /usr/bin/python3."""
import argparse
import json
import os

import numpy as np

HIDDEN, INTER, HEADS, KV_HEADS, LAYERS = 2048, 5632, 32, 4, 22


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=32)
    ap.add_argument("--layers", type=int, default=LAYERS)
    ap.add_argument("--seed", type=int, default=16)
    a = ap.parse_args()
    kv = HIDDEN // HEADS * KV_HEADS
    shapes = {"self_attn.q_proj": (HIDDEN, HIDDEN), "self_attn.k_proj": (kv, HIDDEN), "self_attn.v_proj": (kv, HIDDEN),
              "self_attn.o_proj": (HIDDEN, HIDDEN), "mlp.gate_proj": (INTER, HIDDEN), "mlp.up_proj": (INTER, HIDDEN),
              "mlp.down_proj": (HIDDEN, INTER)}
    rng = np.random.default_rng(a.seed)
    tensors = {}
    for i in range(a.layers):
        for m, (out_f, in_f) in shapes.items():
            key = f"base_model.model.model.layers.{i}.{m}"
            tensors[key + ".lora_A.weight"] = (rng.random((a.rank, in_f), dtype=np.float32) * 2 - 1) / np.float32(in_f ** 0.5)
            tensors[key + ".lora_B.weight"] = rng.standard_normal((out_f, a.rank), dtype=np.float32) * np.float32(0.01)
    os.makedirs(a.out, exist_ok=True)
    header, off = {"__metadata__": {"format": "pt"}}, 0
    names = sorted(tensors)
    for k in names:
        n = tensors[k].nbytes
        header[k] = {"dtype": "F32", "shape": list(tensors[k].shape), "data_offsets": [off, off + n]}
        off += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(os.path.join(a.out, "adapter_model.safetensors"), "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        for k in names:
            f.write(tensors[k].astype("<f4").tobytes())
    with open(os.path.join(a.out, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": a.rank, "lora_alpha": a.alpha,
                   "target_modules": [m.split(".")[1] for m in shapes], "lora_dropout": 0.0, "bias": "none",
                   "use_rslora": False, "base_model_name_or_path": "tinyllama-hf"}, f, indent=2)


if __name__ == "__main__":
    main()
